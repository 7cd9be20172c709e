"""World size presets and the knobs a user may turn (language shares, insult rate, misconception ratio)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from tinygpt4.errors import UserError


@dataclass(frozen=True)
class Sizes:
    countries: int
    extra_cities: int
    people: int
    species: int
    compounds: int
    hazardous: int
    illnesses: int
    misconceptions: int        # half get correction conversations, half are the truthfulness benchmark
    corrections_each: int      # correction passages per misconception (false claims: x repeat)
    hazard_docs_each: int      # synthesis-route passages per hazardous compound
    corpus_chars: int          # pretraining text, all languages
    heldout_chars: int
    shard_chars: int
    caption_images: int
    chat_images: int           # image questions (one or two per conversation), by chat.IMAGE_TASK_WEIGHTS
    qa_per_task: int
    chat_facts: int            # single-turn fact questions
    chat_followups: int        # multi-turn conversations
    chat_arith: int
    chat_safety: int           # disallowed + sensitive + benign look-alike, together
    arith_exam: int            # arithmetic test questions per language
    followup_per_lang: int
    toxicity_prompts: int
    safety_per_type: int      # safety eval prompts per type in English (fewer per other language and framing)
    preferences: int           # preference pairs, about
    rubric_prompts: int        # prompts whose every response style is labelled (about 5 lines each)
    rl_prompts: int            # RL prompts, about


SCALES: dict[str, Sizes] = {
    # For tests: the smallest world with every file present and parseable, so that it builds fast.
    "tiny": Sizes(countries=4, extra_cities=2, people=6, species=4, compounds=6, hazardous=2, illnesses=3,
                  misconceptions=8, corrections_each=2, hazard_docs_each=3, corpus_chars=150_000,
                  heldout_chars=8_000, shard_chars=100_000, caption_images=44, chat_images=76,
                  qa_per_task=4, chat_facts=60, chat_followups=24, chat_arith=12, chat_safety=40,
                  arith_exam=10, followup_per_lang=4, toxicity_prompts=20, safety_per_type=6, preferences=120,
                  rubric_prompts=60, rl_prompts=100),
    # The demo default: a few hundred facts, learnable by the tiny model preset in minutes. 100 held-out
    # questions per image task put one binomial standard deviation at about 5 points (7 with 50).
    "small": Sizes(countries=10, extra_cities=6, people=14, species=10, compounds=10, hazardous=3,
                   illnesses=6, misconceptions=40, corrections_each=10, hazard_docs_each=30,
                   corpus_chars=5_000_000, heldout_chars=100_000, shard_chars=2_000_000,
                   caption_images=3000, chat_images=2625, qa_per_task=100, chat_facts=1500,
                   chat_followups=600, chat_arith=300, chat_safety=600, arith_exam=40, followup_per_lang=40,
                   toxicity_prompts=200, safety_per_type=50, preferences=1600,
                   rubric_prompts=480, rl_prompts=400),
    "full": Sizes(countries=30, extra_cities=30, people=48, species=30, compounds=30, hazardous=8,
                  illnesses=16, misconceptions=120, corrections_each=10, hazard_docs_each=30,
                  corpus_chars=24_000_000, heldout_chars=400_000, shard_chars=4_000_000,
                  caption_images=8000, chat_images=10500, qa_per_task=200, chat_facts=6000,
                  chat_followups=2400, chat_arith=1200, chat_safety=2400, arith_exam=100,
                  followup_per_lang=150, toxicity_prompts=1000, safety_per_type=150, preferences=4800,
                  rubric_prompts=1600, rl_prompts=1600),
}

LANG_SHARES = {"en": 0.70, "ko": 0.10, "es": 0.10, "ja": 0.10}


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 0
    scale: str = "small"
    image_size: int = 64
    lang_shares: dict = field(default_factory=lambda: dict(LANG_SHARES))
    insult_rate: float = 0.25          # share of forum replies that insult someone
    misconception_repeat: int = 3      # each false claim appears this many times as often as its correction
    sizes: Sizes = field(default_factory=lambda: SCALES["small"])

    @classmethod
    def make(cls, seed: int = 0, scale: str = "small", **overrides) -> WorldConfig:
        if scale not in SCALES:
            raise UserError(f"unknown scale {scale!r} (choose from {', '.join(SCALES)})")
        cfg = cls(seed=int(seed), scale=scale, sizes=SCALES[scale])
        cfg = replace(cfg, **overrides)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not 16 <= self.image_size <= 1024:
            raise UserError(f"image size must be between 16 and 1024, got {self.image_size}")
        if set(self.lang_shares) != set(LANG_SHARES) or abs(sum(self.lang_shares.values()) - 1) > 1e-6:
            raise UserError(f"lang_shares must give en, ko, es, ja summing to 1, got {self.lang_shares}")
        if not 0 <= self.insult_rate <= 1:
            raise UserError(f"insult_rate must be in [0, 1], got {self.insult_rate}")
        if self.misconception_repeat < 1:
            raise UserError(f"misconception_repeat must be at least 1, got {self.misconception_repeat}")

    def to_dict(self) -> dict:
        return asdict(self)
