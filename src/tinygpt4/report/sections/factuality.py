"""Factuality (evals/<stage>/factuality.json): open questions about the world's facts, by category and by
language, with bars of the base model against the post-trained one."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, lang_name, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label

METRIC_NAMES = {"contains": "contains", "exact_match": "exact", "contains_after_picture": "after a picture"}


def _category_table(doc: Doc, stages: list[str], summaries: dict[str, dict], cats: list[str]) -> None:
    # a chat model that takes images is also asked each question after a picture turn
    metrics = {s: ["contains", "exact_match"] + (["contains_after_picture"] if "contains_after_picture" in
               summaries[s] else []) for s in stages}
    rows = []
    for c in cats + ["all"]:
        row = [c]
        for s in stages:
            cell = summaries[s] if c == "all" else summaries[s].get("by_category", {}).get(c, {})
            row += [pct(cell.get(m)) for m in metrics[s]]
        rows.append(row)
    headers = ["category"] + [f"{stage_label(s)} {METRIC_NAMES[m]}" for s in stages for m in metrics[s]]
    doc.table(headers, rows)
    if any("contains_after_picture" in m for m in metrics.values()):
        doc.p("'after a picture': the same question asked as the second user turn, after a picture, its "
              "question and the reference answer from the image benchmark ('contains').")


def _bars(doc: Doc, stages: list[str], summaries: dict[str, dict], cats: list[str]) -> None:
    post = doc.run.post_stage("factuality")
    show = [s for s in stages if s == "base"] + ([post] if post else [])
    series = {stage_label(s): [summaries[s].get("by_category", {}).get(c, {}).get("contains") for c in cats]
              for s in show}
    if cats and series:
        doc.figure(figures.grouped_bars, "factuality.png", "Factual accuracy by category ('contains'), base "
                   "vs post-trained.", cats, series, title="Factuality by category", ylabel="accuracy")


def _by_language(doc: Doc, stages: list[str], summaries: dict[str, dict]) -> None:
    langs = sorted({g for s in stages for g in summaries[s].get("by_lang", {})})
    if len(langs) <= 1:
        return
    rows = [[lang_name(g)] + [pct(summaries[s]["by_lang"].get(g, {}).get("contains")) for s in stages]
            for g in langs]
    doc.p("By language ('contains'):")
    doc.table(["language"] + [stage_label(s) for s in stages], rows)


@section("factuality", order=60)
def factuality(doc: Doc) -> None:
    stages = doc.open_section("factuality", "Factuality by category")
    if not stages:
        return
    doc.p("Open questions about the world's facts, answered in the model's own words. 'contains': the "
          "normalised reference appears in the first line of the answer (as words; as a substring in "
          "Japanese and Korean); 'exact': the first line is exactly the reference. Base models are "
          "prompted in the style of the corpus's Q/A pages, chat models through the chat template.")
    summaries = {s: doc.run.task(s, "factuality")["summary"] for s in stages}
    cats = sorted({c for s in stages for c in summaries[s].get("by_category", {})})
    _category_table(doc, stages, summaries, cats)
    _bars(doc, stages, summaries, cats)
    _by_language(doc, stages, summaries)
