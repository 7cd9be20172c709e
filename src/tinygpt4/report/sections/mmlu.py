"""MMLU in the original release layout (evals/<stage>/mmlu*.json): accuracy per task, stage and setting,
with throughput, and the first task by category."""

from __future__ import annotations

from tinygpt4.report.blocks import Doc, num
from tinygpt4.report.registry import section
from tinygpt4.report.sections._multiple_choice import categories, setting_columns, setting_label, setting_rows


@section("mmlu", order=40)
def mmlu(doc: Doc) -> None:
    run = doc.run
    tasks = [t for t in run.tasks("mmlu") if run.stages_with(t)]
    if not tasks:
        return
    doc.h(2, "MMLU")
    doc.p("The same multiple-choice evaluation on MMLU files in the original release layout (57 subjects). "
          "A model trained only on the built-in world knows none of these facts: near-chance accuracy is "
          "expected, and the point is that real benchmark files run end to end.")
    cols = setting_columns(run, tasks)
    rows = setting_rows(run, tasks, cols, lambda t: t,
                        lambda summ: [str(summ.get("n", "–")), num(summ.get("items_per_s"), 0)])
    doc.table(["task", "stage"] + [setting_label(c) for c in cols] + ["questions", "questions/s"], rows)
    categories(doc, tasks[0])
