"""Image understanding (evals/<stage>/image_qa.json): accuracy by task type beside the blind baseline and
the majority answer, the working and the answer apart where replies show their working, and bars for the
last stage."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


def _working(doc: Doc, stages: list[str], tasks: list[str], cells: dict) -> None:
    worked = [t for t in tasks if any("working_acc" in cells[t, s] for s in stages)]
    if not worked:
        return
    doc.p("Where a reply works its way to the answer, its two halves apart: how often the working names "
          "the step the picture had to give (for a chart, the tallest bar), and how often the answer is "
          "right when it does (for a chart, the name the question gives that bar).")
    doc.table(["task"] + [f"{stage_label(s)} {m}" for s in stages
                          for m in ("step right", "answer right given the step")],
              [[t] + [pct(cells[t, s].get(k)) for s in stages for k in ("working_acc", "acc_given_working")]
               for t in worked])


def _bars(doc: Doc, stage: str, tasks: list[str], by: dict) -> None:
    series = {"with image": [by.get(t, {}).get("acc") for t in tasks],
              "blank image (blind)": [by.get(t, {}).get("acc_blind") for t in tasks],
              "majority answer": [by.get(t, {}).get("acc_majority") for t in tasks]}
    doc.figure(figures.grouped_bars, "image_qa.png", f"Image QA accuracy by task ({stage_label(stage)}) "
               "against the blind baseline and the majority answer.", tasks, series,
               title=f"Image QA: {stage_label(stage)}", ylabel="accuracy")


@section("image_qa", order=100)
def image_qa(doc: Doc) -> None:
    stages = doc.open_section("image_qa", "Image understanding")
    if not stages:
        return
    doc.p("Questions about images by task type, scored by normalised exact match of the final answer (what "
          "follows the reply's last \"answer is\", else its first line), beside a blind baseline that asks "
          "the same questions with each image replaced by a blank grey one (what the text alone gives away), "
          "and the accuracy of always giving the task's most common answer (what no reading at all scores). "
          "\"After a picture\" asks each question as the second turn of a conversation, after another "
          "task's picture, its question and its reference answer.")
    summaries = {s: doc.run.task(s, "image_qa")["summary"] for s in stages}
    tasks = sorted({t for s in stages for t in summaries[s].get("by_task", {})})
    cells = {(t, s): summaries[s] if t == "all" else summaries[s].get("by_task", {}).get(t, {})
             for t in tasks + ["all"] for s in stages}
    doc.table(["task", "majority answer"] + [f"{stage_label(s)} {m}" for s in stages
                                             for m in ("with image", "after a picture", "blind")],
              [[t, pct(cells[t, stages[-1]].get("acc_majority"))]
               + [pct(cells[t, s].get(k)) for s in stages for k in ("acc", "acc_after_turn", "acc_blind")]
               for t in tasks + ["all"]])
    _working(doc, stages, tasks, cells)
    _bars(doc, stages[-1], tasks, summaries[stages[-1]].get("by_task", {}))
