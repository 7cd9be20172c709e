"""The technical report, built from a synthetic run folder whose eval files come from the real evals
(run with a scripted model)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from test_evals import GEO, ScriptedLM, facts_from, make_png, make_world

from tinygpt4.errors import UserError
from tinygpt4.evals import suite
from tinygpt4.report import cli as report_cli
from tinygpt4.report import registry, sections
from tinygpt4.report.build import build_report
from tinygpt4.report.render import md_escape, render_html, render_markdown

EVIL = "<script>alert('x')</script> **bold** [link](http://evil) | cell"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class EvilLM(ScriptedLM):
    """Answers every open question with markup that must come out escaped."""

    def generate(self, conversations, max_tokens=64, temperature=0.0, stop=None):
        return [EVIL for _ in conversations]


def add_images(world: Path) -> None:
    make_png(world / "images" / "qa" / "0.png")
    (world / "image_qa").mkdir(exist_ok=True)
    (world / "image_qa" / "image_qa.jsonl").write_text(
        json.dumps({"images": ["images/qa/0.png"], "question": "What colour?", "answer": "red", "task": "colour"})
        + "\n" + json.dumps({"images": ["images/qa/0.png"], "question": "Bar 1 is Ro, bar 2 is Ka. Which is taller?",
                             "answer": "Ka", "task": "chart_largest", "working": "bar 2"}) + "\n", encoding="utf-8")
    (world / "followup").mkdir(exist_ok=True)
    (world / "followup" / "followup.jsonl").write_text(json.dumps({
        "messages": [{"role": "user", "content": "Tell me about Varo."},
                     {"role": "assistant", "content": "Varo is a country."},
                     {"role": "user", "content": "And its capital?"}],
        "answer": "Lumen", "standalone": [{"role": "user", "content": "And its capital?"}]}) + "\n", encoding="utf-8")


def write_training(stage_dir: Path, params: int, loss0: float, **extra) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "summary.json").write_text(json.dumps({
        "params": params, "tokens": 1_200_000, "flops": 3.4e13, "wall_s": 95.0, "final_val_loss": loss0 / 2,
        "final_val_bpb": 1.1, "device": "cpu", **extra}))
    lines = [json.dumps({"step": s, "loss": loss0 / s, "lr": 1e-3, "tokens": s * 1000, "tok_per_s": 1e4,
                         "elapsed_s": s}) for s in range(1, 30)]
    lines.append(json.dumps({"step": 29, "val_loss": loss0 / 20, "val_bpb": 1.2}))
    lines.append('{"step": 30, "lo')  # a line cut short by an interrupted run
    (stage_dir / "log.jsonl").write_text("\n".join(lines))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "demo"
    world = make_world(run / "world")
    add_images(world)
    (run / "run.json").write_text(json.dumps({
        "preset": "tiny", "seed": 0, "hardware": {"machine": "x86_64"}, "total_wall_s": 400,
        "stages": {"world": {"status": "done", "wall_s": 3.0}, "pretrain": {"status": "done", "wall_s": 300.0}}}))
    write_training(run / "base", 4_000_000, 9.0, optimizer="muon")
    write_training(run / "sft", 4_500_000, 3.0, tower_frozen=True, tower_pretrain={
        "steps": 250, "images": 16000, "captions": 3000, "first_loss": 4.8, "final_loss": 2.3, "wall_s": 59.0,
        "pairs_min_count": 10})
    facts = facts_from(GEO) | {"Capital of Varo?": "Lumen", "And its capital?": "Lumen"}
    suite.run_suite(ScriptedLM(facts, knows_letters=False, supports_images=False), world, run / "evals" / "base",
                    "base", log=None)
    suite.run_suite(EvilLM(facts), world, run / "evals" / "sft", "sft", log=None)
    return run


@pytest.fixture(scope="module")
def built(run_dir):
    return build_report(run_dir)


def test_full_report_sections_figures_and_escaping(run_dir, built):
    index = built
    out = run_dir / "report"
    assert index == out / "index.html"
    md = (out / "report.md").read_text(encoding="utf-8")
    page = index.read_text(encoding="utf-8")
    for section in ("Model card", "Training", "Exams in the built-in world, by language", "TruthfulQA",
                    "Factuality by category", "Calibration", "Held-out bits per byte", "Follow-up questions",
                    "Image understanding", "Example transcripts"):
        assert f"## {section}" in md
        assert f">{section}</h2>" in page
    assert "Predictable scaling" not in md and "Safety" not in md
    # every figure and image the Markdown and the HTML point to is a PNG beside them
    refs = set(re.findall(r"\]\(([^)#]+\.png)\)", md)) | set(re.findall(r'src="([^"]+)"', page))
    assert {"loss.png", "exams_by_language.png", "truthfulqa.png", "factuality.png", "calibration.png",
            "image_qa.png"} <= refs
    assert any(r.startswith("images/") for r in refs)
    for ref in refs:
        assert (out / ref).read_bytes()[:8] == PNG_MAGIC, ref
    # model text is escaped in both renderings
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>" not in md and "&lt;script&gt;" in md and "\\*\\*bold\\*\\*" in md and "\\[link\\]" in md
    # exam table: both formulations and shot counts, per language and stage
    assert "| English | base (pre-trained) | 100.0% | 100.0% |" in md.replace("\\", "")
    assert "letter 5-shot" in md and "cloze 0-shot" in md
    # a task whose replies show their working gets the step and the answer apart; other tasks do not
    assert "step right" in md and "| chart\\_largest | 0.0% | – |" in md and "| colour | 0.0% | –" not in md
    # the image table sets each task beside its majority answer (the one colour item: 100%)
    assert "majority answer" in md and "| colour | 100.0% |" in md and "after a picture" in md
    # factuality: the post-trained model (it takes images) also answered each question after a picture
    fact = md.split("## Factuality by category", 1)[1]
    header = next(line for line in fact.splitlines() if line.startswith("| category"))
    assert header.count("after a picture") == 1
    # the model card reads summary.json and run.json
    assert "4M" in md and "5m 00s" in md and "x86\\_64" in md
    # the optimizer where the summary names one (SFT's predates the field)
    card = md.split("## Model card", 1)[1].split("\n## ", 1)[0]
    assert "| Muon + AdamW |" in card and "| – | cpu |" in card
    assert "vision tower trained alone for 250 steps" in md and "16k images from 3k captions" in md
    assert "words that 10 or more captions share" in md and "SFT then kept it frozen." in md


def test_report_command_rebuilds_in_place(run_dir, built, capsys):
    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    args = parser.parse_args(["report", str(run_dir)])
    assert args.func(args) == 0
    assert "index.html" in capsys.readouterr().out
    images = list((run_dir / "report" / "images").iterdir())
    assert len(images) == 2  # the two image QA examples, nothing left over from the first build


def test_report_degrades_when_parts_are_missing(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"preset": "tiny", "stages": {"world": {"status": "done", "wall_s": 1}}}))
    md = (build_report(run).with_name("report.md")).read_text()
    assert "## Model card" in md and "## Exams" not in md and "## Training" not in md
    with pytest.raises(UserError):
        build_report(tmp_path / "empty_missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError):
        build_report(tmp_path / "empty")


def test_report_with_only_some_evals_and_unsupported_results(tmp_path):
    run = tmp_path / "r"
    world = make_world(run / "world")
    suite.run_tasks(ScriptedLM(facts_from(GEO)), [("exams_en", world / "exams" / "en")], run / "evals" / "base",
                    log=None)
    (run / "evals" / "base" / "truthfulqa.json").write_text(json.dumps(
        {"task": "truthfulqa", "config": {}, "summary": {"unsupported": True, "reason": "no logprobs"}, "items": []}))
    md = build_report(run).with_name("report.md").read_text()
    assert "## Exams in the built-in world" in md and "## TruthfulQA" not in md and "## Model card" not in md


def test_scaling_and_safety_sections_appear_with_their_files(run_dir, tmp_path):
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    scaling = run_dir / "scaling"
    scaling.mkdir()
    points = [{"flops": 1e12 * 4**i, "final_val_loss": 5.0 * (4**i) ** -0.1 + 1.0} for i in range(4)]
    (scaling / "fit.json").write_text(json.dumps({
        "params": {"a": 4.0, "b": -0.1, "c": 1.0, "c0": 1e12}, "points": points, "target_flops": 1e15,
        "target_preset": "tiny", "predicted_final_loss": 3.5, "predicted_final_loss_interval": [3.3, 3.7]}))
    (scaling / "outcome.json").write_text(json.dumps({"actual_final_loss": 3.6, "relative_error": -0.028}))
    (run_dir / "evals" / "sft" / "safety.json").write_text(json.dumps({
        "task": "safety", "config": {}, "items": [],
        "summary": {"n": 40, "refusal_rate": 0.9, "by_type": {"disallowed": 0.95, "benign_lookalike": 0.1}}}))
    md = build_report(run_dir).with_name("report.md").read_text()
    assert "## Predictable scaling" in md and "## Safety" in md
    assert "| final validation loss | 3.500 | \\[3.300, 3.700\\] | 3.600 | -2.8% |" in md
    assert "by\\_type.disallowed | 95.0%" in md
    assert (run_dir / "report" / "scaling.png").read_bytes()[:8] == PNG_MAGIC


def test_markdown_escaping_is_inert():
    assert md_escape("# title") == "\\# title"
    assert md_escape("1. item") == "1\\. item"
    assert md_escape("a|b\nc") == "a\\|b<br>c"
    assert md_escape("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert render_markdown([]) == "\n" and "<html" in render_html([], "t")


NEW_SECTION = """
from tinygpt4.report.blocks import Doc, pct
from tinygpt4.report.registry import section


@section("brand_new_eval", order=95)
def brand_new_eval(doc: Doc) -> None:
    doc.h(2, "Brand new eval")
    doc.table(["stage", "accuracy"], [[s, pct(0.5)] for s in doc.run.eval_stages])
"""


def _sections(md: str) -> list[str]:
    return [line[3:] for line in md.splitlines() if line.startswith("## ")]


def test_a_new_section_module_is_all_it_takes(run_dir, tmp_path, monkeypatch):
    """A module dropped into the sections package shows up in its place, in the contents and in both
    renderings, with no edit to the builder or the registry."""
    extra = tmp_path / "more_sections"
    extra.mkdir()
    (extra / "brand_new_eval.py").write_text(NEW_SECTION, encoding="utf-8")
    monkeypatch.setattr(sections, "__path__", [*sections.__path__, str(extra)])
    monkeypatch.setattr(registry, "SECTIONS", dict(registry.SECTIONS))
    try:
        index = build_report(run_dir, tmp_path / "out")
    finally:
        sys.modules.pop(f"{sections.__name__}.brand_new_eval", None)
    md = index.with_name("report.md").read_text(encoding="utf-8")
    names = _sections(md)
    assert names.index("Follow-up questions") < names.index("Brand new eval") < names.index("Image understanding")
    assert "- [Brand new eval](#brand-new-eval)" in md and "| base | 50.0% |" in md
    assert '<h2 id="brand-new-eval">Brand new eval</h2>' in index.read_text(encoding="utf-8")


def test_sections_register_once_in_a_fixed_order(monkeypatch):
    monkeypatch.setattr(registry, "SECTIONS", dict(registry.SECTIONS))
    names = [s.name for s in registry.ordered_sections()]
    assert names[:3] == ["model_card", "training", "exams"]
    assert names[-5:] == ["scaling", "safety", "toxicity", "overrefusal", "alignment"]
    with pytest.raises(ValueError, match="twice"):
        registry.section("truthfulqa", order=1)(lambda doc: None)
