"""Held-out bits per byte: the model's total negative log-likelihood of unseen text, in bits, divided by
the text's length in UTF-8 bytes. Unlike loss per token it does not depend on the tokenizer, so models
with different vocabularies compare directly.
"""

from __future__ import annotations

import math
from pathlib import Path

from tinygpt4.data.readers import iter_pretrain_texts, read_jsonl
from tinygpt4.errors import UserError
from tinygpt4.evals.common import group_by, result, rounded, timed, unsupported
from tinygpt4.evals.protocol import LanguageModel, Unsupported


def load_texts(path: str | Path) -> list[dict]:
    path = Path(path)
    if path.suffix == ".jsonl":
        out = []
        for i, obj in enumerate(read_jsonl(path), 1):
            if not isinstance(obj.get("text"), str):
                raise UserError(f"{path}: record {i}: needs a string \"text\"")
            out.append({"text": obj["text"], "lang": obj.get("lang", "all"), "kind": obj.get("kind", "all")})
        return [t for t in out if t["text"]]
    return [{"text": t, "lang": "all", "kind": "all"} for t in iter_pretrain_texts([path])]


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    return nll_nats / math.log(2) / n_bytes


def evaluate(lm: LanguageModel, path: str | Path, *, task: str = "bpb", limit: int | None = None) -> dict:
    config = {"path": str(path), "limit": limit, "model": getattr(lm, "name", None)}
    texts = load_texts(path)[:limit]
    try:
        lls, wall = timed(lm.loglikelihood_rolling, [t["text"] for t in texts])
    except Unsupported as e:
        return unsupported(task, config, str(e))
    items = []
    for t, ll in zip(texts, lls):
        n_bytes = len(t["text"].encode("utf-8"))
        items.append({"lang": t["lang"], "kind": t["kind"], "bytes": n_bytes, "nll": -ll,
                      "bpb": bits_per_byte(-ll, n_bytes)})

    def pooled(sub: list[dict]) -> dict:
        n_bytes = sum(it["bytes"] for it in sub)
        return {"n": len(sub), "bytes": n_bytes, "bpb": bits_per_byte(sum(it["nll"] for it in sub), n_bytes)}

    summary = pooled(items) if items else {"n": 0, "bpb": None}
    for key in ("lang", "kind"):
        summary[f"by_{key}"] = {g: pooled(v) for g, v in group_by(items, key).items()}
    summary["wall_s"] = wall
    return result(task, config, rounded(summary), rounded(items))
