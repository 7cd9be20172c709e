"""`build_report`: read the run, write the title, let every registered section add its blocks in order,
and render the document to report.md and index.html. Nothing here knows any eval's files; the sections
under `tinygpt4.report.sections` do (see the package docstring for adding one)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tinygpt4.report.blocks import Block, Doc, Heading
from tinygpt4.report.registry import ordered_sections
from tinygpt4.report.render import render_html, render_markdown
from tinygpt4.report.runfiles import load_run
from tinygpt4.runtime import atomic_write_text


def _title(doc: Doc) -> None:
    state = doc.run.state
    doc.h(1, f"tinygpt4 technical report: {doc.run.root.resolve().name}")
    bits = [f"preset {state['preset']}" if state.get("preset") else "",
            f"seed {state['seed']}" if "seed" in state else ""]
    doc.p("This report was written by the run itself from the files in its folder. "
          + (f"Run settings: {', '.join(b for b in bits if b)}." if any(bits) else ""))


def build_blocks(doc: Doc) -> list[Block]:
    _title(doc)
    for sec in ordered_sections():
        sec.write(doc)
    return doc.blocks


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write <run>/report/report.md, index.html and the figures; return the path of index.html."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir else run.root / "report"
    out.mkdir(parents=True, exist_ok=True)
    if (out / "images").is_dir():  # images of an earlier build: the new one copies its own
        shutil.rmtree(out / "images")
    blocks = build_blocks(Doc(run, out))
    title = next((b.text for b in blocks if isinstance(b, Heading)), "tinygpt4 report")
    atomic_write_text(out / "report.md", render_markdown(blocks))
    atomic_write_text(out / "index.html", render_html(blocks, title))
    return out / "index.html"
