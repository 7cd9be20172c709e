"""What the multiple-choice sections (exams, mmlu) share: their summaries hold one accuracy per setting,
acc_<cloze|letter>_<k>shot, and by_category cells at the headline shot count. Not a section itself."""

from __future__ import annotations

import re
from collections.abc import Callable

from tinygpt4.report.blocks import Doc, lang_name, pct, task_lang
from tinygpt4.report.runfiles import Run, stage_label

_SETTING = re.compile(r"acc_(cloze|letter)_(\d+)shot")


def setting_columns(run: Run, tasks: list[str]) -> list[str]:
    """The settings any stage reports for these tasks: cloze first, then letter, most shots first."""
    keys = set()
    for t in tasks:
        for s in run.stages_with(t):
            keys |= {k for k in run.task(s, t)["summary"] if _SETTING.fullmatch(k)}

    def order(k):
        form, shots = _SETTING.fullmatch(k).groups()
        return (form != "cloze", -int(shots))

    return sorted(keys, key=order)


def setting_label(key: str) -> str:
    form, shots = _SETTING.fullmatch(key).groups()
    return f"{form} {shots}-shot"


def setting_rows(run: Run, tasks: list[str], cols: list[str], first: Callable[[str], str],
                 last: Callable[[dict], list[str]]) -> list[list[str]]:
    """One row per task and stage: first(task), the stage, each setting's accuracy, then last(summary)."""
    rows = []
    for t in tasks:
        for s in run.stages_with(t):
            summ = run.task(s, t)["summary"]
            rows.append([first(t), stage_label(s)] + [pct(summ.get(c)) for c in cols] + last(summ))
    return rows


def categories(doc: Doc, task: str) -> None:
    """Accuracy by category at each stage's headline shot count, both formulations."""
    run = doc.run
    stages = run.stages_with(task)
    cats = sorted({c for s in stages for c in run.task(s, task)["summary"].get("by_category", {})})
    if not cats:
        return
    rows = []
    for c in cats:
        row = [c]
        for s in stages:
            summ = run.task(s, task)["summary"]
            k = summ.get("headline_shots")
            cell = summ.get("by_category", {}).get(c, {})
            row += [pct(cell.get(f"acc_cloze_{k}shot")), pct(cell.get(f"acc_letter_{k}shot"))]
        rows.append(row)
    headers = ["category"] + [f"{stage_label(s)} {f}" for s in stages for f in ("cloze", "letter")]
    doc.p(f"By category ({lang_name(task_lang(task))}):")
    doc.table(headers, rows)
