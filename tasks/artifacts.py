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
    """The study's progress artifact, updated as each cell ends, and its table of finished cells. Up to
    TABLE_CELLS cells the table has a row per cell; beyond, a row per model and method (a paper-scale sweep's
    4,145 rows would be unreadable), and it is sent again only each 1% of the cells: each send is a new version
    the server keeps, so sending every row at every cell would store the table thousands of times."""

    TABLE_CELLS = 200

    def __init__(self, cfg, total: int, already: int):
        self.cfg, self.total, self.done, self.rows = cfg, max(total, 1), already, {}
        self.every = 1 if total <= self.TABLE_CELLS else -(-total // 100)
        self.store = Store(cfg.results_dir)
        self.id = create_progress_artifact(100 * already / self.total, key=_key(cfg, "progress"),
                                           description=f"{cfg.study}: cells done of {total}")

    def finished(self, planned, state, store: Store | None = None) -> None:
        """One cell ended: one log line, the progress and the table of finished cells updated. `store`: a
        snapshot to read its numbers from (a dispatched job's cells share one)."""
        self.done += 1
        ok = state.is_completed()
        numbers = headline(store or self.store, planned.cid) if ok else {}
        shown = ", ".join(f"{d} {100 * v:.1f}" for d, v in numbers.items())
        get_run_logger().info("cell %d/%d %s: %s%s", self.done, self.total, planned.cell.label,
                              "done" if ok else f"{state.name}: {(state.message or '')[:200]}",
                              f" ({shown})" if shown else "")
        update_progress_artifact(self.id, 100 * self.done / self.total)
        per_cell = self.every == 1
        key = planned.cell.label if per_cell else f"{planned.cell.model}, {planned.cell.method}"
        row = self.rows.setdefault(key, {"done": 0, "not done": 0, "sums": {}})
        row["done" if ok else "not done"] += 1
        row["state"] = "done" if ok else state.name.lower()
        for d, v in numbers.items():
            row["sums"][d] = row["sums"].get(d, 0.0) + v
        if self.done % self.every == 0 or self.done >= self.total:
            self._send(per_cell)

    def _send(self, per_cell: bool) -> None:
        rows = []
        for key, r in self.rows.items():
            row = {"cell": key, "state": r["state"]} if per_cell else \
                {"model, method": key, "done": r["done"], "not done": r["not done"]}
            rows.append(row | {f"{d} %": round(100 * s / max(r["done"], 1), 1) for d, s in r["sums"].items()})
        what = "finished cells" if per_cell else "finished cells by model and method (counts, mean score)"
        create_table_artifact(rows, key=_key(self.cfg, "cells"),
                              description=f"{self.cfg.study}: {what} per domain (prompt map 0, 0 shots)")


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
