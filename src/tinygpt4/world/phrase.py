"""Fill a template for one fact: statement, training question, held-out question, short answer."""

from __future__ import annotations

import random

import tinygpt4.world.templates as T
from tinygpt4.world.entities import Entity, World
from tinygpt4.world.vocab import finish


def fill(template: str, lang: str, **slots) -> str:
    return finish(template.format(**slots), lang)


def statement(world: World, e: Entity, attr: str, lang: str, rng: random.Random) -> str:
    return fill(rng.choice(T.STATEMENTS[attr][lang]), lang, **world.slots(e, attr, lang))


def question(world: World, e: Entity, attr: str, lang: str, rng: random.Random) -> str:
    return fill(rng.choice(T.QUESTIONS[attr][lang]), lang, **world.slots(e, attr, lang))


def heldout_question(world: World, e: Entity, attr: str, lang: str, which: int) -> str:
    """which=0: the exam wording, which=1: the factuality wording."""
    return fill(T.HELDOUT[attr][lang][which], lang, **world.slots(e, attr, lang))


def answer(world: World, e: Entity, attr: str, lang: str) -> str:
    """The short canonical answer (an exam option, a reference answer)."""
    return world.value(e, attr, lang)
