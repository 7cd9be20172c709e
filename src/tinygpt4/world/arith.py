"""Arithmetic problems, with a fixed set of held-out operand pairs that no training text ever uses."""

from __future__ import annotations

import random
import zlib

OPS = ("+", "-", "×")


def result(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def is_heldout(a: int, op: str, b: int) -> bool:
    """About one pair in eight is held out; addition and multiplication are held out in both orders."""
    x, y = (min(a, b), max(a, b)) if op != "-" else (a, b)
    return zlib.crc32(f"{x}{op}{y}".encode()) % 8 == 0


def sample(rng: random.Random, heldout: bool) -> tuple[int, str, int]:
    while True:
        op = rng.choice(OPS)
        if op == "+":
            a, b = rng.randint(1, 99), rng.randint(1, 99)
        elif op == "-":
            a = rng.randint(1, 99)
            b = rng.randint(0, a)
        else:
            a, b = rng.randint(2, 12), rng.randint(2, 12)
        if is_heldout(a, op, b) == heldout:
            return a, op, b


def distractors(rng: random.Random, answer: int, k: int = 3) -> list[int]:
    pool = sorted({answer + d for d in (-10, -2, -1, 1, 2, 10, 11, -11)} - {answer})
    pool = [p for p in pool if p >= 0]
    return rng.sample(pool, k)
