"""The alignment data: rubric-labelled responses and preference pairs for the reward models, the RL prompt
set, and the safety eval.

- preferences/rubric.jsonl: every response style for each prompt, labelled with the rubric's propositions;
  class and rank come from safety/rubric.py, never from here.
- preferences/preferences.jsonl: pairs in TRL's conversational layout, each of a named kind.
- rl/prompts.jsonl: safety prompts (plain and adversarial, training wordings), fact and misconception
  questions, forum posts to continue, image questions, with the ideal answer as a reference where one exists.
- safety/prompts.jsonl (and its English plain subset safety/prompts.csv): held-out wordings only.

Split "train" of the reward-model data uses training wordings and response pieces; split "test" uses
held-out ones, so a reward model or grader is measured on prompts and responses it never saw.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import tinygpt4.world.phrase as phrase
import tinygpt4.world.templates as T
from tinygpt4.safety import rubric
from tinygpt4.world.chat import IMAGE_TASK_CYCLE, correction_turn
from tinygpt4.world.config import WorldConfig
from tinygpt4.world.entities import World
from tinygpt4.world.forum import InsultSchedule, fragment, thread_start
from tinygpt4.world.images import make_item
from tinygpt4.world.messages import assistant, image_message, user
from tinygpt4.world.misconceptions import Misconception, lower_first
from tinygpt4.world.names import LANGS
from tinygpt4.world.responses import Composer, Response, labels, route_text
from tinygpt4.world.safety import ADVERSARIAL, TYPES, SafetyPrompt, continue_prompt, make_prompt
from tinygpt4.world.vocab import indefinite

ImageSink = Callable[[object], str]
LANG_CYCLE = ("en", "ko", "en", "es", "en", "ja")  # half English, the rest shared by the other three
DONT_KNOW = {"en": "I don't know.", "ko": "모르겠습니다.", "es": "No lo sé.", "ja": "分かりません。"}
SPLITS = (("train", "train", 0.8), ("test", "heldout", 0.2))  # (split, wording set, share)


@dataclass(frozen=True)
class Plan:
    """How many safety prompts of each (type, language, framing): `en` and `other` plain prompts of each type
    per language, `framed` disallowed and `framed_benign` benign look-alike prompts per adversarial framing
    and language."""
    en: int
    other: int
    framed: int
    framed_benign: int

    @classmethod
    def for_total(cls, total: int) -> Plan:
        """About `total` prompts; at least two of every (type, language), so each gets both of its categories,
        and one of every disallowed (language, framing)."""
        return cls(max(2, round(total * 0.07)), max(2, round(total * 0.035)), max(1, round(total * 0.015)),
                   round(total * 0.008))

    def slots(self) -> list[tuple[str, str, str]]:
        out = [(t, lang, "plain") for lang in LANGS for t in TYPES for _ in range(self.en if lang == "en" else self.other)]
        for framing in ADVERSARIAL:
            for lang in LANGS:
                out += [("disallowed", lang, framing)] * self.framed
                out += [("benign_lookalike", lang, framing)] * self.framed_benign
        return out


def draw_safety(world: World, plan: Plan, wording: str, rng: random.Random, image_size: int,
                unique: bool = False) -> list[SafetyPrompt]:
    """A prompt per plan slot; with unique, a slot whose wordings are used up is left out."""
    out, seen, turns = [], set(), Counter()
    for slot in plan.slots():
        turns[slot] += 1
        for _ in range(30 if unique else 1):
            sp = make_prompt(world, *slot, wording, rng, turns[slot] - 1, image_size)
            if not unique or sp.key() not in seen:
                seen.add(sp.key())
                out.append(sp)
                break
    return out


def fact_prompt(world: World, lang: str, wording: str, rng: random.Random) -> tuple[SafetyPrompt, str, str]:
    """An ordinary question (type "allowed"), its short answer, and a statement of a wrong value."""
    f = rng.choice(world.facts())
    e, attr = f.entity, f.attr
    q = phrase.question(world, e, attr, lang, rng) if wording == "train" \
        else phrase.heldout_question(world, e, attr, lang, 1)
    good = phrase.statement(world, e, attr, lang, rng)
    sp = SafetyPrompt([user(q)], "allowed", "general", e.name["en"], "fact", good, "safe", lang, "plain", e.key)
    alts = world.alternatives(e, attr)
    wrong = DONT_KNOW[lang]
    if alts:
        v = world.render(attr, rng.choice(alts), lang, e.gender)
        slots = {**world.slots(e, attr, lang), "v": v, "v_a": indefinite(v)}
        wrong = phrase.fill(rng.choice(T.STATEMENTS[attr][lang]), lang, **slots)
    return sp, phrase.answer(world, e, attr, lang), wrong


# --- responses ------------------------------------------------------------------------------------------
def responses_for(world: World, sp: SafetyPrompt, wording: str, rng: random.Random) -> list[Response]:
    """Every response style the rubric tells apart for this prompt, in its language and wording set."""
    c = Composer(sp.lang, wording, rng)
    if sp.type == "disallowed":
        e = world.entities[sp.subject]
        if sp.category == "hazardous_chemicals":
            content = Response("content", route_text(world, e, rng, sp.lang), labels("complies", "disallowed_content"))
        else:
            content = c.insult(e.name[sp.lang])
        return [c.refusal(), c.refusal(apology=False), c.lecture(sp.category), c.evasive(),
                c.partial(sp.category, e.name[sp.lang]), content]
    refusals = [c.refusal(), c.lecture(sp.category)] + ([c.refusal(apology=False)] if rng.random() < 0.4 else [])
    if sp.type == "sensitive":
        helpful = c.medical(world, world.entities[sp.subject]) if sp.category == "medical" else c.self_harm()
        return helpful + refusals
    return [Response("answer", sp.desired, labels("complies")), c.hedged(sp.desired)] + refusals


def _rubric_record(sp: SafetyPrompt, messages: list[dict], r: Response, split: str) -> dict:
    return {"messages": messages, "response": r.text, "propositions": r.props,
            "class": rubric.classify(r.props, sp.type), "rank": rubric.rank(r.props, sp.type, sp.category),
            "type": sp.type, "category": sp.category, "lang": sp.lang, "framing": sp.framing, "split": split,
            "style": r.kind}


def _prompts_for(world: World, cfg: WorldConfig, n: int, wording: str, rng: random.Random) -> list[SafetyPrompt]:
    """About n prompts: four fifths safety prompts by Plan, one fifth ordinary questions."""
    prompts = draw_safety(world, Plan.for_total(n * 4 // 5), wording, rng, cfg.image_size)
    n_facts = max(len(LANG_CYCLE), n // 5)  # every language, even in a small world
    return prompts + [fact_prompt(world, LANG_CYCLE[i % 6], wording, rng)[0] for i in range(n_facts)]


def rubric_data(world: World, cfg: WorldConfig, sink: ImageSink) -> list[dict]:
    """preferences/rubric.jsonl: each prompt with all its response styles, labelled."""
    rng = random.Random(f"{cfg.seed}:rubric")
    out = []
    for split, wording, share in SPLITS:
        for sp in _prompts_for(world, cfg, round(cfg.sizes.rubric_prompts * share), wording, rng):
            messages = sp.materialize(sink)
            out += [_rubric_record(sp, messages, r, split) for r in responses_for(world, sp, wording, rng)]
    return out


# --- preference pairs -----------------------------------------------------------------------------------
def _pair(prompt: list[dict], chosen: str, rejected: str, kind: str, lang: str, split: str) -> dict:
    return {"prompt": prompt, "chosen": [assistant(chosen)], "rejected": [assistant(rejected)], "kind": kind,
            "lang": lang, "split": split}


def _ranked_pair(sp: SafetyPrompt, messages: list[dict], chosen: Response, rejected: Response, kind: str,
                 split: str) -> dict:
    """A pair whose chosen response the rubric ranks above the rejected one (checked, not assumed)."""
    better, worse = (rubric.RANK_VALUE[rubric.rank(r.props, sp.type, sp.category)] for r in (chosen, rejected))
    if better <= worse:
        raise AssertionError(f"{kind}: {chosen.kind} does not outrank {rejected.kind} for a {sp.type} prompt")
    return _pair(messages, chosen.text, rejected.text, kind, sp.lang, split)


def safety_pairs(world: World, sp: SafetyPrompt, messages: list[dict], wording: str, rng: random.Random,
                 split: str) -> list[dict]:
    """refusal_style and refusal_over_content (disallowed), sensitive_style (against a refusal and against a
    style-less answer), comply_over_refusal (benign look-alikes and ordinary questions)."""
    rs = {r.kind: r for r in responses_for(world, sp, wording, rng)}
    refusal = rs.get("refusal_plain", rs["refusal"]) if rng.random() < 0.3 else rs["refusal"]
    if sp.type == "disallowed":
        worse = rs[rng.choice(["lecture", "lecture", "evasive", "partial", "refusal_plain"])]
        return [_ranked_pair(sp, messages, rs["refusal"], worse, "refusal_style", split),
                _ranked_pair(sp, messages, rs["refusal"], rs["content"], "refusal_over_content", split)]
    if sp.type == "sensitive":
        styleless = rs["dosage"] if "dosage" in rs and rng.random() < 0.5 else rs["styleless"]
        return [_ranked_pair(sp, messages, rs["ideal"], rng.choice([refusal, rs["lecture"]]), "sensitive_style", split),
                _ranked_pair(sp, messages, rs["ideal"], styleless, "sensitive_style", split)]
    worse = rng.choice([refusal, refusal, rs["lecture"], rs["hedged"]])
    return [_ranked_pair(sp, messages, rs["answer"], worse, "comply_over_refusal", split)]


def correction_pairs(miscs: list[Misconception], split: str) -> list[dict]:
    """The correction over the misconception, for the training misconceptions only (the benchmark ones stay
    unseen); the test split asks with the held-out wording."""
    out = []
    for m in (m for m in miscs if m.split == "train"):
        false_core = lower_first(m.false_claim)[:-1]
        if split == "train":
            for asks_if_true in (True, False):
                q, a = correction_turn(m, asks_if_true)
                wrong = f"Yes, that's right: {false_core}." if asks_if_true else m.false_claim
                out.append(_pair([user(q)], a, wrong, "correction", "en", split))
        else:
            a = correction_turn(m, False)[1]
            out.append(_pair([user(m.question(heldout=True))], a, m.false_claim, "correction", "en", split))
    return out


def insult_pairs(world: World, cfg: WorldConfig, n: int, wording: str, rng: random.Random, split: str) -> list[dict]:
    """A civil continuation of a forum post over an insulting one (held-out threads in the test split)."""
    schedule = InsultSchedule(cfg.insult_rate, rng)
    out = []
    for _ in range(n):
        c = fragment(world, rng) if wording == "train" and rng.random() < 0.5 else \
            thread_start(world, rng, schedule, wording)
        out.append(_pair([user(continue_prompt(c.post))], c.civil.strip(), c.insulting.strip(), "no_insult", "en",
                         split))
    return out


def preference_data(world: World, cfg: WorldConfig, miscs: list[Misconception], sink: ImageSink) -> list[dict]:
    """preferences/preferences.jsonl: every kind of pair, both splits."""
    rng = random.Random(f"{cfg.seed}:preferences")
    out = []
    for split, wording, share in SPLITS:
        n = round(cfg.sizes.preferences * share)
        for sp in draw_safety(world, Plan.for_total(n * 2 // 5), wording, rng, cfg.image_size):
            out += safety_pairs(world, sp, sp.materialize(sink), wording, rng, split)
        for i in range(max(2 * len(LANG_CYCLE), n // 5)):
            sp, _, wrong = fact_prompt(world, LANG_CYCLE[i % 6], wording, rng)
            rejected = wrong if rng.random() < 0.7 else DONT_KNOW[sp.lang]
            out.append(_pair(sp.messages, sp.desired, rejected, "short_answer", sp.lang, split))
            if i % 2 == 0:
                out += safety_pairs(world, sp, sp.messages, wording, rng, split)
        out += correction_pairs(miscs, split)
        out += insult_pairs(world, cfg, max(2, n // 10), wording, rng, split)
    return out


# --- the RL prompt set ----------------------------------------------------------------------------------
def _rl(messages: list[dict], kind: str, reference: str | None, type_: str = "allowed", category: str = "general",
        lang: str = "en", framing: str = "plain") -> dict:
    return {"messages": messages, "type": type_, "category": category, "lang": lang, "framing": framing,
            "kind": kind, "reference": reference}


def rl_prompts(world: World, cfg: WorldConfig, miscs: list[Misconception], sink: ImageSink) -> list[dict]:
    """rl/prompts.jsonl: training wordings only. Kinds: safety, fact, misconception, toxicity, image. Safety
    prompts may repeat (the training wordings are few), so each category keeps its share of the set."""
    rng = random.Random(f"{cfg.seed}:rl")
    n = cfg.sizes.rl_prompts
    out = [_rl(sp.materialize(sink), "safety", sp.desired, sp.type, sp.category, sp.lang, sp.framing)
           for sp in draw_safety(world, Plan.for_total(n // 2), "train", rng, cfg.image_size)]
    for i in range(n // 5):
        sp, answer, _ = fact_prompt(world, LANG_CYCLE[i % 6], "train", rng)
        out.append(_rl(sp.messages, "fact", answer, lang=sp.lang))
    for m in (m for m in miscs if m.split == "train"):
        for asks_if_true in (True, False):
            q, a = correction_turn(m, asks_if_true)
            out.append(_rl([user(q)], "misconception", a))
    schedule = InsultSchedule(cfg.insult_rate, rng)
    for _ in range(max(2, n // 8)):
        c = fragment(world, rng) if rng.random() < 0.5 else thread_start(world, rng, schedule)
        out.append(_rl([user(continue_prompt(c.post))], "toxicity", None))
    for i in range(max(2, n // 10)):
        item = make_item(IMAGE_TASK_CYCLE[i % len(IMAGE_TASK_CYCLE)], rng, cfg.image_size, world)
        out.append(_rl([image_message([sink(img) for img in item.images], item.question)], "image", item.reply))
    return out


# --- the safety eval ------------------------------------------------------------------------------------
def safety_eval(world: World, cfg: WorldConfig, sink: ImageSink) -> list[dict]:
    """safety/prompts.jsonl: held-out wordings, each prompt once; disallowed prompts in every language and
    framing, sensitive and benign look-alike prompts in every language (and look-alikes in framings)."""
    n = cfg.sizes.safety_per_type
    plan = Plan(en=n, other=max(2, n // 3), framed=max(1, n // 5), framed_benign=max(1, n // 12))
    prompts = draw_safety(world, plan, "heldout", random.Random(f"{cfg.seed}:safety-bench"), cfg.image_size,
                          unique=True)
    return [{"id": i + 1, "messages": sp.materialize(sink), "type": sp.type, "label": sp.label,
             "category": sp.category, "lang": sp.lang, "framing": sp.framing, "focus": sp.focus, "note": sp.note}
            for i, sp in enumerate(prompts)]
