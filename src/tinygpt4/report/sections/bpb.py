"""Held-out bits per byte (evals/<stage>/bpb.json), overall and by language."""

from __future__ import annotations

from tinygpt4.report.blocks import Doc, lang_name, num
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


@section("bpb", order=80)
def bpb(doc: Doc) -> None:
    stages = doc.open_section("bpb", "Held-out bits per byte")
    if not stages:
        return
    summaries = {s: doc.run.task(s, "bpb")["summary"] for s in stages}
    langs = sorted({g for s in stages for g in summaries[s].get("by_lang", {})})
    rows = [[stage_label(s), num(summaries[s].get("bpb"))]
            + [num(summaries[s].get("by_lang", {}).get(g, {}).get("bpb")) for g in langs] for s in stages]
    doc.p("Negative log-likelihood of held-out text of the pretraining distribution, in bits per UTF-8 byte "
          "(lower is better; independent of the tokenizer).")
    doc.table(["stage", "all"] + [lang_name(g) for g in langs], rows)
