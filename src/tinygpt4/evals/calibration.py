"""Calibration of multiple-choice answers: does a 70% confident model get 70% right?

The model's probability for each option is the softmax of the options' log-likelihoods (its belief
restricted to the offered options); its answer is the most probable option and its confidence that
probability. Reported: expected calibration error with 10 equal-width bins and with 10 equal-mass bins,
the multi-class Brier score, and the reliability data (per bin: mean confidence, accuracy, count) the
report draws as a diagram, for the letter and the cloze formulation.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from tinygpt4.evals import multiple_choice
from tinygpt4.evals.common import argmax, result, rounded, softmax
from tinygpt4.evals.protocol import LanguageModel


def reliability_bins(conf: list[float], correct: list[bool], n_bins: int = 10, scheme: str = "width") -> list[dict]:
    """Bins of (confidence, correctness) pairs: equal-width bins over [0, 1] or equal-mass bins (edges at the
    confidence quantiles, so each bin holds about n/n_bins items). Empty bins are dropped."""
    pairs = sorted(zip(conf, correct))
    if scheme == "width":
        groups: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
        for c, ok in pairs:
            groups[min(int(c * n_bins), n_bins - 1)].append((c, ok))
        edges = [(b / n_bins, (b + 1) / n_bins) for b in range(n_bins)]
    elif scheme == "mass":
        # Quantile edges; items of equal confidence always share a bin (so ties may leave a bin empty).
        n = len(pairs)
        cuts = [pairs[min(n - 1, round(b * n / n_bins))][0] for b in range(1, n_bins)] if n else []
        groups = [[] for _ in range(n_bins)]
        for c, ok in pairs:
            groups[bisect.bisect_right(cuts, c)].append((c, ok))
        edges = [(g[0][0], g[-1][0]) if g else (0.0, 0.0) for g in groups]
    else:
        raise ValueError(f"unknown binning scheme {scheme!r}")
    bins = []
    for (lo, hi), g in zip(edges, groups):
        if g:
            bins.append({"lo": lo, "hi": hi, "n": len(g), "conf": sum(c for c, _ in g) / len(g),
                         "acc": sum(ok for _, ok in g) / len(g)})
    return bins


def ece(conf: list[float], correct: list[bool], n_bins: int = 10, scheme: str = "width") -> float | None:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over bins."""
    n = len(conf)
    if n == 0:
        return None
    return sum(b["n"] / n * abs(b["acc"] - b["conf"]) for b in reliability_bins(conf, correct, n_bins, scheme))


def brier(probs: list[list[float]], answers: list[int]) -> float | None:
    """Multi-class Brier score: mean over items of sum_k (p_k - 1[k = answer])^2 (0 is perfect, 2 worst)."""
    if not probs:
        return None
    return sum(sum((p - (k == a)) ** 2 for k, p in enumerate(ps)) for ps, a in zip(probs, answers)) / len(probs)


def calibration_summary(probs: list[list[float]], answers: list[int]) -> dict:
    conf = [max(p) for p in probs]
    correct = [argmax(p) == a for p, a in zip(probs, answers)]
    return {
        "n": len(probs),
        "acc": sum(correct) / len(correct) if correct else None,
        "mean_confidence": sum(conf) / len(conf) if conf else None,
        "ece_width": ece(conf, correct, 10, "width"),
        "ece_mass": ece(conf, correct, 10, "mass"),
        "brier": brier(probs, answers),
        "reliability_width": reliability_bins(conf, correct, 10, "width"),
        "reliability_mass": reliability_bins(conf, correct, 10, "mass"),
    }


def from_multiple_choice(mc: dict, *, task: str = "calibration") -> dict:
    """Calibration of an existing multiple-choice result (its per-item log-likelihoods), per formulation,
    at the result's headline shot count."""
    k = mc["summary"].get("headline_shots", max(mc["config"]["shots"]))
    summary: dict = {"source": mc["task"], "shots": k}
    per_form: dict[str, dict] = {}
    items = []
    for form in mc["config"]["formulations"]:
        setting = f"{form}_{k}shot"
        scored = [it for it in mc["items"] if setting in it.get("ll", {})]
        probs = [softmax(it["ll"][setting]) for it in scored]
        answers = [it["answer"] for it in scored]
        cal = calibration_summary(probs, answers)
        per_form[form] = cal
        for key in ("acc", "mean_confidence", "ece_width", "ece_mass", "brier"):
            summary[f"{key}_{form}"] = cal[key]
        for j, (it, p) in enumerate(zip(scored, probs)):
            if len(items) <= j:
                items.append({"subject": it["subject"], "answer": it["answer"]})
            items[j][f"probs_{form}"] = p
    summary["reliability"] = {form: {"width": c["reliability_width"], "mass": c["reliability_mass"]}
                              for form, c in per_form.items()}
    config = {"source": mc["task"], "source_path": mc["config"].get("path"), "shots": k, "n_bins": 10,
              "probabilities": "softmax of the options' log-likelihoods", "model": mc["config"].get("model")}
    return result(task, config, rounded(summary), rounded(items))


def evaluate(lm: LanguageModel, root: str | Path, *, task: str = "calibration", shots: int = 5,
             limit: int | None = None) -> dict:
    mc = multiple_choice.evaluate(lm, root, shots=(shots,), limit=limit)
    return from_multiple_choice(mc, task=task)
