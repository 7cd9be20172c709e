"""Image question answering per task type, against a blind baseline.

Each item's images go into one user message as image_url parts (paths relative to the data file's folder
or the dataset root above it, sent as data URLs), followed by the question. The blind baseline asks the same
questions with every image replaced by a blank grey one: what a model scores there it gets from the
text alone (priors, answer frequencies), so the gap is what it reads from the pixels. Beside both, the summary
gives the majority answer's accuracy (always giving the task's most common reference answer): a model that
answers "right" to every left-or-right question scores it without reading anything, even when its blind
replies, off the task's answer set, score nothing.

Each item is also asked a second time as the second turn of a conversation: after the item half the list
further on (another task's picture on the world's benchmark) and its reference answer. A model that reads a
picture only when it comes first scores well alone and poorly there; the GPT-4 setting puts images anywhere
in a multi-turn conversation.

An item may name the step its answer is reached by ("working": "bar 2" for a chart question whose tallest bar
is bar 2 and whose answer is the name the question gives that bar). For those, the summary splits a wrong
answer into its two halves: how often the reply's working names that step (what the picture had to give) and
how often the answer is right when it does (what the reply had to do with it).
"""

from __future__ import annotations

import base64
import io
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from PIL import Image

from tinygpt4.data.readers import read_jsonl
from tinygpt4.errors import UserError
from tinygpt4.evals.common import (
    GRADED_SPAN,
    contains_answer,
    exact_match,
    group_by,
    inline_images,
    normalize_answer,
    reply_working,
    result,
    rounded,
    search_roots,
    timed,
    unsupported,
)
from tinygpt4.evals.protocol import LanguageModel, Unsupported


@lru_cache(maxsize=4)
def blank_image_url(size: int = 64) -> str:
    """A data URL of a uniform mid-grey PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def messages_for(item: dict, blind: bool = False) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": blank_image_url() if blind else path}}
             for path in item["images"]]
    parts.append({"type": "text", "text": item["question"]})
    return [{"role": "user", "content": parts}]


def earlier_item(i: int, n: int) -> int:
    """The item asked before item i in its two-turn conversation: half the list further on."""
    return (i + n // 2) % n


def answered_turn(item: dict) -> list[dict]:
    """item's picture and question, then its reference answer: a finished turn to ask something after."""
    return messages_for(item) + [{"role": "assistant", "content": item["answer"]}]


def messages_after(item: dict, earlier: dict) -> list[dict]:
    """item's question as the second turn, after earlier's question and its reference answer."""
    return answered_turn(earlier) + messages_for(item)


def picture_turns(path: str | Path, n: int = 16) -> list[list[dict]]:
    """n finished picture turns (the picture and its question, then the reference answer), spread over the
    file's tasks, images inlined: the conversations other evaluations ask a text question after."""
    items = load_items(path)
    picked = items[::max(1, len(items) // n)][:n]
    roots = search_roots(path)
    return [inline_images(answered_turn(it), roots, str(path)) for it in picked]


def load_items(path: str | Path) -> list[dict]:
    items = []
    for i, obj in enumerate(read_jsonl(path), 1):
        images = obj.get("images")
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
            raise UserError(f"{path}: record {i}: \"images\" must be a list of paths")
        if not isinstance(obj.get("question"), str) or not isinstance(obj.get("answer"), str):
            raise UserError(f"{path}: record {i}: needs string \"question\" and \"answer\"")
        if not isinstance(obj.get("working", ""), str):
            raise UserError(f"{path}: record {i}: \"working\" must be a string")
        items.append({"images": images, "question": obj["question"], "answer": obj["answer"],
                      "task": obj.get("task", "all"), **({"working": obj["working"]} if obj.get("working") else {})})
    return items


def evaluate(
    lm: LanguageModel,
    path: str | Path,
    *,
    task: str = "image_qa",
    max_tokens: int = 40,
    blind_baseline: bool = True,
    after_turn: bool = True,
    limit: int | None = None,
) -> dict:
    config = {"path": str(path), "max_tokens": max_tokens, "blind_baseline": blind_baseline,
              "after_turn": after_turn, "limit": limit,
              "model": getattr(lm, "name", None), "blind_image": "uniform grey 64x64 PNG",
              "metric": f"normalised exact match of {GRADED_SPAN}"}
    if not getattr(lm, "supports_images", False):
        return unsupported(task, config, "the model takes no image input")
    items = load_items(path)[:limit]
    roots = search_roots(path)
    conversations = [inline_images(messages_for(it), roots, str(path)) for it in items]
    n = len(items)
    if blind_baseline:
        conversations += [messages_for(it, blind=True) for it in items]
    if after_turn:
        conversations += [inline_images(messages_after(it, items[earlier_item(i, n)]), roots, str(path))
                          for i, it in enumerate(items)]
    try:
        outputs, wall = timed(lm.generate, conversations, max_tokens=max_tokens)
    except Unsupported as e:
        return unsupported(task, config, str(e))
    blind_at, after_at = n, n * (2 if blind_baseline else 1)  # where each variant's outputs start
    for i, it in enumerate(items):
        it["output"] = outputs[i]
        it["correct"] = exact_match(outputs[i], it["answer"])
        it["contains"] = contains_answer(outputs[i], it["answer"])
        if "working" in it:
            it["working_ok"] = names_step(outputs[i], it["working"])
        if blind_baseline:
            it["output_blind"] = outputs[blind_at + i]
            it["correct_blind"] = exact_match(it["output_blind"], it["answer"])
        if after_turn:
            it["earlier"] = earlier_item(i, n)
            it["output_after"] = outputs[after_at + i]
            it["correct_after"] = exact_match(it["output_after"], it["answer"])
    summary = _summary(items, blind_baseline)
    summary["wall_s"] = wall
    return result(task, config, rounded(summary), items)


def names_step(output: str, working: str) -> bool:
    """Whether the reply's working names the step, as whole words ("bar 2", not "bar 21"), any case."""
    return re.search(rf"(?<!\w){re.escape(working)}(?!\w)", reply_working(output), re.IGNORECASE) is not None


def _summary(items: list[dict], blind: bool) -> dict:
    def stats(sub: list[dict]) -> dict:
        out = {"n": len(sub), "acc": sum(it["correct"] for it in sub) / len(sub),
               "acc_majority": Counter(normalize_answer(it["answer"]) for it in sub).most_common(1)[0][1] / len(sub)}
        if blind:
            out["acc_blind"] = sum(it["correct_blind"] for it in sub) / len(sub)
        if "correct_after" in sub[0]:
            out["acc_after_turn"] = sum(it["correct_after"] for it in sub) / len(sub)
        worked = [it for it in sub if "working" in it]
        if worked:
            right = [it for it in worked if it["working_ok"]]
            out["working_acc"] = len(right) / len(worked)
            out["acc_given_working"] = sum(it["correct"] for it in right) / len(right) if right else None
        return out

    summary = stats(items) if items else {"n": 0}
    summary["by_task"] = {t: stats(v) for t, v in group_by(items, "task").items()}
    if items:  # overall: each task's own most common answer, not one answer for every task
        summary["acc_majority"] = sum(v["acc_majority"] * v["n"] for v in summary["by_task"].values()) / len(items)
    return summary
