"""Factuality by category: the model answers each question in its own words, scored by normalised exact
match of the first line of its answer against the reference (and, as a looser second number, whether the
reference appears in the answer).

A chat model is asked through its chat template; a base model gets the plain-text prompt
"Q: <question>\\nA:" and its continuation is cut at the end of the line.
"""

from __future__ import annotations

import time
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.evals.common import contains_answer, exact_match, group_accuracy, result, rounded
from tinygpt4.evals.protocol import LanguageModel


def qa_prompt(question: str) -> str:
    return f"Q: {question.strip()}\nA:"


def load_items(path: str | Path) -> list[dict]:
    from tinygpt4.data.readers import read_jsonl

    items = []
    for i, obj in enumerate(read_jsonl(path), 1):
        if not isinstance(obj.get("question"), str) or not isinstance(obj.get("answer"), str):
            raise UserError(f"{path}: record {i}: needs string \"question\" and \"answer\"")
        items.append({"question": obj["question"], "answer": obj["answer"],
                      "category": obj.get("category", "all"), "lang": obj.get("lang", "en")})
    return items


def evaluate(
    lm: LanguageModel,
    path: str | Path,
    *,
    task: str = "factuality",
    chat: bool = True,
    max_tokens: int = 32,
    limit: int | None = None,
) -> dict:
    items = load_items(path)[:limit]
    t0 = time.perf_counter()
    if chat:
        outputs = lm.generate([[{"role": "user", "content": it["question"]}] for it in items], max_tokens=max_tokens)
    else:
        outputs = lm.complete([qa_prompt(it["question"]) for it in items], max_tokens=max_tokens, stop=["\n"])
    wall = time.perf_counter() - t0
    for it, out in zip(items, outputs):
        it["output"] = out
        it["exact_match"] = exact_match(out, it["answer"])
        it["contains"] = contains_answer(out, it["answer"])
    n = len(items)
    summary = {
        "n": n,
        "exact_match": sum(it["exact_match"] for it in items) / n if n else None,
        "contains": sum(it["contains"] for it in items) / n if n else None,
        "by_category": group_accuracy(items, "category", "exact_match"),
        "by_lang": group_accuracy(items, "lang", "exact_match"),
        "wall_s": wall,
    }
    config = {"path": str(path), "prompt": "chat" if chat else "Q: <question>\\nA:", "max_tokens": max_tokens,
              "limit": limit, "model": getattr(lm, "name", None),
              "metric": "normalised exact match of the first line (NFKC, lower case, no punctuation/articles)"}
    return result(task, config, rounded(summary), items)
