"""Follow-up questions that need the conversation so far ("And what is its capital?").

Each item is asked with its earlier turns and as the standalone final question without them (and, when
the data gives one, as an explicit question that names the entity: the ceiling). The gap between the
first two is how much the model uses context; the standalone number is what guessing what "it" refers to
gets. Scored like factuality: `acc_*` = the normalised reference appears in the first line of the reply,
`exact_*` = the first line is exactly the reference.
"""

from __future__ import annotations

from pathlib import Path

from tinygpt4.data.readers import read_jsonl, validate_messages
from tinygpt4.errors import UserError
from tinygpt4.evals.common import (
    GRADED_SPAN,
    contains_answer,
    exact_match,
    group_by,
    inline_images,
    result,
    rounded,
    search_roots,
    timed,
    unsupported,
)
from tinygpt4.evals.protocol import LanguageModel, Unsupported, has_images


def load_items(path: str | Path) -> list[dict]:
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
        explicit = obj.get("explicit")
        if explicit is not None:
            validate_messages(explicit, f"{where} (explicit)")
        items.append({"messages": obj["messages"], "standalone": standalone, "explicit": explicit,
                      "answer": obj["answer"], "lang": obj.get("lang", "all")})
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
              "metrics": {"acc": f"normalised reference within {GRADED_SPAN}",
                          "exact": f"{GRADED_SPAN} equals the reference"}}
    items = load_items(path)[:limit]
    if not getattr(lm, "supports_images", False):
        items = [it for it in items if not has_images(it["messages"]) and not has_images(it["standalone"])]
    roots = search_roots(path)
    variants = ["with_context", "standalone"] + (["explicit"] if all(it["explicit"] for it in items) and items else [])
    source = {"with_context": "messages", "standalone": "standalone", "explicit": "explicit"}
    conversations = [inline_images(it[source[v]], roots, str(path)) for v in variants for it in items]
    try:
        outputs, wall = timed(lm.generate, conversations, max_tokens=max_tokens)
    except Unsupported as e:
        return unsupported(task, config, str(e))
    n = len(items)
    summary: dict = {"n": n}
    for k, v in enumerate(variants):
        for i, it in enumerate(items):
            out = outputs[k * n + i]
            it.setdefault("output", {})[v] = out
            it.setdefault("correct", {})[v] = contains_answer(out, it["answer"])
            it.setdefault("exact", {})[v] = exact_match(out, it["answer"])
        summary[f"acc_{v}"] = sum(it["correct"][v] for it in items) / n if n else None
        summary[f"exact_{v}"] = sum(it["exact"][v] for it in items) / n if n else None
    summary["by_lang"] = {g: {"n": len(v), **{f"acc_{x}": sum(it["correct"][x] for it in v) / len(v) for x in variants}}
                          for g, v in group_by(items, "lang").items()}
    summary["wall_s"] = wall
    return result(task, config, rounded(summary), items)
