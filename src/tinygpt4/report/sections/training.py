"""Training: the loss curves of every stage that logged a loss (log.jsonl)."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


@section("training", order=20)
def training(doc: Doc) -> None:
    # language-model losses only: the reward model's pairwise loss and RL's policy gradient are drawn with
    # their own measures in the alignment section
    logs = {stage_label(s): lines for s, lines in doc.run.logs.items()
            if s not in ("rm", "rl") and any("loss" in r for r in lines)}
    if not logs:
        return
    doc.h(2, "Training")
    doc.figure(figures.loss_curves, "loss.png", "Training loss per step (line) and validation loss "
               "(markers) for each stage.", logs)
