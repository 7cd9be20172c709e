"""The report's sections, by name, and the order they appear in.

A section is a function `write(doc: Doc) -> None` registered with `@section(name, order=...)`; it adds
nothing when the run has no files for it. Sections come from the modules of `tinygpt4.report.sections`,
all of which are imported by `ordered_sections`, so a new module there is a new section.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from tinygpt4.report import sections as _sections_pkg
from tinygpt4.report.blocks import Doc

Writer = Callable[[Doc], None]


@dataclass(frozen=True)
class Section:
    name: str
    order: int  # smaller comes first
    write: Writer


SECTIONS: dict[str, Section] = {}


def section(name: str, *, order: int) -> Callable[[Writer], Writer]:
    """Register the decorated function as the report section `name`, placed by `order`."""

    def register(fn: Writer) -> Writer:
        if name in SECTIONS and SECTIONS[name].write is not fn:
            raise ValueError(f"report section {name!r} is registered twice")
        SECTIONS[name] = Section(name, order, fn)
        return fn

    return register


def _import_section_modules() -> None:
    for info in pkgutil.iter_modules(_sections_pkg.__path__):
        importlib.import_module(f"{_sections_pkg.__name__}.{info.name}")


def ordered_sections() -> list[Section]:
    """Every registered section, in report order (ties by name, so the order never depends on imports)."""
    _import_section_modules()
    return sorted(SECTIONS.values(), key=lambda s: (s.order, s.name))
