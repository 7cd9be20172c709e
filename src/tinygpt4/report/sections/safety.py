"""Safety (evals/<stage>/safety*.json): every number each safety evaluation reports, as it reports it."""

from __future__ import annotations

from tinygpt4.report.blocks import Doc, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


def _flatten(summary: dict, prefix: str = "") -> list[tuple[str, float]]:
    """The summary's numbers, one level of nesting as "outer.inner"; flags and timings left out."""
    out = []
    for k, v in summary.items():
        key = f"{prefix}{k}"
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            if not key.endswith("wall_s"):
                out.append((key, v))
        elif isinstance(v, dict) and not prefix:
            out += _flatten(v, key + ".")
    return out


def _measure(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return pct(value) if 0 <= value <= 1 else num(value)


@section("safety", order=130)
def safety(doc: Doc) -> None:
    run = doc.run
    rows = []
    for s in run.eval_stages:
        for task, res in run.evals[s].items():
            if not task.startswith("safety"):
                continue
            for key, value in _flatten(res.get("summary", {})):
                rows.append([stage_label(s), task, key, _measure(value)])
    if not rows:
        return
    doc.h(2, "Safety")
    doc.p("Safety evaluations (disallowed, sensitive and benign look-alike prompts), graded by the rubric "
          "graders the RL reward uses; numbers as each evaluation reports them.")
    doc.table(["stage", "evaluation", "measure", "value"], rows)
