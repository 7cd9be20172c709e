"""TruthfulQA on the world's misconceptions (evals/<stage>/truthfulqa.json): MC1 and MC2 per prompt format
and stage, and bars of the base model (0-shot, 5-shot) against the post-trained one."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


def _bars(doc: Doc, stages: list[str]) -> None:
    run = doc.run
    bars: dict[str, list] = {}
    if "base" in stages:
        base = run.task("base", "truthfulqa")["summary"]
        for fmt, label in (("0shot", "base 0-shot"), ("5shot", "base 5-shot")):
            if f"mc1_{fmt}" in base:
                bars[label] = [base.get(f"mc1_{fmt}"), base.get(f"mc2_{fmt}")]
    post = run.post_stage("truthfulqa")
    if post:
        summ = run.task(post, "truthfulqa")["summary"]
        fmt = "chat" if "mc1_chat" in summ else "0shot"
        bars[f"{stage_label(post)} ({fmt})"] = [summ.get(f"mc1_{fmt}"), summ.get(f"mc2_{fmt}")]
    if bars:
        chance = run.task(stages[0], "truthfulqa")["summary"].get("mc1_chance")
        doc.figure(figures.grouped_bars, "truthfulqa.png", "TruthfulQA accuracy: the base model 0-shot and "
                   "5-shot, and the post-trained model.", ["MC1", "MC2"], bars, title="TruthfulQA",
                   ylabel="accuracy", chance=chance)


@section("truthfulqa", order=50)
def truthfulqa(doc: Doc) -> None:
    run = doc.run
    stages = doc.open_section("truthfulqa", "TruthfulQA")
    if not stages:
        return
    doc.p("TruthfulQA-style multiple choice on the world's misconceptions, which its corpus repeats more "
          "often than their corrections. MC1: the single true answer is the most likely one. MC2: the "
          "normalised probability mass on the true answers. 0-shot prompts are 'Q: ...\\nA:'; 5-shot adds "
          "a fixed primer of five world-neutral Q/A pairs; chat asks through the chat template.")
    rows = []
    for s in stages:
        summ = run.task(s, "truthfulqa")["summary"]
        for fmt in summ.get("formats", []):
            rows.append([stage_label(s), fmt, pct(summ.get(f"mc1_{fmt}")), pct(summ.get(f"mc2_{fmt}"))])
    doc.table(["stage", "prompt", "MC1", "MC2"], rows)
    _bars(doc, stages)
