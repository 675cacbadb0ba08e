"""The report as one self-contained HTML page (images inline, no network), and the same tables as text."""

import base64
import html
import math
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Section:
    title: str
    text: str = ""
    figure: Path | None = None
    table: list[dict] = field(default_factory=list)
    pre: str = ""  # preformatted text (a config, versions)


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"
    return str(v)


def table_text(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    return "\n".join([line, "-" * len(line)] + ["  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in cells])


def table_html(rows: list[dict]) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
th{background:#f4f4f4}img{max-width:100%}pre{background:#f7f7f7;padding:.6em;font-size:.8em;overflow-x:auto}
.gap{color:#a00}"""


def write_page(out: Path, title: str, sections: list[Section], meta: list[Section]) -> Path:
    """report.html under `out`: every section (text, figure, table), then the run's metadata."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for s in sections + meta:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
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
