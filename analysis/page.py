"""The HTML of summary.html: escaping, tables, embedded figures and the page around the sections.

Everything that comes from results (trial ids, config values, class names, error messages,
paths) goes through `esc`. The only text inserted unescaped is `Html`, which this package
builds itself; a table cell or caption that is a plain string is always escaped.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

STATUS_CLASSES = {"finished": "finished", "stopped_early": "stopped", "failed": "failed"}


class Html(str):
    """Markup this package wrote; inserted as is. Any other str is escaped."""


@dataclass(frozen=True)
class Section:
    key: str      # the section's id in the page (an anchor for the table of contents)
    title: str
    body: Html


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def cell(value: Any) -> str:
    return value if isinstance(value, Html) else esc(value)


def join(parts: Sequence[str]) -> Html:
    return Html("".join(cell(p) for p in parts))


def paragraph(text: Any, css: str = "") -> Html:
    attribute = f' class="{css}"' if css else ""
    return Html(f"<p{attribute}>{cell(text)}</p>")


def warning(text: Any) -> Html:
    return Html(f'<p class="warning" role="note"><strong>Warning:</strong> {cell(text)}</p>')


def unavailable(text: Any) -> Html:
    """A section part that could not be made (missing checkpoint, unreadable data): say why."""
    return Html(f'<p class="unavailable" role="note">{cell(text)}</p>')


def code_block(text: Any) -> Html:
    return Html(f"<pre><code>{esc(text)}</code></pre>")


def heading(text: Any, level: int = 3) -> Html:
    return Html(f"<h{level}>{cell(text)}</h{level}>")


def badge(status: str) -> Html:
    css = STATUS_CLASSES.get(status, "other")
    label = status.replace("_", " ") if status else "unknown"
    return Html(f'<span class="badge badge-{css}">{esc(label)}</span>')


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], table_id: str = "",
          row_classes: Sequence[str] | None = None, caption: Any = "") -> Html:
    """A table whose cells wrap at spaces (numbers and identifiers hold none, or a non-breaking one)
    so that it fits the page; one that still does not (a long path) scrolls sideways inside it."""
    attribute = f' id="{esc(table_id)}"' if table_id else ""
    head = "".join(f"<th scope=\"col\">{_breakable(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{esc(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    caption_html = f"<caption>{cell(caption)}</caption>" if caption else ""
    return Html(f'<div class="table-wrap"><table{attribute}>{caption_html}<thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table></div>")


def _breakable(header: Any) -> str:
    """A column name that may wrap after its underscores (augment_strength is the widest word of a table)."""
    return header if isinstance(header, Html) else esc(header).replace("_", "_<wbr>")


def key_values(pairs: Sequence[tuple[str, Any]], table_id: str = "") -> Html:
    """A two-column table of labelled facts."""
    attribute = f' id="{esc(table_id)}"' if table_id else ""
    rows = "".join(f'<tr><th scope="row">{cell(k)}</th><td>{cell(v)}</td></tr>' for k, v in pairs)
    return Html(f'<div class="table-wrap"><table class="facts"{attribute}><tbody>{rows}</tbody></table></div>')


def figure(png: Path, alt: str, caption: Any, context: str) -> Html:
    """A PNG embedded as a data URI (the page must open offline), with what it shows and rests on."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return Html(f'<figure><img src="data:image/png;base64,{data}" alt="{esc(alt)}" '
                f'data-file="{esc(png.name)}"><figcaption>{cell(caption)}'
                f'<span class="context">{esc(context)}</span></figcaption></figure>')


def collapsible(summary: Any, body: Html, open_: bool = False) -> Html:
    """A part of a section a reader can fold away (<details>), with `summary` as its always-visible line."""
    return Html(f'<details class="figure"{" open" if open_ else ""}><summary>{cell(summary)}</summary>{body}</details>')


def pct(value: Any, digits: int = 2) -> str:
    """An accuracy fraction as a percentage; a dash when missing."""
    number = _number(value)
    return "–" if number is None else f"{100 * number:.{digits}f}%"


def points(value: Any) -> str:
    """A difference of accuracies in percentage points, signed."""
    number = _number(value)
    return "–" if number is None else f"{100 * number:+.2f}\u00a0pt"  # one unit with its number: no wrap


def num(value: Any, digits: int = 4) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.{digits}g}"


def integer(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{int(round(number)):,}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    toc = "".join(f'<li><a href="#{esc(s.key)}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f'<body><main class="container"><header><h1>{esc(title)}</h1>'
            f'<p class="subtitle">{esc(subtitle)}</p><nav><ul class="toc">{toc}</ul></nav></header>'
            f"{body}</main></body></html>\n")


# System fonts only: the page must look the same offline, with nothing fetched.
CSS = """
:root { --fg: #1d2430; --muted: #5b6573; --line: #d9dee5; --bg-alt: #f5f7fa; --accent: #2458a6; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.container { max-width: 1100px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05rem; margin: 1.5rem 0 .5rem; }
.subtitle, figcaption, .note { color: var(--muted); }
nav ul.toc { columns: 2; list-style: none; padding-left: 0; margin: .75rem 0; }
a { color: var(--accent); }
.table-wrap { overflow-x: auto; margin: .75rem 0; border: 1px solid var(--line); border-radius: 4px; }
table { border-collapse: collapse; width: 100%; font-size: .88rem; font-variant-numeric: tabular-nums; }
th, td { padding: .35rem .45rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
table.facts td { overflow-wrap: anywhere; }
thead th { background: var(--bg-alt); position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.stopped td { color: #6b5a1e; }
tr.failed td { color: #8f1d1d; background: #fff4f4; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: 999px; font-size: .78rem; font-weight: 600; }
.badge-finished { background: #e2f3e6; color: #1d6b34; }
.badge-stopped { background: #fdf1d6; color: #7a5a00; }
.badge-failed { background: #fbe0e0; color: #8f1d1d; }
.badge-other { background: #e8e8e8; color: #444; }
figure { margin: 1rem 0 1.5rem; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: .85rem; margin-top: .35rem; }
figcaption .context { display: block; font-style: italic; }
.warning { background: #fff6e0; border-left: 4px solid #e0a100; padding: .5rem .75rem; }
.unavailable { background: #f3f4f6; border-left: 4px solid #8a93a0; padding: .5rem .75rem; }
.conclusion { background: #eef4fd; border-left: 4px solid var(--accent); padding: .5rem .75rem; }
pre { background: var(--bg-alt); padding: .6rem .8rem; overflow-x: auto; border-radius: 4px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
details { margin: .5rem 0; }
details.figure > summary { cursor: pointer; font-weight: 600; margin: .75rem 0 .25rem; }
@media (max-width: 700px) { nav ul.toc { columns: 1; } }
"""
