"""Factuality by category: the model answers each question in its own words; the first line of the answer
is normalised (NFKC, case, punctuation, articles) and scored two ways against the reference:

  exact_match  the whole line equals the reference;
  contains     the reference appears in the line (whole words; substring for Japanese and Korean), which
               credits a sentence answer such as "Gudo is located in Maton." for "Maton".

A chat model is asked through its chat template; a base model gets a plain-text prompt in the style of the
question-and-answer pages of its corpus ("Q: <question>\\nA:", localised) and its continuation is cut at
the end of the line.

Given `prefaces` (finished conversation turns, e.g. a picture, its question and answer), a chat model is also
asked every question after one of them (`*_after_picture`): a multimodal model should answer a text question
in a conversation that began with an image as it would alone.
"""

from __future__ import annotations

from pathlib import Path

from tinygpt4.data.readers import read_jsonl
from tinygpt4.errors import UserError
from tinygpt4.evals.common import (
    GRADED_SPAN,
    contains_answer,
    exact_match,
    group_by,
    result,
    rounded,
    timed,
    unsupported,
)
from tinygpt4.evals.protocol import LanguageModel, Unsupported

QA_TEMPLATES = {
    "en": "Q: {question}\nA:",
    "es": "Pregunta: {question}\nRespuesta:",
    "ko": "질문: {question}\n답:",
    "ja": "質問：{question}\n答え：",
}


def qa_prompt(question: str, lang: str = "en") -> str:
    return QA_TEMPLATES.get(lang, QA_TEMPLATES["en"]).format(question=question.strip())


def load_items(path: str | Path) -> list[dict]:
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
    prefaces: list[list[dict]] | None = None,
) -> dict:
    items = load_items(path)[:limit]
    prefaces = prefaces if chat and prefaces else None
    config = {"path": str(path), "prompt": "chat" if chat else QA_TEMPLATES, "max_tokens": max_tokens,
              "limit": limit, "model": getattr(lm, "name", None), "prefaces": len(prefaces or []),
              "metrics": {"exact_match": f"normalised {GRADED_SPAN} == normalised reference",
                          "contains": f"normalised reference within {GRADED_SPAN}"}}
    if chat:
        convs = [[{"role": "user", "content": it["question"]}] for it in items]
        if prefaces:
            convs += [prefaces[i % len(prefaces)] + c for i, c in enumerate(convs)]
    try:
        if chat:
            outputs, wall = timed(lm.generate, convs, max_tokens=max_tokens)
        else:
            outputs, wall = timed(lm.complete, [qa_prompt(it["question"], it["lang"]) for it in items],
                                  max_tokens=max_tokens, stop=["\n"])
    except Unsupported as e:
        return unsupported(task, config, str(e))
    n = len(items)
    for i, it in enumerate(items):
        it["output"] = outputs[i]
        it["exact_match"] = exact_match(outputs[i], it["answer"])
        it["contains"] = contains_answer(outputs[i], it["answer"])
        if prefaces:
            it["preface"] = i % len(prefaces)
            it["output_after_picture"] = outputs[n + i]
            it["exact_match_after_picture"] = exact_match(outputs[n + i], it["answer"])
            it["contains_after_picture"] = contains_answer(outputs[n + i], it["answer"])
    summary = {"n": n, **_scores(items), "by_category": _by(items, "category"), "by_lang": _by(items, "lang"),
               "wall_s": wall}
    return result(task, config, rounded(summary), items)


SCORES = ("exact_match", "contains", "exact_match_after_picture", "contains_after_picture")


def _scores(items: list[dict]) -> dict:
    if not items:
        return {"exact_match": None, "contains": None}
    return {k: sum(it[k] for it in items) / len(items) for k in SCORES if k in items[0]}


def _by(items: list[dict], key: str) -> dict[str, dict]:
    return {g: {"n": len(v), **_scores(v)} for g, v in group_by(items, lambda it: str(it[key])).items()}
