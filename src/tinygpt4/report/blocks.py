"""The document: its blocks, the helpers that format numbers for them, and `Doc`, what a section writes into.

Blocks hold plain text; escaping is the renderers' job, so a section never escapes anything itself.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tinygpt4.report.runfiles import Run

LANG_NAMES = {"en": "English", "ko": "Korean", "es": "Spanish", "ja": "Japanese"}


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str  # written by a section: plain text, escaped on output


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    file: str  # a PNG beside the report
    caption: str


@dataclass
class Transcript:
    title: str
    turns: list[tuple[str, str, list[str]]]  # (speaker, text, image files beside the report)
    note: str = ""


Block = Heading | Para | Table | Figure | Transcript


# ---- formatting ------------------------------------------------------------------------------------------

def pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, int | float) else "–"


def num(x, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, int | float) else "–"


def si(x) -> str:
    if not isinstance(x, int | float):
        return "–"
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def flops(x) -> str:
    return f"{x:.2e}" if isinstance(x, int | float) and x else "–"


def duration(s) -> str:
    if not isinstance(s, int | float):
        return "–"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def task_lang(task: str) -> str:
    """The language code of a per-language task (exams_en -> en); a task without one is its own name."""
    return task.split("_", 1)[1] if "_" in task else task


def lang_name(code: str) -> str:
    return LANG_NAMES.get(code, code)


# ---- the document being built ----------------------------------------------------------------------------

@dataclass
class Doc:
    """The run, the report folder and the blocks so far; sections append to it through these helpers."""

    run: Run
    out: Path
    blocks: list[Block] = field(default_factory=list)
    n_images: int = 0

    def open_section(self, task: str, title: str) -> list[str]:
        """The stages with results for `task`, in pipeline order; when there are any, the section's heading
        is written (a section without results is left out of the report)."""
        stages = self.run.stages_with(task)
        if stages:
            self.h(2, title)
        return stages

    def h(self, level: int, text: str) -> None:
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.blocks.append(Heading(level, text, anchor))

    def p(self, text: str) -> None:
        self.blocks.append(Para(text))

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        if rows:
            self.blocks.append(Table(headers, rows))

    def figure(self, fn, name: str, caption: str, *args, **kwargs) -> None:
        """Draw a figure; a figure that fails to draw is left out rather than failing the report."""
        try:
            fn(*args, out=self.out / name, **kwargs)
        except (ValueError, KeyError, TypeError, IndexError):
            return
        self.blocks.append(Figure(name, caption))

    def copy_image(self, src: Path | None) -> str | None:
        """Copy a dataset image beside the report (images/NNN_<name>) and return its relative path."""
        if src is None or not src.is_file():
            return None
        self.n_images += 1
        dest = self.out / "images" / f"{self.n_images:03d}_{src.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return f"images/{dest.name}"
