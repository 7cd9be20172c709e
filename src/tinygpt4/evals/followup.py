"""Follow-up questions that need the conversation so far ("And what is its capital?").

Each item is asked twice: with its earlier turns, and as the standalone final question without them.
The gap between the two accuracies is how much the model uses context; the standalone number is the
baseline a model gets by guessing what "it" refers to.
"""

from __future__ import annotations

import time
from pathlib import Path

from tinygpt4.errors import UserError
from tinygpt4.evals.common import contains_answer, exact_match, inline_images, result, rounded, search_roots
from tinygpt4.evals.protocol import LanguageModel, Unsupported, has_images


def load_items(path: str | Path) -> list[dict]:
    from tinygpt4.data.readers import read_jsonl, validate_messages

    items = []
    for i, obj in enumerate(read_jsonl(path), 1):
        where = f"{path}: record {i}"
        validate_messages(obj.get("messages"), where)
        standalone = obj.get("standalone")
        if standalone is None:  # no standalone form given: the final user turn alone
            standalone = [m for m in obj["messages"] if m["role"] == "user"][-1:]
        validate_messages(standalone, f"{where} (standalone)")
        if not isinstance(obj.get("answer"), str):
            raise UserError(f"{where}: needs a string \"answer\"")
        items.append({"messages": obj["messages"], "standalone": standalone, "answer": obj["answer"],
                      "kind": obj.get("kind") or (obj.get("meta") or {}).get("kind", "all")})
    return items


def evaluate(
    lm: LanguageModel,
    path: str | Path,
    *,
    task: str = "followup",
    max_tokens: int = 32,
    limit: int | None = None,
) -> dict:
    config = {"path": str(path), "max_tokens": max_tokens, "limit": limit, "model": getattr(lm, "name", None),
              "metric": "normalised exact match of the first line; 'contains' = reference within the reply"}
    items = load_items(path)[:limit]
    if not getattr(lm, "supports_images", False):
        items = [it for it in items if not has_images(it["messages"]) and not has_images(it["standalone"])]
    roots = search_roots(path)
    conversations = [inline_images(it["messages"], roots, str(path)) for it in items]
    conversations += [inline_images(it["standalone"], roots, str(path)) for it in items]
    t0 = time.perf_counter()
    try:
        outputs = lm.generate(conversations, max_tokens=max_tokens)
    except Unsupported as e:
        from tinygpt4.evals.common import unsupported

        return unsupported(task, config, str(e))
    wall = time.perf_counter() - t0
    n = len(items)
    for i, it in enumerate(items):
        it["output"], it["output_standalone"] = outputs[i], outputs[n + i]
        it["correct"] = exact_match(it["output"], it["answer"])
        it["correct_standalone"] = exact_match(it["output_standalone"], it["answer"])
        it["contains"] = contains_answer(it["output"], it["answer"])
        it["contains_standalone"] = contains_answer(it["output_standalone"], it["answer"])

    def frac(key: str) -> float | None:
        return sum(it[key] for it in items) / n if n else None

    summary = {
        "n": n,
        "acc_with_context": frac("correct"),
        "acc_standalone": frac("correct_standalone"),
        "contains_with_context": frac("contains"),
        "contains_standalone": frac("contains_standalone"),
        "wall_s": wall,
    }
    return result(task, config, rounded(summary), items)
