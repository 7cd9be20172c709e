"""Exams in the built-in world (evals/<stage>/exams_<lang>.json): accuracy per language, stage and
setting, the headline numbers as bars by language, and English by category."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, lang_name, task_lang
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label
from tinygpt4.report.sections._multiple_choice import categories, setting_columns, setting_label, setting_rows


def _bars(doc: Doc, tasks: list[str]) -> None:
    """The headline (largest-shot) numbers of every stage, both formulations, by language."""
    run = doc.run
    langs = [t.split("_", 1)[1] for t in tasks if "_" in t]
    series: dict[str, list] = {}
    chance = []
    for s in run.eval_stages:
        for form in ("cloze", "letter"):
            vals = []
            for t in tasks:
                res = run.task(s, t)
                vals.append(res["summary"].get(f"acc_{form}") if res else None)
                if res and res["summary"].get("chance"):
                    chance.append(res["summary"]["chance"])
            if any(v is not None for v in vals):
                series[f"{stage_label(s)}, {form}"] = vals
    if not series:
        return
    shots = next((run.task(s, t)["summary"].get("headline_shots") for t in tasks for s in run.stages_with(t)),
                 None)
    doc.figure(figures.grouped_bars, "exams_by_language.png",
               f"Exam accuracy by language ({shots}-shot), each stage in both formulations. The world "
               "states facts far more often in English than in the other languages.",
               [lang_name(lang) for lang in langs], series, title="World exams by language",
               ylabel="accuracy", chance=sum(chance) / len(chance) if chance else None, horizontal=True)


@section("exams", order=30)
def exams(doc: Doc) -> None:
    run = doc.run
    tasks = [t for t in run.tasks("exams") if run.stages_with(t)]
    if not tasks:
        return
    doc.h(2, "Exams in the built-in world, by language")
    doc.p("Multiple-choice exams in MMLU layout, in two formulations. Letter: lm-evaluation-harness's mmlu "
          "prompt (subject header, the question with options A-D, 'Answer:'), scored by the likelihood of "
          "' A' ... ' D'. Cloze: '<question>\\nAnswer:' followed by each option's own text, scored by its "
          "likelihood per character (acc_norm). Few-shot examples are the first k of the dev split. Small "
          "models reach high cloze accuracy long before they learn to map options to letters, so both are "
          "shown; chance is 25%.")
    cols = setting_columns(run, tasks)
    rows = setting_rows(run, tasks, cols, lambda t: lang_name(task_lang(t)),
                        lambda summ: [str(summ.get("n", "–"))])
    doc.table(["language", "stage"] + [setting_label(c) for c in cols] + ["questions"], rows)
    _bars(doc, tasks)
    categories(doc, tasks[0] if "exams_en" not in tasks else "exams_en")
