"""Example transcripts: one image QA answer per task (with its pictures, copied beside the report), two
follow-up conversations, and one factuality question per language answered by every stage."""

from __future__ import annotations

from tinygpt4.evals.common import resolve_path, search_roots
from tinygpt4.report.blocks import Doc, Transcript
from tinygpt4.report.registry import section
from tinygpt4.report.runfiles import stage_label

MAX_IMAGE_EXAMPLES = 8  # one per image task, and never a wall of them
FOLLOWUP_EXAMPLES = 2


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "[image]") if p.get("type") == "text" else "[image]" for p in content)
    return ""


def _image_files(doc: Doc, res: dict, paths: list[str]) -> list[str]:
    roots = search_roots(res["config"]["path"]) if res["config"].get("path") else []
    roots.append(doc.run.root / "world")
    out = []
    for rel in paths:
        copied = doc.copy_image(resolve_path(rel, roots))
        if copied:
            out.append(copied)
    return out


def _image_qa(doc: Doc) -> list[Transcript]:
    stages = doc.run.stages_with("image_qa")
    if not stages:
        return []
    res = doc.run.task(stages[-1], "image_qa")
    examples, seen = [], set()
    for it in res["items"]:
        if it.get("task") in seen or "output" not in it:
            continue
        seen.add(it.get("task"))
        images = _image_files(doc, res, it.get("images", []))
        mark = "correct" if it.get("correct") else "wrong"
        examples.append(Transcript(
            f"Image QA, {it.get('task')} ({stage_label(stages[-1])})",
            [("user", it["question"], images), ("assistant", it["output"], [])],
            f"reference: {it['answer']} ({mark}); blind baseline answered: {it.get('output_blind', '–')}"))
        if len(seen) >= MAX_IMAGE_EXAMPLES:
            break
    return examples


def _followup(doc: Doc) -> list[Transcript]:
    post = doc.run.post_stage("followup")
    if not post:
        return []
    examples = []
    for it in doc.run.task(post, "followup")["items"][:FOLLOWUP_EXAMPLES]:
        turns = [(m["role"], _content_text(m.get("content")), []) for m in it["messages"]]
        turns.append(("assistant", it["output"]["with_context"], []))
        examples.append(Transcript(f"Follow-up ({stage_label(post)})", turns,
                                   f"reference: {it['answer']}; asked without the earlier turns: "
                                   f"{it['output'].get('standalone', '–')}"))
    return examples


def _factuality(doc: Doc) -> list[Transcript]:
    stages = doc.run.stages_with("factuality")
    if not stages:
        return []
    examples, langs_done = [], set()
    items = {s: doc.run.task(s, "factuality")["items"] for s in stages}
    for i, it in enumerate(items[stages[-1]]):
        if it.get("lang") in langs_done:
            continue
        langs_done.add(it.get("lang"))
        turns = [("user", it["question"], [])]
        for s in stages:
            if i < len(items[s]):
                turns.append((stage_label(s), items[s][i].get("output", ""), []))
        examples.append(Transcript(f"Factuality, {it.get('category')} ({it.get('lang')})", turns,
                                   f"reference: {it['answer']}"))
    return examples


@section("transcripts", order=110)
def transcripts(doc: Doc) -> None:
    examples = _image_qa(doc) + _followup(doc) + _factuality(doc)
    if not examples:
        return
    doc.h(2, "Example transcripts")
    doc.p("Answers as the models gave them (greedy decoding), with their images.")
    doc.blocks.extend(examples)
