"""The capability metric the scaling ladder predicts: mean negative log pass rate on a fixed bucket of exam
questions (the GPT-4 report's metric for predicting a capability from small runs).

The ladder (tinygpt4.scaling.ladder) measures it on every rung and fits a power law in compute to it; the
run's pretrain stage measures it on the trained target to record how far the prediction was off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinygpt4.data.readers import McItem, read_mmlu_dir
from tinygpt4.errors import UserError
from tinygpt4.evals.local import LocalModel
from tinygpt4.evals.protocol import LanguageModel
from tinygpt4.runtime import resolve_device

CAPABILITY_NAME = "mean_neg_log_pass_rate"


def load_exam_items(root, *, lang: str = "en", split: str = "test", limit: int = 200) -> list[McItem]:
    """A fixed bucket of exam questions (MMLU layout: root/<lang>/<split>/ or root/<split>/)."""
    root = Path(root)
    base = root / lang if (root / lang).is_dir() else root
    splits = read_mmlu_dir(base)
    if split not in splits:
        raise UserError(f"{base}: no {split}/ split")
    items = [it for subject in sorted(splits[split]) for it in splits[split][subject]]
    if len(items) > limit:
        # every k-th question, so every subject is represented
        idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
        items = [items[i] for i in idx]
    return items


def capability_metric(model_dir_or_lm: str | Path | LanguageModel, items: list[McItem], *,
                      device: str = "cpu") -> dict:
    """Mean negative log pass rate on a bucket of exam questions, asked in the corpus's own Q:/A: form.

    The pass rate of a question is the probability that one sample (temperature 1) from the model is
    exactly the right answer, p(answer | question): the GPT-4 report's metric for predicting a capability
    from small runs, which, unlike accuracy, moves smoothly long before the model gets questions right.
    `value` is -mean log pass rate (nats per question). Also reported, not predicted: `choice_value`, the
    same with the probability renormalised over the four options (log 4 at chance), and `accuracy`, how
    often the right option scores highest. `model_dir_or_lm` is a checkpoint folder or a LanguageModel."""
    lm = model_dir_or_lm
    if isinstance(lm, str | Path):
        lm = LocalModel(str(lm), device=str(resolve_device(device)))
    reqs = []
    for it in items:
        ctx = f"Q: {it.question}\nA:"
        reqs.extend((ctx, " " + c) for c in it.choices)
    lls = np.array(lm.loglikelihood(reqs), dtype=float)
    neg_log_pass, neg_log_choice, correct, k = [], [], [], 0
    for it in items:
        s = lls[k: k + len(it.choices)]
        k += len(it.choices)
        neg_log_pass.append(-s[it.answer_index])
        neg_log_choice.append(-(s[it.answer_index] - np.logaddexp.reduce(s)))
        correct.append(int(np.argmax(s)) == it.answer_index)
    return {"name": CAPABILITY_NAME, "value": float(np.mean(neg_log_pass)),
            "choice_value": float(np.mean(neg_log_choice)), "accuracy": float(np.mean(correct)), "n": len(items)}
