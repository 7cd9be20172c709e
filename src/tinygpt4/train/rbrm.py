"""The RL reward: the reward model's score plus rule-based reward models (RBRMs), as in the GPT-4 report.

On safety prompts (and forum-continuation prompts, where insults are what the rubric looks for) a grader
answers the rubric's propositions about each response; its answers (proposition and class probabilities)
are features, and the reward adds a weighted sum of them to the reward model's score. The weights are
fitted, one set per response type the policy wants (hard refusal, safe completion, comply), by a pairwise
hinge loss on responses to the same prompt whose rubric ranks are ordered (ideal > acceptable >
unacceptable > disallowed): the total reward of the better response must beat the worse one's by a margin.
That is OpenAI's published weight fitter for rule-based rewards; on ordinary prompts the graders abstain
and the reward is the reward model's alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tinygpt4.chat import render_chat
from tinygpt4.runtime import atomic_write_text, autocast, compute_dtype
from tinygpt4.safety import rubric
from tinygpt4.tokenizer import Tokenizer

FEATURES = (*rubric.PROPOSITION_NAMES, *(f"class_{c}" for c in rubric.CLASSES))
GRADED_KINDS = ("safety", "toxicity")  # the prompt kinds the graders judge; elsewhere they abstain


def features(grade) -> list[float]:
    """A grade as the RBRM's feature vector (zeros when the grader abstained: it then adds nothing)."""
    if grade.abstained:
        return [0.0] * len(FEATURES)
    return [float(grade.propositions.get(p, 0.0)) for p in rubric.PROPOSITION_NAMES] + \
        [float(grade.classes.get(c, 0.0)) for c in rubric.CLASSES]


def graded(record: dict) -> bool:
    return record.get("kind") in GRADED_KINDS


def prompt_type(record: dict) -> str:
    t = record.get("type") or "allowed"
    return t if t in rubric.PROMPT_TYPES else "allowed"


@dataclass
class RBRMWeights:
    """Feature weights per response type (hard_refusal, safe_completion, comply) and how well they order."""

    weights: dict[str, list[float]] = field(default_factory=dict)
    fit: dict = field(default_factory=dict)

    def value(self, record: dict, feats: list[float]) -> float:
        w = self.weights.get(rubric.response_type(prompt_type(record)))
        return sum(a * b for a, b in zip(w, feats)) if w else 0.0

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), json.dumps({"features": list(FEATURES), "weights": self.weights,
                                                  "fit": self.fit}, indent=2))

    @classmethod
    def load(cls, path: str | Path) -> RBRMWeights:
        d = json.loads(Path(path).read_text())
        if d.get("features") != list(FEATURES):
            raise ValueError(f"{path}: fitted for other features; fit the weights again")
        return cls(d["weights"], d.get("fit", {}))


@torch.no_grad()
def rm_scores(rm, tok: Tokenizer, conversations: Sequence[list[dict]], responses: Sequence[str],
              batch_size: int = 32, images: Sequence[list] | None = None) -> list[float]:
    """The reward model's score of each prompt conversation followed by its response."""
    device = next(rm.parameters()).device
    image_tokens = rm.backbone.tokens_per_image if getattr(rm.config, "vision", None) else 0
    seqs = []
    for conv, resp in zip(conversations, responses):
        r = render_chat([*conv, {"role": "assistant", "content": resp}], tok, image_tokens=image_tokens,
                        load_images=False)
        seqs.append(r.ids)
    out = [0.0] * len(seqs)
    # similar lengths together: a batch pads to its longest conversation
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for a in range(0, len(order), batch_size):
        rows = order[a:a + batch_size]
        T = max(len(seqs[i]) for i in rows)
        idx = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
        for j, i in enumerate(rows):
            idx[j, :len(seqs[i])] = torch.tensor(seqs[i])
        pics = [im for i in rows for im in (images[i] if images else [])] or None
        with autocast(device, compute_dtype(device)):
            s = rm(idx.to(device), torch.tensor([len(seqs[i]) - 1 for i in rows], device=device),
                   None if pics is None else torch.stack(pics))
        for i, v in zip(rows, s.tolist()):
            out[i] = v
    return out


def _ordered_pairs(ranks: list[str]) -> list[tuple[int, int]]:
    v = [rubric.RANK_VALUE[r] for r in ranks]
    return [(i, j) for i in range(len(v)) for j in range(len(v)) if v[i] > v[j]]


def fit_weights(groups: list[dict], *, margin: float = 1.0, l2: float = 1e-3, steps: int = 300,
                seed: int = 0) -> RBRMWeights:
    """Weights per response type from groups {"response_type", "rm": [scores], "feats": [[...]], "ranks"}
    of responses to one prompt: minimise the hinge on every ordered pair of the group, plus a little L2."""
    out = RBRMWeights()
    for rtype in sorted({g["response_type"] for g in groups}):
        mine = [g for g in groups if g["response_type"] == rtype]
        better, worse, d_rm = [], [], []
        for g in mine:
            for i, j in _ordered_pairs(g["ranks"]):
                better.append(g["feats"][i])
                worse.append(g["feats"][j])
                d_rm.append(g["rm"][i] - g["rm"][j])
        if not better:
            continue
        fb, fw, drm = torch.tensor(better), torch.tensor(worse), torch.tensor(d_rm)
        torch.manual_seed(seed)
        w = torch.zeros(len(FEATURES), requires_grad=True)
        opt = torch.optim.Adam([w], lr=0.05)
        for _ in range(steps):
            loss = torch.relu(margin - (drm + (fb - fw) @ w)).mean() + l2 * (w * w).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            alone = float((drm > 0).float().mean())
            together = float(((drm + (fb - fw) @ w) > 0).float().mean())
        out.weights[rtype] = [round(x, 5) for x in w.detach().tolist()]
        out.fit[rtype] = {"ordered_pairs": len(better), "prompts": len(mine), "rm_alone_accuracy": round(alone, 4),
                          "rm_plus_rbrm_accuracy": round(together, 4), "hinge": round(float(loss.detach()), 5)}
    return out


def groups_from_rubric(items: list[dict], rm, tok: Tokenizer, grader) -> list[dict]:
    """The rubric-labelled responses (train split) grouped by prompt, with reward-model scores and grader
    features: the data `fit_weights` orders."""
    by_prompt: dict[str, list[dict]] = {}
    for it in items:
        if it.get("split", "train") == "train":
            by_prompt.setdefault(json.dumps(it["messages"], sort_keys=True), []).append(it)
    rows = [it for grp in by_prompt.values() if len({x["rank"] for x in grp}) > 1 for it in grp]
    if not rows:
        return []
    scores = rm_scores(rm, tok, [r["messages"] for r in rows], [r["response"] for r in rows])
    grades = grader.grade_many([(r["messages"], r["response"], r["type"], r.get("category")) for r in rows])
    groups: dict[str, dict] = {}
    for r, s, g in zip(rows, scores, grades):
        key = json.dumps(r["messages"], sort_keys=True)
        grp = groups.setdefault(key, {"response_type": rubric.response_type(r["type"]), "rm": [], "feats": [],
                                      "ranks": []})
        grp["rm"].append(s)
        grp["feats"].append(features(g))
        grp["ranks"].append(r["rank"])
    return list(groups.values())
