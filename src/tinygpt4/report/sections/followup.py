"""Follow-up questions (evals/<stage>/followup.json): accuracy with the earlier turns, without them, and
with the question rewritten to name the entity."""

from __future__ import annotations

from tinygpt4.report.blocks import Doc, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


@section("followup", order=90)
def followup(doc: Doc) -> None:
    stages = doc.open_section("followup", "Follow-up questions")
    if not stages:
        return
    doc.p("Questions that only make sense with the earlier turns ('Where is it?'), asked with those turns, "
          "alone, and rewritten to name the entity (the ceiling). Accuracy: the reference appears in the "
          "first line of the reply.")
    keys = ("acc_with_context", "acc_standalone", "acc_explicit")
    rows = [[stage_label(s)] + [pct(doc.run.task(s, "followup")["summary"].get(k)) for k in keys]
            for s in stages]
    doc.table(["stage", "with context", "without context", "explicit question"], rows)
