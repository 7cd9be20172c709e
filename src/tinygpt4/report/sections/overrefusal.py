"""Over-refusal: how often each stage refuses what it should answer, on the world's benign look-alikes
(evals/<stage>/safety.json) and on XSTest (evals/<stage>/xstest*.json), where every answer is classified
both by XSTest's string match and by the safety grader."""

from __future__ import annotations

from tinygpt4.report import figures
from tinygpt4.report.blocks import Doc, lang_name, num, pct
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label


def _world_rows(doc: Doc) -> list[list[str]]:
    rows = []
    for s in doc.run.stages_with("safety"):
        summ = doc.run.task(s, "safety")["summary"]
        if "overrefusal_rate" not in summ:
            continue
        by_lang = summ.get("benign_lookalike", {}).get("lang", {})
        langs = ", ".join(f"{lang_name(g)} {pct(v.get('refusal_rate'))}" for g, v in by_lang.items())
        look = summ.get("by_type", {}).get("benign_lookalike", {})
        rows.append([stage_label(s), str(look.get("n", 0)), pct(summ["overrefusal_rate"]), langs or "–"])
    return rows


def _xstest_rows(doc: Doc, tasks: list[str]) -> list[list[str]]:
    rows = []
    for task in tasks:
        for s in doc.run.stages_with(task):
            m = doc.run.task(s, task)["summary"]
            rows.append([task, stage_label(s), f"{m.get('n_safe', 0)} / {m.get('n_unsafe', 0)}",
                         pct(m.get("overrefusal_strmatch")), pct(m.get("overrefusal_grader")),
                         pct(m.get("refusal_unsafe_strmatch")), pct(m.get("refusal_unsafe_grader")),
                         pct(m.get("agreement")), num(m.get("kappa"), 2), str(m.get("abstentions", 0))])
    return rows


def _by_type(doc: Doc, task: str) -> None:
    stages = doc.run.stages_with(task)
    per = {s: doc.run.task(s, task)["summary"].get("by_type", {}) for s in stages}
    types = sorted({t for v in per.values() for t in v}, key=lambda t: (t.startswith("contrast_"), t))
    rows = []
    for t in types:
        label = next((per[s][t].get("label", "") for s in stages if t in per[s]), "")
        rows.append([t, label, *[f"{pct(per[s][t].get('refusal_rate_strmatch'))} / "
                                 f"{pct(per[s][t].get('refusal_rate_grader'))}" if t in per[s] else "–"
                                 for s in stages]])
    doc.table(["XSTest type", "label", *[f"{stage_label(s)} (string match / grader)" for s in stages]], rows)


def _figure(doc: Doc, tasks: list[str]) -> None:
    stages = [s for s in doc.run.eval_stages if doc.run.task(s, "safety") or any(doc.run.task(s, t) for t in tasks)]
    series: dict[str, list] = {}
    world = [(doc.run.task(s, "safety") or {}).get("summary", {}).get("overrefusal_rate") for s in stages]
    if any(v is not None for v in world):
        series["world look-alikes (grader)"] = world
    for task in tasks:
        for key, how in (("overrefusal_strmatch", "string match"), ("overrefusal_grader", "grader")):
            values = [(doc.run.task(s, task) or {}).get("summary", {}).get(key) for s in stages]
            if any(v is not None for v in values):
                series[f"{task} safe prompts ({how})"] = values
    if series:
        doc.figure(figures.grouped_bars, "overrefusal.png", "Refusal rate on prompts that should be answered, "
                   "by stage (lower is better).", [stage_label(s) for s in stages], series,
                   title="Over-refusal", ylabel="refusal rate")


@section("overrefusal", order=134)
def overrefusal(doc: Doc) -> None:
    tasks = doc.run.tasks("xstest")
    world, xs = _world_rows(doc), _xstest_rows(doc, tasks)
    if not world and not xs:
        return
    doc.h(2, "Over-refusal")
    doc.p("A safe model refuses what it must and answers what only looks dangerous. The world's benign "
          "look-alikes (\"how do I kill a process?\") are graded by the safety grader (a refusal is "
          "rubric.is_refusal); XSTest's 250 safe prompts and 200 unsafe contrast prompts are classified two "
          "ways, by XSTest's string match (the answer starts with \"I'm sorry\", \"I cannot\", \"As an AI\", "
          "...) and by the grader, with their agreement and Cohen's kappa.")
    _figure(doc, tasks)
    if world:
        doc.table(["stage", "look-alikes", "refused", "by language"], world)
    if xs:
        doc.table(["data", "stage", "safe / unsafe", "safe refused (string match)", "safe refused (grader)",
                   "unsafe refused (string match)", "unsafe refused (grader)", "agreement", "kappa",
                   "grader abstained"], xs)
        for task in tasks:
            doc.h(3, f"{task} by type")
            _by_type(doc, task)
