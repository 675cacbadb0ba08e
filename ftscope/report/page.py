"""The report as one self-contained HTML page (images inline, no network), and the same tables as text."""

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ftscope.report.numbers import cell


@dataclass
class Section:
    title: str
    text: str = ""
    figure: Path | None = None
    table: list[dict] = field(default_factory=list)
    pre: str = ""  # preformatted text (a config, versions)


def table_text(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[cell(r.get(c), c) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    return "\n".join([line, "-" * len(line)] + ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in cells])


def columns(head: list[str], rows: list[list[str]], left: int) -> str:
    """Columns as wide as their widest entry; the first `left` columns flush left, the rest right."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    align = lambda row: "  ".join(f"{x:<{w}}" if i < left else f"{x:>{w}}"  # noqa: E731
                                  for i, (x, w) in enumerate(zip(row, widths)))
    lines = [align(head), "-" * len(align(head))] + [align(r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r.get(c), c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}img{max-width:100%}pre{background:#f7f7f7;padding:.6em;font-size:.8em;overflow-x:auto}
.wide{overflow-x:auto}.sub{color:#666;margin-top:-.6em}nav ol{font-size:.9em;columns:2;column-gap:2em}
td:first-child,th:first-child{text-align:left}.gap{color:#a00}"""


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def write_page(out: Path, title: str, sections: list[Section], meta: list[Section], subtitle: str = "") -> Path:
    """report.html under `out`: the title and a table of contents, every section (text, figure, table) with
    its own anchor, then the run's metadata."""
    everything = sections + meta
    toc = "".join(f"<li><a href='#{anchor(s.title)}'>{html.escape(s.title)}</a></li>" for s in everything)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
             + (f"<p class='sub'>{html.escape(subtitle)}</p>" if subtitle else "")
             + f"<nav><ol>{toc}</ol></nav>"]
    for s in everything:
        parts.append(f"<h2 id='{anchor(s.title)}'>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.figure is not None:
            data = base64.b64encode(Path(s.figure).read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(s.title)}' src='data:image/png;base64,{data}'>")
        if s.table:
            parts.append(table_html(s.table))
        if s.pre:
            parts.append(f"<pre>{html.escape(s.pre)}</pre>")
    parts.append("</body></html>")
    out.mkdir(parents=True, exist_ok=True)
    page, tmp = out / "report.html", out / f".report.html.{os.getpid()}.tmp"
    try:  # whole or not at all: a full disk leaves no half page behind
        tmp.write_text("\n".join(parts), encoding="utf-8")
        tmp.replace(page)
    finally:
        tmp.unlink(missing_ok=True)
    return page
