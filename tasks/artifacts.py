"""What a study run shows in the Prefect UI while it runs: a progress artifact for the grid, a table of
finished cells with their headline numbers, and at the end a markdown summary with the report's path."""

import re

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ftscope.progress import describe
from ftscope.runs import headline
from ftscope.store import Store


def _key(cfg, what: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{cfg.study}-{what}".lower()).strip("-")


class CellProgress:
    def __init__(self, cfg, total: int, already: int):
        self.cfg, self.total, self.done, self.rows = cfg, max(total, 1), already, []
        self.store = Store(cfg.results_dir)
        self.id = create_progress_artifact(100 * already / self.total, key=_key(cfg, "progress"),
                                           description=f"{cfg.study}: cells done of {total}")

    def finished(self, planned, state) -> None:
        """One cell ended: one log line, the progress and the table of finished cells updated."""
        self.done += 1
        ok = state.is_completed()
        numbers = headline(self.store, planned.cid) if ok else {}
        shown = ", ".join(f"{d} {100 * v:.1f}" for d, v in numbers.items())
        get_run_logger().info("cell %d/%d %s: %s%s", self.done, self.total, planned.cell.label,
                              "done" if ok else f"{state.name}: {(state.message or '')[:200]}",
                              f" ({shown})" if shown else "")
        update_progress_artifact(self.id, 100 * self.done / self.total)
        self.rows.append({"cell": planned.cell.label, "state": "done" if ok else state.name.lower(),
                          **{f"{d} %": round(100 * v, 1) for d, v in numbers.items()}})
        create_table_artifact(self.rows, key=_key(self.cfg, "cells"),
                              description=f"{self.cfg.study}: finished cells and their mean score per domain "
                                          "(prompt map 0, 0 shots)")


def progress_sink(key: str):
    """A Progress sink that keeps one progress artifact of the current task or flow run up to date: the
    phase's percentage, and the phase with its counts and loss as the description."""
    artifact = {}

    def send(state: dict) -> None:
        pct, text = state["percent"] if state["percent"] is not None else 0.0, describe(state)
        if "id" not in artifact:
            artifact["id"] = create_progress_artifact(pct, key=re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-"),
                                                      description=text)
        else:
            update_progress_artifact(artifact["id"], pct, description=text)
    return send


def summary_artifact(cfg, text: str, report_path: str | None, failed: list[str]) -> None:
    md = [f"# {cfg.study}", f"**{len(failed)} failed cells**" if failed else "All planned cells are done."]
    md += [f"- {f}" for f in failed[:50]]
    if report_path:
        md.append(f"\nHTML report: `{report_path}`")
    md.append("\n```\n" + text + "\n```")
    create_markdown_artifact("\n".join(md), key=_key(cfg, "summary"), description=f"{cfg.study}: summary")
