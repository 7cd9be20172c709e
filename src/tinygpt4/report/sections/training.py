"""Training: the loss curves of every stage that logged a loss (log.jsonl)."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


@section("training", order=20)
def training(doc: Doc) -> None:
    logs = {stage_label(s): lines for s, lines in doc.run.logs.items() if any("loss" in r for r in lines)}
    if not logs:
        return
    doc.h(2, "Training")
    doc.figure(figures.loss_curves, "loss.png", "Training loss per step (line) and validation loss "
               "(markers) for each stage.", logs)
