"""The two renderings of the document: Markdown (report.md) and a standalone HTML page (index.html).

Every string is escaped on the way out, so model output can neither inject HTML nor become formatting.
"""

from __future__ import annotations

import html
import re

from tinygpt4.report.blocks import Block, Figure, Heading, Para, Table, Transcript

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Escape text for Markdown: HTML entities for &, <, >, and a backslash before the characters that make
    emphasis, code, links and table cells, so model output can neither inject HTML nor become formatting.
    Newlines become <br> (the text stays inside its paragraph or table cell)."""
    text = html.escape(str(text), quote=False)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    # no heading or list item at the start of the text
    text = re.sub(r"^(\s*)(#|[-+](?=\s|$))", r"\1\\\2", text)  # (">" is already &gt;)
    text = re.sub(r"^(\s*\d+)([.)])(?=\s|$)", r"\1\\\2", text)
    return text.replace("\r", "").replace("\n", "<br>")


def _toc(blocks: list[Block]) -> list[Heading]:
    """The table of contents, written under the title: the second-level headings."""
    return [x for x in blocks if isinstance(x, Heading) and x.level == 2]


# ---- Markdown --------------------------------------------------------------------------------------------

def _md_heading(b: Heading, blocks: list[Block]) -> list[str]:
    out = [f"{'#' * b.level} {md_escape(b.text)}\n"]
    if b.level == 1:
        out.append("\n".join(f"- [{md_escape(x.text)}](#{x.anchor})" for x in _toc(blocks)) + "\n")
    return out


def _md_table(b: Table) -> list[str]:
    out = ["| " + " | ".join(md_escape(h) for h in b.headers) + " |",
           "|" + "|".join("---" for _ in b.headers) + "|"]
    out += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in b.rows]
    return out + [""]


def _md_transcript(b: Transcript) -> list[str]:
    out = [f"**{md_escape(b.title)}**\n"]
    for speaker, text, images in b.turns:
        out += [f"> ![image]({img})" for img in images]
        out.append(f"> **{md_escape(speaker)}:** {md_escape(text)}\n>")
    if b.note:
        out.append(f"> *{md_escape(b.note)}*")
    return out + [""]


def render_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += _md_heading(b, blocks)
        elif isinstance(b, Para):
            out.append(md_escape(b.text) + "\n")
        elif isinstance(b, Table):
            out += _md_table(b)
        elif isinstance(b, Figure):
            out.append(f"![{md_escape(b.caption)}]({b.file})\n\n*{md_escape(b.caption)}*\n")
        elif isinstance(b, Transcript):
            out += _md_transcript(b)
    return "\n".join(out).rstrip() + "\n"


# ---- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.7em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left}th{background:#f3f3f3}figure{margin:1em 0}figure img{max-width:100%}figcaption{font-size:.85em;
color:#555}.transcript{border-left:3px solid #4c72b0;margin:1em 0;padding:.2em .9em;background:#fafafa}
.transcript img{width:128px;image-rendering:pixelated;border:1px solid #ccc;margin:.2em .4em .2em 0}
.speaker{font-weight:600}.note{font-size:.85em;color:#555}.turn{white-space:pre-wrap;margin:.3em 0}
"""

_e = html.escape  # short: it wraps every interpolation below


def _html_heading(b: Heading, blocks: list[Block]) -> list[str]:
    out = [f"<h{b.level} id=\"{_e(b.anchor)}\">{_e(b.text)}</h{b.level}>"]
    if b.level == 1:
        items = "".join(f"<li><a href=\"#{_e(x.anchor)}\">{_e(x.text)}</a></li>" for x in _toc(blocks))
        out.append(f"<ul>{items}</ul>")
    return out


def _html_table(b: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in b.headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in b.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_transcript(b: Transcript) -> str:
    parts = [f"<div class=\"transcript\"><p><b>{_e(b.title)}</b></p>"]
    for speaker, text, images in b.turns:
        imgs = "".join(f"<img src=\"{_e(i)}\" alt=\"image\">" for i in images)
        parts.append(f"<div class=\"turn\">{imgs}{'<br>' if imgs else ''}"
                     f"<span class=\"speaker\">{_e(speaker)}:</span> {_e(text)}</div>")
    if b.note:
        parts.append(f"<p class=\"note\">{_e(b.note)}</p>")
    parts.append("</div>")
    return "".join(parts)


def render_html(blocks: list[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out += _html_heading(b, blocks)
        elif isinstance(b, Para):
            out.append(f"<p>{_e(b.text)}</p>")
        elif isinstance(b, Table):
            out.append(_html_table(b))
        elif isinstance(b, Figure):
            out.append(f"<figure><img src=\"{_e(b.file)}\" alt=\"{_e(b.caption)}\">"
                       f"<figcaption>{_e(b.caption)}</figcaption></figure>")
        elif isinstance(b, Transcript):
            out.append(_html_transcript(b))
    out.append("</body></html>")
    return "\n".join(out) + "\n"
