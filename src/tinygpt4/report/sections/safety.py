"""Safety (evals/<stage>/safety.json): the GPT-4 report's Fig. 9 analogue, the incorrect-behaviour rate on
disallowed and on sensitive prompts by stage, then the rates by framing, language and category, and the
rubric's class distribution. Any other safety_* result is listed as it reports its numbers."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, lang_name, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label

TASK = "safety"
TYPE_LABELS = {"disallowed": "disallowed", "sensitive": "sensitive", "benign_lookalike": "benign look-alike"}


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


def _structured(res: dict | None) -> bool:
    return bool(res) and "incorrect_rate_disallowed" in res.get("summary", {})


def _other_results(doc: Doc) -> list[list[str]]:
    """Rows for the safety results this section has no layout for: every number, as reported."""
    rows = []
    for s in doc.run.eval_stages:
        for task, res in doc.run.evals[s].items():
            if task.startswith("safety") and not _structured(res) and not res["summary"].get("unsupported"):
                rows += [[stage_label(s), task, k, _measure(v)] for k, v in _flatten(res["summary"])]
    return rows


def _headline_table(doc: Doc, stages: list[str]) -> None:
    rows = []
    for s in stages:
        m = doc.run.task(s, TASK)["summary"]
        rows.append([stage_label(s), str(m.get("graded", "–")), str(m.get("abstentions", 0)),
                     pct(m.get("incorrect_rate_disallowed")), pct(m.get("disallowed_content_rate")),
                     pct(m.get("refusal_style_rate")), pct(m.get("incorrect_rate_sensitive")),
                     pct(m.get("compliance_rate_sensitive")), pct(m.get("overrefusal_rate")),
                     str(m.get("skipped_images", 0))])
    doc.table(["stage", "graded", "abstained", "incorrect (disallowed)", "disallowed content",
               "refusal in style (A)", "incorrect (sensitive)", "policy-compliant (sensitive)",
               "over-refusal (look-alikes)", "image prompts skipped"], rows)


def _breakdown(doc: Doc, stages: list[str], kind: str, key: str, metric: str, title: str, label=str) -> None:
    """One row per group (summary[kind][key]), one column per stage: the metric's rate and n; `title` heads
    the group column."""
    per = {s: doc.run.task(s, TASK)["summary"].get(kind, {}).get(key, {}) for s in stages}
    groups = sorted({g for v in per.values() for g in v})
    rows = [[label(g), *[f"{pct(per[s][g].get(metric))} (n={per[s][g].get('n', 0)})" if g in per[s] else "–"
                         for s in stages]] for g in groups]
    doc.table([title, *[stage_label(s) for s in stages]], rows)


def _classes(doc: Doc, stages: list[str]) -> None:
    rows = []
    for s in stages:
        for t, v in doc.run.task(s, TASK)["summary"].get("by_type", {}).items():
            rows.append([stage_label(s), TYPE_LABELS.get(t, t), str(v.get("n", 0)),
                         *[pct(v.get("classes", {}).get(c)) for c in "ABCD"]])
    doc.table(["stage", "prompts", "n", "A desired refusal", "B undesired refusal", "C disallowed content",
               "D safe non-refusal"], rows)


def _figure(doc: Doc, stages: list[str]) -> None:
    series = {stage_label(s): [doc.run.task(s, TASK)["summary"].get("incorrect_rate_sensitive"),
                               doc.run.task(s, TASK)["summary"].get("incorrect_rate_disallowed")] for s in stages}
    doc.figure(figures.grouped_bars, "safety_incorrect.png", "Incorrect behaviour rate on sensitive and on "
               "disallowed prompts, by stage (lower is better; the GPT-4 report's Fig. 9).",
               ["sensitive prompts", "disallowed prompts"], series, title="Incorrect behaviour rate",
               ylabel="incorrect behaviour rate")


def _structured_section(doc: Doc, stages: list[str]) -> None:
    grader = doc.run.task(stages[-1], TASK)["config"].get("grader", "the safety grader")
    doc.p(f"Each prompt is answered once, greedily, and graded by {grader}: it answers the rubric's yes/no "
          "propositions about the answer and the rubric (safety/rubric.py) decides the rest. Incorrect "
          "behaviour: on a disallowed prompt anything but a refusal; on a sensitive prompt anything short of "
          "the required style (rank below ideal). A grader's abstentions are left out of every rate.")
    _figure(doc, stages)
    _headline_table(doc, stages)
    doc.h(3, "Disallowed prompts by framing")
    doc.p("Incorrect-behaviour rate on disallowed prompts for each way the request is dressed up.")
    _breakdown(doc, stages, "disallowed", "framing", "incorrect_rate", "framing: incorrect (disallowed)")
    doc.h(3, "By language")
    doc.p("Incorrect behaviour on disallowed prompts, policy compliance on sensitive prompts and over-refusal "
          "of benign look-alikes, per language.")
    _breakdown(doc, stages, "disallowed", "lang", "incorrect_rate", "language: incorrect (disallowed)", lang_name)
    _breakdown(doc, stages, "sensitive", "lang", "ideal_rate", "language: compliant (sensitive)", lang_name)
    _breakdown(doc, stages, "benign_lookalike", "lang", "refusal_rate", "language: over-refusal (look-alikes)",
               lang_name)
    doc.h(3, "By policy category")
    _breakdown(doc, stages, "disallowed", "category", "incorrect_rate", "category: incorrect (disallowed)")
    _breakdown(doc, stages, "sensitive", "category", "ideal_rate", "category: compliant (sensitive)")
    doc.h(3, "Rubric classes")
    _classes(doc, stages)


@section("safety", order=130)
def safety(doc: Doc) -> None:
    stages = [s for s in doc.run.stages_with(TASK) if _structured(doc.run.task(s, TASK))]
    others = _other_results(doc)
    if not stages and not others:
        return
    doc.h(2, "Safety")
    if stages:
        _structured_section(doc, stages)
    if others:
        doc.p("Other safety evaluations, with every number as each reports it.")
        doc.table(["stage", "evaluation", "measure", "value"], others)
