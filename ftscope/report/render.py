"""A study's report, from the Parquet store alone (no model is loaded): each study's text tables and
verdicts, the README block, and the HTML page with figures, tables, comparisons and the run's metadata.
Every number comes from the study's Results (ftscope/report/results.py), rendered by its kind's report."""

import json
import logging
import re
import textwrap
from datetime import datetime, timezone
from pathlib import Path

from ftscope.config import import_plugins
from ftscope.report import numbers
from ftscope.report.figures import forest
from ftscope.report.page import Section, write_page
from ftscope.report.results import Results
from ftscope.runs import latest_config
from ftscope.store import Store
from ftscope.studies import STUDIES

log = logging.getLogger("ftscope.report")


def study_tables(results: dict) -> str:
    """The text tables of every study in `results` (read_results), each under its name when there are several."""
    if len(results) == 1:
        return next(study.report.text(res) for study, res in results.values())
    return "\n\n".join(f"== study {name} ==\n{study.report.text(res)}" for name, (study, res) in results.items()) \
        or "no planned cells yet"


WIDTH = 120  # the terminal's verdict table fits this many columns


def verdicts_text(results: dict) -> str:
    """The verdict table of each study in `results` (read_results), as the terminal shows it (at most 120
    columns): each finding of the paper, then A - B with its interval in the README's format, the items and base
    models behind it, and the verdict."""
    parts = []
    for name, (study, res) in results.items():
        if comps := study.report.comparisons(res):
            as_is = "KL, bits per byte and perplexity" if any(c.unit == "magnitude" for c in comps) else "KL"
            lines = [f"{name}: the paper's findings here (A - B on the same test items, in points; {as_is} as is; "
                     f"95% paired bootstrap)"]
            for i, row in enumerate(comparison_rows(comps), 1):
                lines += textwrap.wrap(row["finding (paper)"], WIDTH, initial_indent=f"{i:>2}. ",
                                       subsequent_indent="    ")
                numbers_ = (f"{row['A - B']} {row['95% interval']}" if row["A - B"] != "-" else "no items on both arms")
                behind = f"{row['items']} items" + (f", {row['base models']} base models" if row["base models"] != "1"
                                                    else "") + f", {row['seeds']} seed(s)"
                tail = f": {numbers_}, {behind} -> {row['verdict']}"
                lines += textwrap.wrap(f"{row['A']} vs {row['B']}{tail}", WIDTH, initial_indent="    ",
                                       subsequent_indent="      ")
            parts.append("\n".join(lines))
    return "\n\n".join(parts)


def report_text(store: Store, study: str | None = None, results: dict | None = None) -> str:
    """What a run prints at its end (and its Prefect summary shows): the text tables, then the verdicts, then
    a warning when the cells computed on several kinds of machine."""
    results = results if results is not None else read_results(store, study)
    notes = [f"{name}:{note}" for name, (_, res) in results.items() if (note := machines_note(res))]
    return "\n\n".join(t for t in (synthetic_note(store, study), study_tables(results), verdicts_text(results), *notes,
                                    not_run_text(store, study)) if t)


def synthetic_note(store: Store, study: str | None = None) -> str:
    """A warning on every page of a store that a benchmark filled with random values (its `runs` say so)."""
    marks = [r["message"] for r in store.read("runs").to_pylist()
             if r["status"] == "synthetic" and (not study or r["study"] == study)]
    return f"SYNTHETIC STORE, NOT RESULTS: {marks[0]}" if marks else ""


def not_run_text(store: Store, study: str | None = None) -> str:
    """The planned cells the data could not run, counted by reason."""
    latest = store.latest_cells()
    reasons: dict[str, int] = {}
    for p in store.read("plan").to_pylist():
        if (not study or p["study"] == study) and (c := latest.get(p["cell_id"])) and c["status"] == "not_run":
            reasons[c["error"]] = reasons.get(c["error"], 0) + 1
    return "\n".join(f"{n} cell(s) {why}" for why, n in sorted(reasons.items()))


def comparison_rows(comparisons) -> list[dict]:
    """The verdict table, written in the one number format (ftscope/report/numbers.py): a difference in points
    (KL as is, three significant digits) with its 95% interval, and counts."""
    rows = []
    for c in comparisons:
        diff, ci = numbers.difference(c.diff, c.lo, c.hi, c.unit) if c.n else (numbers.DASH, numbers.DASH)
        rows.append({"finding (paper)": c.claim, "A": c.a, "B": c.b, "A - B": diff, "95% interval": ci,
                     "items": numbers.count(c.n), "base models": numbers.count(c.base_models),
                     "seeds": numbers.count(c.seeds), "verdict": c.verdict})
    return rows


def read_results(store: Store, study: str | None = None) -> dict:
    """{study name: (its Study, its Results)} for every study of a known kind in the store's plan
    (or just `study`): read once, then shared by the figures, the comparisons and the findings."""
    kinds = {r["study"]: r["kind"] for r in store.read("plan").to_pylist() if not study or r["study"] == study}
    for name in kinds:
        _import_plugins(store, name)
    return {name: (STUDIES.get(kind), Results(store, name)) for name, kind in sorted(kinds.items())
            if kind in STUDIES}


def _import_plugins(store: Store, study: str) -> None:
    """The plug-ins of the study's latest run (its own methods, metrics, study kind): the report asks them
    whether a method changes the model and whether a metric is a proportion."""
    try:
        plugins = latest_config(store, study).get("plugins") or []
    except ValueError:  # no run recorded: nothing to import
        return
    for problem in import_plugins(plugins, Path(".")):
        log.warning("report of %s: %s; its methods and metrics are shown with defaults", study, problem)


def findings_markdown(study, results) -> str:
    """The verdict table of one study, as markdown: each finding of the paper, the difference this run
    measured on the same test items, its 95% paired interval, and how many items, base models and seeds stand
    behind it."""
    comps = study.report.comparisons(results)
    headline = study.report.headline(results) if study.report.headline else ""
    lines = [*([f"**{note}**", ""] if (note := synthetic_note(results.store, results.study)) else []),
             f"Generated by `ftscope report {results.store.uri} --readme README.md` from {len(results.cells)} done "
             f"cells of study `{results.study}`. Differences are in points (accuracy or ROUGE-L F x 100; "
             + ("KL, bits per byte and perplexity" if any(c.unit == "magnitude" for c in comps) else "KL") + " as is), "
             "A - B on the same test items with a 95% paired bootstrap interval (over base models, then items, "
             "when there are several base models; over items otherwise)." + machines_note(results)
             + "".join(f" {line[0].upper()}{line[1:]}." for line in not_run_text(results.store, results.study).splitlines()),
             "",
             "| finding (paper) | A | B | A - B | 95% interval | items | base models | seeds | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in comparison_rows(comps):
        lines.append(f"| {r['finding (paper)']} | {r['A']} | {r['B']} | {r['A - B']} | {r['95% interval']} | "
                     f"{r['items']} | {r['base models']} | {r['seeds']} | **{r['verdict']}** |")
    if headline:
        lines += ["", "```", headline, "```"]
    return "\n".join(lines)


def machines_note(results) -> str:
    """A warning when the done cells computed on more than one kind of machine (CPU, kernels, BLAS, threads):
    their numbers need not agree in the last bits, so a difference between them may be the machines'."""
    machines = results.machines
    if len(machines) <= 1:
        return ""
    listing = "; ".join(f"{n} cells on {_machine(m)}" for m, n in sorted(machines.items(), key=lambda kv: -kv[1]))
    return f" Warning: this store mixes {len(machines)} machines ({listing})."


def _machine(record: str) -> str:
    m = json.loads(record or "{}")
    if not m:
        return "an unrecorded machine"
    return f"{m.get('cpu') or '?'} ({m.get('isa')}, {m.get('blas')}, {m.get('threads')} threads" + \
        (", pinned" if m.get("pinned") else "") + ")"


def rewrite_readme(readme: Path, study: str, markdown: str) -> bool:
    """Replace the block between `<!-- findings:STUDY -->` and `<!-- /findings:STUDY -->`; False if absent."""
    text = readme.read_text(encoding="utf-8")
    start, end = f"<!-- findings:{study} -->", f"<!-- /findings:{study} -->"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: f"{start}\n{markdown}\n{end}", text), encoding="utf-8")
    return True


def report_dir(cfg) -> Path:
    """Where a study's report goes: under its results directory, or its artifacts directory when the results
    live in an object store."""
    return Path(cfg.results_dir) / "report" if "://" not in cfg.results_dir else \
        Path(cfg.artifacts_dir) / cfg.study / "report"


def write_report(store: Store, out: Path, study: str | None = None) -> tuple[str, Path]:
    """(text, page): the text tables and verdicts, and the HTML report, written under `out` with the store's
    state they were made from, so that a re-run with nothing new reuses them (saved_report)."""
    state = store.state()
    results = read_results(store, study)
    text = report_text(store, study, results)
    page = build_report(store, out, study, results)
    (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    (out / "store-state").write_text(state)
    return text, page


def saved_report(store: Store, out: Path) -> str | None:
    """The saved text of the report under `out` when the store has not changed since it was written."""
    try:
        if (out / "store-state").read_text() == store.state() and (out / "report.html").is_file():
            return (out / "report.txt").read_text(encoding="utf-8").rstrip("\n")
    except OSError:
        pass
    return None


def build_report(store: Store, out: str | Path, study: str | None = None, results: dict | None = None) -> Path:
    """Write report.html (and figures/*.png, *.svg) under `out`; returns the page's path. `results`: what
    `read_results(store, study)` returned, when the caller has it already."""
    out = Path(out)
    plan = [r for r in store.read("plan").to_pylist() if not study or r["study"] == study]
    studies = sorted({(r["study"], r["kind"]) for r in plan})
    findings, sections = [], []
    for name, (study_def, res) in (results if results is not None else read_results(store, study)).items():
        if comps := study_def.report.comparisons(res):
            findings.append(Section(
                f"{name}: what the paper found, and what this run shows",
                "Each finding is a difference A - B on the same test items (both prompt maps pooled) with a 95% paired "
                "bootstrap interval (over base models, then items, where there are several base models; over items "
                "otherwise), in points (KL as is): 'reproduced' when the interval lies on the paper's side of 0, "
                "'contradicted' on the other side, 'not distinguishable' when it holds 0.",
                forest(comps, out, f"findings_{_slug(name)}"), comparison_rows(comps)))
        sections += study_def.report.sections(res, out)
        sections.append(Section(f"{name}: tables", "What `ftscope report` prints: every method and variant over the "
                                "grid, mean over seeds.", pre=study_def.report.text(res)))
    title = "ftscope report: " + ", ".join(f"{n} ({STUDIES.get(k).title if k in STUDIES else k})" for n, k in studies)
    stamp = f"{len(store.done_cells()):,} done cells; written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    if note := synthetic_note(store, study):
        stamp = f"{note}. {stamp}"
    return write_page(out, title, findings + sections, meta_sections(store, study), subtitle=stamp)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def meta_sections(store: Store, study: str | None):
    """Cell counts (with the reason of every failed or missing cell), timings, config and versions."""
    latest = store.latest_cells()
    plan = [r for r in store.read("plan").to_pylist() if not study or r["study"] == study]
    gaps, counts, timings = [], {"done": 0, "failed": 0, "missing": 0}, []
    for p in plan:
        c = latest.get(p["cell_id"])
        state = c["status"] if c else "missing"
        counts[state] = counts.get(state, 0) + 1
        if state != "done":
            gaps.append({"cell": p["label"], "state": state, "reason": c["error"] if c else "not run (yet): "
                         "re-run the study, or `ftscope retry` on a cluster"})
        else:
            timings.append({"cell": p["label"], "total s": c["duration_s"], "train s": c["train_s"],
                            "eval s": c["eval_s"], "device": c["device"], "threads": c["threads"]})
    runs = sorted((r for r in store.read("runs").to_pylist() if not study or r["study"] == study),
                  key=lambda r: r["started_at"])
    not_run = f"{counts['not_run']} not run (the data cannot run them), " if counts.get("not_run") else ""
    out = [Section("Cells", f"{counts['done']} done, {counts['failed']} failed, {not_run}{counts['missing']} missing. "
                   "Failed, not run and missing cells are gaps in the figures and tables, never zeros.", None, gaps)]
    if runs:
        last = runs[-1]
        out.append(Section("Runs", "", None, [{"run": r["run_id"][:8], "study": r["study"], "status": r["status"],
                                               "started": str(r["started_at"])[:19],
                                               "finished": str(r["finished_at"] or "")[:19], "host": r["host"],
                                               "Prefect": r["prefect_url"] or ""} for r in runs]))
        out.append(Section("Config of the latest run", pre=last["config"] or ""))
        out.append(Section("Software versions", pre=last["versions"] or ""))
    out.append(Section("Timings of the done cells", "", None, timings))
    machines: dict[str, int] = {}
    for p in plan:
        if (c := latest.get(p["cell_id"])) is not None and c["status"] == "done":
            machines[c.get("machine") or ""] = machines.get(c.get("machine") or "", 0) + 1
    out.append(Section("Machines", "What the done cells computed on; numbers of cells from different machines need not "
                       "agree in the last bits (`reproducible: true` pins the CPU kernels).", None,
                       [{"cells": n, "machine": _machine(m)} for m, n in sorted(machines.items(), key=lambda kv: -kv[1])]))
    return out
