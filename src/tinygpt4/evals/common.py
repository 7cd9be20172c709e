"""What every evaluation shares: the result file, answer normalisation, small numeric helpers."""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import re
import string
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tinygpt4.errors import UserError
from tinygpt4.runtime import atomic_write_text

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def result(task: str, config: dict, summary: dict, items: list[dict]) -> dict:
    return {"task": task, "config": config, "summary": summary, "items": items}


def unsupported(task: str, config: dict, reason: str) -> dict:
    """The result of a task the backend cannot run: no numbers, and the reason why."""
    return result(task, config, {"unsupported": True, "reason": reason}, [])


def write_result(out_dir: str | Path, res: dict) -> Path:
    """Write `out_dir/<task>.json` atomically, so a reader never sees half a file."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{res['task']}.json"
    atomic_write_text(path, json.dumps(res, ensure_ascii=False, indent=1))
    return path


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation that also works for Hangul and kana: NFKC, lower case, no punctuation,
    no English articles, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith("P") or ch in string.punctuation else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].strip() if text else ""


_FINAL = re.compile(r"\banswer is\b", re.IGNORECASE)
# How results describe the span they grade (see `final_answer`).
GRADED_SPAN = 'the answer in the first line (what follows its last "answer is", else the whole line)'


def final_answer(text: str) -> str:
    """The answer in the first line of a reply: what follows the last "answer is" when the reply works
    its way there ("Bar 2 is Kira, so the answer is Kira."), else the whole line."""
    line = first_line(text)
    parts = _FINAL.split(line)
    return parts[-1].strip() if len(parts) > 1 else line


def reply_working(text: str) -> str:
    """The working before the answer in the first line of a reply (what precedes its last "answer is"); empty
    when the reply gives only an answer."""
    parts = _FINAL.split(first_line(text))
    return parts[-2] if len(parts) > 1 else ""


def exact_match(prediction: str, reference: str) -> bool:
    """Normalised exact match of the prediction's final answer (see `final_answer`) against the reference."""
    return normalize_answer(final_answer(prediction)) == normalize_answer(reference)


def _unspaced_script(text: str) -> bool:
    """Text in a script written without spaces between words (Han, kana) or with particles glued to
    words (Hangul), where a reference can only be found as a substring."""
    return any(0x3040 <= ord(ch) <= 0x30FF or 0x4E00 <= ord(ch) <= 0x9FFF or 0xAC00 <= ord(ch) <= 0xD7AF
               for ch in text)


def contains_answer(prediction: str, reference: str) -> bool:
    """The normalised reference appears in the prediction's normalised final answer: as whole words,
    or as a substring for Chinese/Japanese/Korean text ("ロデンプンはギテプ大陸に..." contains "ギテプ")."""
    ref = normalize_answer(reference)
    if not ref:
        return False
    pred = normalize_answer(final_answer(prediction))
    if _unspaced_script(ref):
        return ref in pred
    return f" {ref} " in f" {pred} "


def softmax(scores: Sequence[float]) -> list[float]:
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


def mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def rounded(x: Any, digits: int = 4) -> Any:
    if isinstance(x, float):
        return round(x, digits) if math.isfinite(x) else None
    if isinstance(x, list):
        return [rounded(v, digits) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    return x


def group_by(items: list[dict], key: str | Callable[[dict], Any]) -> dict[Any, list[dict]]:
    """The items in groups, by item[key] (or key(item)), the groups in sorted order, each in the items' order."""
    label = key if callable(key) else (lambda it: it[key])
    groups: dict[Any, list[dict]] = {}
    for it in items:
        groups.setdefault(label(it), []).append(it)
    return dict(sorted(groups.items()))


def group_accuracy(items: list[dict], key: str, correct_key: str) -> dict[str, dict]:
    """{group: {"n", "acc"}} over items, grouped by item[key]."""
    return {g: {"n": len(v), "acc": sum(bool(it[correct_key]) for it in v) / len(v)}
            for g, v in group_by(items, lambda it: str(it[key])).items()}


def timed(call: Callable[..., Any], *args, **kwargs) -> tuple[Any, float]:
    """call(*args, **kwargs) and the seconds it took: the backend's time, which a result reports as wall_s."""
    t0 = time.perf_counter()
    out = call(*args, **kwargs)
    return out, time.perf_counter() - t0


def resolve_path(rel: str, roots: Sequence[Path]) -> Path | None:
    """The first existing `root / rel`, for data files whose paths are relative to some dataset root."""
    p = Path(rel)
    if p.is_absolute():
        return p if p.is_file() else None
    for root in roots:
        if (root / p).is_file():
            return root / p
    return None


def search_roots(data_file: str | Path) -> list[Path]:
    """Where relative paths inside a data file may point: its folder and the two folders above it
    (the world writes paths relative to its root, one level above image_qa/image_qa.jsonl)."""
    here = Path(data_file).resolve().parent
    return [here, *list(here.parents)[:2]]


def image_data_url(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def inline_images(messages: list[dict], roots: Sequence[Path], where: str = "") -> list[dict]:
    """A copy of the messages with every image given by a relative path turned into a data URL, so that
    every backend (a local checkpoint, an HTTP endpoint) receives the same self-contained request."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_url" and not part["image_url"]["url"].startswith("data:"):
                    rel = part["image_url"]["url"]
                    found = resolve_path(rel, roots)
                    if found is None:
                        raise UserError(f"{where or 'messages'}: image not found: {rel}")
                    part = {"type": "image_url", "image_url": {"url": image_data_url(found)}}
                parts.append(part)
            m = {**m, "content": parts}
        out.append(m)
    return out
