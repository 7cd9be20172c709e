"""Invented names built from syllables, so each name has one consistent spelling per language.

A syllable is (consonant, vowel, final-n). The Latin spelling is shared by English and Spanish; Korean
composes the matching Hangul block and Japanese uses katakana. Syllables whose katakana would need a
digraph (si, ti, tu, di, du, hu) are left out, and a bare-vowel syllable only starts a name, so two
different syllable sequences can never share a Latin spelling ("kan-a" vs "ka-na").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LANGS = ("en", "ko", "es", "ja")

_VOWELS = "aiueo"
_KATAKANA = {
    "": "アイウエオ",
    "k": "カキクケコ",
    "g": "ガギグゲゴ",
    "s": "サ・スセソ",
    "t": "タ・・テト",
    "d": "ダ・・デド",
    "n": "ナニヌネノ",
    "h": "ハヒ・ヘホ",
    "b": "バビブベボ",
    "p": "パピプペポ",
    "m": "マミムメモ",
    "r": "ラリルレロ",
}
# Hangul initial-consonant index (loanword convention: k->ㅋ, g->ㄱ, t->ㅌ, d->ㄷ, p->ㅍ, b->ㅂ).
_HANGUL_INITIAL = {"": 11, "k": 15, "g": 0, "s": 9, "t": 16, "d": 3, "n": 2, "h": 18,
                   "b": 7, "p": 17, "m": 6, "r": 5}
_HANGUL_VOWEL = {"a": 0, "e": 5, "i": 20, "o": 8, "u": 13}
_HANGUL_FINAL_N = 4

# Short English words a syllable name could spell; never used as names.
ENGLISH_WORDS = frozenset(
    "are one ten tone pine done bone mine time name same nine make take home game more some base sure pure "
    "rare dare here bake dine gone none note rope tide ride side hide made sane tune dune mode code kite bite "
    "gate date rate mate hate pane mane ban man ran tan pan can den hen pen bin pin sin tin din kin gin son ton "
    "don bun gun nun pun run sun bed bad bag big dog god hug mug pig rag tag bug dig get got hot not pot rot "
    "ago age ate ape dome hope hero mare mere pose rose nose robe rude tube kin dip hip rip tip sip nap map "
    "moron taken tame tone bake "
    "tap gap sap rug tug dug hum gum sum rum bum mud bud pup mom pop mop hop top cop dot".split()
)

SYLLABLES: list[tuple[str, str]] = [
    (c, v) for c in _KATAKANA for i, v in enumerate(_VOWELS) if _KATAKANA[c][i] != "・"
]


@dataclass(frozen=True)
class Name:
    """One name in every language; index with a language code: name["ko"]."""

    en: str
    ko: str
    es: str
    ja: str

    def __getitem__(self, lang: str) -> str:
        return getattr(self, lang)

    def map(self, fn) -> Name:
        """A new Name with fn(lang, text) applied to each rendering."""
        return Name(**{lang: fn(lang, self[lang]) for lang in LANGS})

    @staticmethod
    def join(parts: list[Name], seps: dict[str, str]) -> Name:
        return Name(**{lang: seps[lang].join(p[lang] for p in parts) for lang in LANGS})


def _render(sylls: list[tuple[str, str, bool]]) -> Name:
    latin = "".join(c + v + ("n" if n else "") for c, v, n in sylls).capitalize()
    hangul = "".join(
        chr(0xAC00 + (_HANGUL_INITIAL[c] * 21 + _HANGUL_VOWEL[v]) * 28 + (_HANGUL_FINAL_N if n else 0))
        for c, v, n in sylls
    )
    kana = "".join(_KATAKANA[c][_VOWELS.index(v)] + ("ン" if n else "") for c, v, n in sylls)
    return Name(en=latin, ko=hangul, es=latin, ja=kana)


class NameMaker:
    """Draws unique names from one seeded stream; no two names share any rendering."""

    def __init__(self, rng: random.Random, reserved: set[str] = frozenset()):
        self.rng = rng
        self.used: set[str] = set(ENGLISH_WORDS) | {r.lower() for r in reserved}

    def make(self, n_syllables: tuple[int, int] = (2, 3), final_n: float = 0.15) -> Name:
        for _ in range(10_000):
            k = self.rng.randint(*n_syllables)
            sylls = []
            for i in range(k):
                pool = SYLLABLES if i == 0 else [s for s in SYLLABLES if s[0]]
                c, v = self.rng.choice(pool)
                sylls.append((c, v, self.rng.random() < final_n))
            name = _render(sylls)
            keys = {name.en.lower(), name.ko, name.ja}
            if len(name.en) >= 3 and not keys & self.used:
                self.used |= keys
                return name
        raise RuntimeError("ran out of names")  # unreachable at the sizes the world uses
