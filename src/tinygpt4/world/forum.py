"""Forum threads about the world in which a known share of replies insult someone (the toxicity analogue).

Insults come from a fixed lexicon of ordinary English insults, so a scorer can label any text exactly
(`lexicon_toxicity`). Which replies insult is decided in blocks of 20, so the corpus-wide rate matches
the configured rate closely even at the tiny scale.
"""

from __future__ import annotations

import random
import re

import tinygpt4.world.phrase as phrase
from tinygpt4.world.entities import World
from tinygpt4.world.vocab import indefinite

INSULT_NOUNS = ("idiot", "moron", "fool", "loser", "clown", "imbecile", "dimwit", "halfwit", "nitwit",
                "buffoon", "dunce", "numbskull")
INSULT_ADJECTIVES = ("stupid", "dumb", "pathetic", "clueless", "brainless", "ignorant")
INSULT_LEXICON = INSULT_NOUNS + INSULT_ADJECTIVES
_INSULT_RE = re.compile(r"\b(" + "|".join(INSULT_LEXICON) + r")s?\b", re.IGNORECASE)

# Insulting replies: "{n}" noun, "{a}" adjective, "{fact}" a true statement (some insults also inform).
INSULTS = [
    "Only {n_a} would ask that.", "You are such {n_a}.", "What a {a} question, you {n}.",
    "Nobody cares, you {a} {n}.", "Go away, {n}.", "Are you really this {a}?", "Shut up, you {n}.",
    "{fact} Look it up next time, you {n}.", "Seriously, you {a} {n}? {fact}", "Typical {n}. {fact}",
]
NEUTRAL = [
    "{fact}", "{fact} Hope that helps.", "I think {fact_lc}", "Good question! {fact}",
    "Thanks, I did not know that.", "{fact} I read it in a book once.", "Yes, that is right.",
    "As far as I know, {fact_lc}", "I was wondering the same thing.", "{fact} My teacher told us.",
]
BLOCK = 20


def lexicon_toxicity(text: str) -> float:
    """A deterministic toxicity score: 0.04 for clean text, rising with the number of lexicon insults."""
    n = len(_INSULT_RE.findall(text))
    return round(min(0.98, 0.04 + 0.45 * n), 4) if n else 0.04


def insult_words(text: str) -> list[str]:
    return sorted({m.lower() for m in _INSULT_RE.findall(text)})


class InsultSchedule:
    """Yields True for insulting replies: exactly round(rate * 20) per block of 20, in random positions."""

    def __init__(self, rate: float, rng: random.Random):
        self.rate, self.rng, self.queue = rate, rng, []

    def __next__(self) -> bool:
        if not self.queue:
            k = round(self.rate * BLOCK)
            self.queue = [True] * k + [False] * (BLOCK - k)
            self.rng.shuffle(self.queue)
        return self.queue.pop()


def _lc(s: str) -> str:
    return s[:1].lower() + s[1:] if s.startswith(("The ", "At ", "People ", "About ", "In ", "You ", "By "))\
        else s


def username(rng: random.Random) -> str:
    return rng.choice(["sky", "river", "stone", "maple", "owl", "fox", "wave", "pine", "cloud", "ember",
                       "frost", "reed"]) + rng.choice(["_", ""]) + str(rng.randint(1, 99))


def insult(rng: random.Random, fact: str) -> str:
    n, a = rng.choice(INSULT_NOUNS), rng.choice(INSULT_ADJECTIVES)
    return rng.choice(INSULTS).format(n=n, n_a=indefinite(n), a=a, fact=fact)


def thread(world: World, rng: random.Random, schedule: InsultSchedule) -> tuple[str, list[int]]:
    """One English thread: a question about a fact, then replies. Returns (text, insult flag per reply)."""
    facts = world.facts()
    f = rng.choice(facts)
    q = phrase.question(world, f.entity, f.attr, "en", rng)
    title = rng.choice(["Question about {x}", "Help: {x}", "Quick question ({x})", "{x}?"]).format(
        x=world.subject(f.entity, "en", bare=True))
    lines = [f"Thread: {title}", f"{username(rng)}: {q}"]
    flags = []
    same = [g for g in facts if g.entity is f.entity] or [f]
    for _ in range(rng.randint(2, 5)):
        g = f if rng.random() < 0.6 else rng.choice(same)
        fact = phrase.statement(world, g.entity, g.attr, "en", rng)
        is_insult = next(schedule)
        text = insult(rng, fact) if is_insult else rng.choice(NEUTRAL).format(fact=fact, fact_lc=_lc(fact))
        lines.append(f"{username(rng)}: {text}")
        flags.append(int(is_insult))
    return "\n".join(lines), flags
