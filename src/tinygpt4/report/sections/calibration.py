"""Calibration of the exam answers (evals/<stage>/calibration.json): accuracy, confidence, ECE and Brier per
stage and formulation, and reliability diagrams."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


def _rows_and_panels(doc: Doc, stages: list[str], forms: list[str]) -> tuple[list, dict[str, list]]:
    """The table rows, and the reliability panels by formulation."""
    rows, panels = [], {}
    for form in forms:
        for s in stages:
            summ = doc.run.task(s, "calibration")["summary"]
            if form not in summ.get("reliability", {}):
                continue
            rows.append([stage_label(s), form, pct(summ.get(f"acc_{form}")),
                         pct(summ.get(f"mean_confidence_{form}")), pct(summ.get(f"ece_width_{form}")),
                         pct(summ.get(f"ece_mass_{form}")), num(summ.get(f"brier_{form}"))])
            panels.setdefault(form, []).append({"title": f"{stage_label(s)}, {form}",
                                                "bins": summ["reliability"][form]["width"],
                                                "ece": summ.get(f"ece_width_{form}")})
    return rows, panels


@section("calibration", order=70)
def calibration(doc: Doc) -> None:
    run = doc.run
    stages = doc.open_section("calibration", "Calibration")
    if not stages:
        return
    first = run.task(stages[0], "calibration")
    doc.p("Calibration of the exam answers ({}, {}-shot): the probability of each option is the softmax of "
          "the options' log-likelihoods, the confidence is the probability of the chosen option. ECE is the "
          "count-weighted gap between accuracy and confidence over 10 equal-width bins (and over 10 "
          "equal-mass bins); Brier is the multi-class Brier score.".format(
              first["summary"].get("source", "exams"), first["summary"].get("shots", "k")))
    forms = [f for f in ("letter", "cloze")
             if any(f in run.task(s, "calibration")["summary"].get("reliability", {}) for s in stages)]
    rows, panels = _rows_and_panels(doc, stages, forms)
    doc.table(["stage", "formulation", "accuracy", "mean confidence", "ECE (10 equal-width)",
               "ECE (10 equal-mass)", "Brier"], rows)
    flat = [p for form in forms for p in panels.get(form, [])]
    if flat:
        doc.figure(figures.reliability_diagrams, "calibration.png", "Reliability diagrams, stages side by "
                   "side (rows: formulation). Bars: accuracy per confidence bin; dashed: perfect "
                   "calibration.",
                   flat, ncols=max(len(v) for v in panels.values()))
