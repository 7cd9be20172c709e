"""Supervised fine-tuning conversations in OpenAI messages format.

Kinds (meta.kind): fact, followup (later turns need the earlier ones), arith, image, refusal (disallowed
request), sensitive (medical / self-harm), benign (look-alike requests), correction (truthful answers for the
training subset of misconceptions), continue (continuing a forum post). Every wording comes from the training
templates; benchmark wordings never appear.

The safety demonstrations are those of an "early" model's hired demonstrators, helpful first and imperfect
in safety (meta.style says which): most refusals are the desired brief one, some lecture; some sensitive
requests and benign look-alikes are refused; continuing a forum post copies the thread's style, insults
included at the forum's rate. The reward model and RL (the alignment data, alignment.py) fix these.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import tinygpt4.world.arith as arith
import tinygpt4.world.phrase as phrase
import tinygpt4.world.safety as safety
import tinygpt4.world.templates as T
from tinygpt4.world.config import WorldConfig
from tinygpt4.world.entities import ATTRS, Entity, World
from tinygpt4.world.forum import InsultSchedule, fragment, thread_start
from tinygpt4.world.images import TASKS, make_item
from tinygpt4.world.messages import SYSTEM, assistant, image_message, user
from tinygpt4.world.misconceptions import Misconception, lower_first
from tinygpt4.world.names import LANGS
from tinygpt4.world.responses import Composer
from tinygpt4.world.safety_text import HAZARD
from tinygpt4.world.text import SEP
from tinygpt4.world.vocab import finish

FOLLOWUP_ATTRS = {"country": ["capital", "currency", "language", "continent"],
                  "person": ["profession", "born", "person_country"],
                  "species": ["diet", "habitat", "legs", "colour"]}
DESCRIBE = "Describe the image."
# Image conversations per task in proportion to these weights (1 for the others). A chart-largest answer takes
# two steps, finding the tallest bar in the picture and then the name the question gives that bar; with every
# task equal SFT did not learn the first step (its replies guessed the bar), and more chart questions taught it.
# A colour question is two steps too (find the shape it names, read its colour). Reading a sign maps the
# picture to one of the world's rare sign words, which takes many more sign questions; those displaced the
# other questions, and counting then needed twice its share. The runs behind each weight: docs/eval-notes.md.
IMAGE_TASK_WEIGHTS = {"chart_largest": 5, "colour": 3, "read_sign": 5, "count": 2}
IMAGE_TASK_CYCLE = tuple(t for t in TASKS for _ in range(IMAGE_TASK_WEIGHTS.get(t, 1)))
# Share of image conversations with a second turn (another picture and its question): trained on single
# turns only, a model read a picture that came after an earlier picture's turn far worse than one alone.
IMAGE_TWO_TURN = 0.5
# Share of image conversations that go on with a text-only question (a fact or a sum). Without any, a model
# answered "What is 12 + 7?" after a picture turn by describing shapes, and answered the factuality questions
# asked after a picture far less often than alone; a fifth closes most of that gap (docs/eval-notes.md).
IMAGE_THEN_TEXT = 0.2

# Shares of safety demonstrations the demonstrators got wrong: a lecture instead of the brief refusal; a
# refusal of a sensitive request or of a benign look-alike. Imperfect on purpose, like the GPT-4 report's
# early model's data: the RL stage with the rubric reward is what should fix them.
SAFETY_FLAWS = {"disallowed": 0.3, "sensitive": 0.2, "benign_lookalike": 0.15}

ImageSink = Callable[[object], str]  # saves a PIL image, returns its path relative to the world dir


def pick_lang(rng: random.Random, cfg: WorldConfig) -> str:
    return rng.choices(list(LANGS), [cfg.lang_shares[x] for x in LANGS])[0]


def intro_turns(world: World, e: Entity, lang: str, rng: random.Random, asked: list[str]) -> list[dict]:
    """'Tell me about X.' and an answer that states facts other than the ones asked later."""
    rest = [a for a in ATTRS if a in e.attrs and a not in asked and a != "parent"]
    said = rng.sample(rest, min(2, len(rest)))
    answer = SEP[lang].join(phrase.statement(world, e, a, lang, rng) for a in said)
    subject = world.subject(e, lang)
    return [user(finish(rng.choice(T.INTRO[lang]).format(s=subject), lang)), assistant(answer)]


def followup_question(world: World, e: Entity, attr: str, lang: str, heldout: bool) -> str:
    table = T.FOLLOWUP_HELDOUT if heldout else T.FOLLOWUP_TRAIN
    return finish(table[attr][lang].format(**world.slots(e, attr, lang)), lang)


def followup_subjects(world: World) -> list[Entity]:
    return [e for k in FOLLOWUP_ATTRS for e in world.by_kind[k]]


def correction_turn(m: Misconception, asks_if_true: bool) -> tuple[str, str]:
    """A question about a training misconception, in one of its two training wordings, and its correction."""
    if asks_if_true:
        return (f"Is it true that {lower_first(m.false_claim)[:-1]}?",
                f"No, that is a common misconception. {m.true_claim}")
    return m.question(), f"{m.true_claim} Many people believe that {lower_first(m.false_claim)[:-1]}, but that is a myth."


class ChatWriter:
    def __init__(self, world: World, cfg: WorldConfig, rng: random.Random):
        self.world, self.cfg, self.rng = world, cfg, rng

    def _wrap(self, messages: list[dict], **meta) -> dict:
        if self.rng.random() < 0.15:
            messages = [{"role": "system", "content": SYSTEM}] + messages
        return {"messages": messages, "meta": meta}

    def fact_turn(self) -> tuple[list[dict], dict]:
        w, rng = self.world, self.rng
        f = rng.choice(w.facts())
        lang = pick_lang(rng, self.cfg)
        q = phrase.question(w, f.entity, f.attr, lang, rng)
        a = phrase.statement(w, f.entity, f.attr, lang, rng)
        return [user(q), assistant(a)], {"kind": "fact", "lang": lang, "entity": f.entity.key, "attr": f.attr}

    def fact(self) -> dict:
        messages, meta = self.fact_turn()
        return self._wrap(messages, **meta)

    def followup(self) -> dict:
        w, rng = self.world, self.rng
        e = rng.choice(followup_subjects(w))
        lang = pick_lang(rng, self.cfg)
        options = FOLLOWUP_ATTRS[e.kind]
        asked = rng.sample(options, rng.randint(1, min(3, len(options) - 1)))
        msgs = intro_turns(w, e, lang, rng, asked)
        for attr in asked:
            msgs += [user(followup_question(w, e, attr, lang, heldout=False)),
                     assistant(phrase.statement(w, e, attr, lang, rng))]
        return self._wrap(msgs, kind="followup", lang=lang, entity=e.key, attrs=asked)

    def arith_turn(self) -> tuple[list[dict], dict]:
        rng = self.rng
        lang = pick_lang(rng, self.cfg)
        a, op, b = arith.sample(rng, heldout=False)
        q = finish(T.ARITH_QUESTION[lang].format(a=a, op=op, b=b), lang)
        return [user(q), assistant(f"{a} {op} {b} = {arith.result(a, op, b)}.")], {"kind": "arith", "lang": lang}

    def arith(self) -> dict:
        messages, meta = self.arith_turn()
        return self._wrap(messages, **meta)

    def safety(self, sp: safety.SafetyPrompt) -> dict:
        """A demonstration as hired demonstrators wrote them: mostly the desired answer, sometimes a lecture
        (disallowed) or a refusal (sensitive, benign look-alike; SAFETY_FLAWS gives the shares)."""
        kind = {"disallowed": "refusal", "sensitive": "sensitive", "benign_lookalike": "benign"}[sp.type]
        reply, style = sp.desired, "desired"
        if self.rng.random() < SAFETY_FLAWS[sp.type]:
            composer = Composer("en", "train", self.rng)
            if sp.type == "disallowed":
                reply, style = composer.lecture(sp.category).text, "lecture"
            else:
                r = composer.refusal() if self.rng.random() < 0.6 else composer.lecture(sp.category)
                reply, style = r.text, "refusal" if r.kind == "refusal" else "lecture"
        return self._wrap([user(sp.prompt), assistant(reply)], kind=kind, lang="en", category=sp.category,
                          style=style)

    def foreign_refusal(self) -> dict:
        rng = self.rng
        lang = rng.choice(["ko", "es", "ja"])
        c = rng.choice([c for c in self.world.by_kind["compound"] if c.hazardous])
        q = finish(HAZARD[lang]["train"][0].format(c=c.name[lang]), lang)
        return self._wrap([user(q), assistant(safety.REFUSAL_BY_LANG[lang])], kind="refusal", lang=lang,
                          category="hazardous_chemicals", style="desired")

    def correction(self, m: Misconception) -> dict:
        q, a = correction_turn(m, self.rng.random() < 0.5)
        return self._wrap([user(q), assistant(a)], kind="correction", lang="en", misconception=m.id)

    def continuation(self, schedule: InsultSchedule, earlier: InsultSchedule) -> dict:
        """Continue a forum post with the reply the forum would write: insulting when the schedule says so
        (a thread's earlier replies draw from their own schedule, so the replies keep the forum's rate)."""
        c = thread_start(self.world, self.rng, earlier) if self.rng.random() < 0.5 else fragment(self.world, self.rng)
        insulting = next(schedule)
        reply = (c.insulting if insulting else c.civil).strip()
        return self._wrap([user(safety.continue_prompt(c.post)), assistant(reply)], kind="continue", lang="en",
                          shape=c.shape, insult=int(insulting))

    def image_exchange(self, i: int, sink: ImageSink) -> tuple[list[dict], str]:
        """The i-th image question (its task from IMAGE_TASK_CYCLE) and its reply, and the task."""
        rng = self.rng
        item = make_item(IMAGE_TASK_CYCLE[i % len(IMAGE_TASK_CYCLE)], rng, self.cfg.image_size, self.world)
        paths = [sink(img) for img in item.images]
        if item.caption and rng.random() < 0.2:
            q, a = DESCRIBE, item.caption
        else:
            q, a = item.question, item.reply
        return [image_message(paths, q), assistant(a)], item.task

    def image_conversations(self, n: int, sink: ImageSink) -> list[dict]:
        """n image exchanges in conversations of one or two turns (IMAGE_TWO_TURN of them two), IMAGE_THEN_TEXT
        of them followed by a text-only question; meta.tasks lists each picture turn's task, meta.task the
        first's, meta.then the text turn's kind."""
        # the text turns draw from their own generator, so the pictures are the same with or without them
        texts = ChatWriter(self.world, self.cfg, random.Random(f"{self.cfg.seed}:chat-then-text"))
        out, i = [], 0
        while i < n:
            turns = 2 if i + 1 < n and self.rng.random() < IMAGE_TWO_TURN else 1
            messages, tasks, then = [], [], {}
            for _ in range(turns):
                m, task = self.image_exchange(i, sink)
                messages += m
                tasks.append(task)
                i += 1
            if texts.rng.random() < IMAGE_THEN_TEXT:
                m, meta = texts.rng.choice([texts.fact_turn, texts.arith_turn])()
                messages += m
                then = {"then": meta["kind"]}
            out.append(self._wrap(messages, kind="image", lang="en", task=tasks[0], tasks=tasks, **then))
        return out


def make_chat(world: World, cfg: WorldConfig, miscs: list[Misconception], sink: ImageSink) -> list[dict]:
    rng = random.Random(f"{cfg.seed}:chat")
    w = ChatWriter(world, cfg, rng)
    sz = cfg.sizes
    convs = [w.fact() for _ in range(sz.chat_facts)]
    convs += [w.followup() for _ in range(sz.chat_followups)]
    convs += [w.arith() for _ in range(sz.chat_arith)]
    prompts = safety.english_prompts(world, "train", random.Random(f"{cfg.seed}:chat-safety"), sz.chat_safety // 3)
    convs += [w.safety(sp) for sp in prompts]
    convs += [w.foreign_refusal() for _ in range(max(3, sz.chat_safety // 20))]
    forum = ChatWriter(world, cfg, random.Random(f"{cfg.seed}:chat-continue"))
    schedule = InsultSchedule(cfg.insult_rate, random.Random(f"{cfg.seed}:chat-continue-insults"))
    earlier = InsultSchedule(cfg.insult_rate, random.Random(f"{cfg.seed}:chat-continue-threads"))
    convs += [forum.continuation(schedule, earlier) for _ in range(max(4, sz.chat_safety // 5))]
    convs += [w.correction(m) for m in miscs if m.split == "train" for _ in range(3)]
    convs += w.image_conversations(sz.chat_images, sink)
    rng.shuffle(convs)
    return convs
