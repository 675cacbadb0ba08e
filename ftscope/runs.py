"""A study's flow runs in the store (`runs`): its resolved config, when it ran, where, its Prefect link
and how it ended, so that a report or `status` needs nothing but the store."""

import os
import socket
import uuid
from datetime import datetime, timezone

import yaml

from ftscope import measurements
from ftscope.locks import pid_alive
from ftscope.machine import versions
from ftscope.records import Run, as_row
from ftscope.store import Store


class RunRecord:
    active: set = set()  # runs of this process not yet finished: a stopped process marks them cancelled

    def __init__(self, cfg, store: Store, prefect_url: str | None = None, run_id: str | None = None):
        self.cfg, self.store = cfg, store
        self.row = {"run_id": run_id or uuid.uuid4().hex, "study": cfg.study, "kind": cfg.kind,
                    "config": yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
                    "started_at": datetime.now(timezone.utc), "finished_at": None, "prefect_url": prefect_url,
                    "host": socket.gethostname(), "pid": os.getpid(), "versions": versions(), "message": None}
        self._write("running")
        RunRecord.active.add(self)

    def finish(self, status: str, message: str | None = None) -> None:
        RunRecord.active.discard(self)
        self.row.update(finished_at=datetime.now(timezone.utc), message=message)
        self._write(status)

    @classmethod
    def cancel_all(cls, message: str) -> None:
        """Mark every unfinished run of this process cancelled (best effort: a full disk may refuse)."""
        for run in list(cls.active):
            try:
                run.finish("cancelled", message)
            except OSError:
                pass

    def _write(self, status: str) -> None:
        self.row["status"] = status
        self.store.write("runs", f"{self.row['run_id']}-{status}", [as_row(Run(**self.row))])


def mark_dead(store: Store, study: str | None = None) -> list[dict]:
    """Record as crashed the runs whose process is gone though they still say running."""
    dead = dead_runs(store, study)
    for r in dead:
        store.write("runs", f"{r['run_id']}-crashed", [{**r, "status": "crashed", "message": "its process died",
                                                        "finished_at": datetime.now(timezone.utc)}])
    return dead


def headline(store: Store, cid: str) -> dict[str, float]:
    """A cell's headline numbers: its mean score per domain (slice all, prompt map 0, 0 shots; the measurements' rows,
    such as general capability in the units of each lm-eval metric, left out)."""
    t = store.read_key("metrics", cid).to_pylist() if store.exists("metrics", cid) else []
    by: dict[str, list[float]] = {}
    apart = measurements.domains()
    for r in t:
        if r["slice"] == "all" and r["prompt_map"] == 0 and r["shots"] == 0 and r["domain"] not in apart:
            by.setdefault(r["domain"], []).append(r["value"])
    return {d: sum(v) / len(v) for d, v in sorted(by.items())}


def latest_config(store: Store, study: str | None = None) -> dict:
    """The resolved config of the latest run recorded in a results directory."""
    runs = sorted((r for r in store.read("runs").to_pylist() if not study or r["study"] == study),
                  key=lambda r: (r["started_at"], r["finished_at"] is not None))
    if not runs:
        raise ValueError(f"{store.uri} records no run{' of ' + study if study else ''}")
    return yaml.safe_load(runs[-1]["config"])


def latest_runs(store: Store, study: str | None = None) -> list[dict]:
    """Every run's latest record, oldest first (a run writes one record when it starts and one when it ends)."""
    last: dict[str, dict] = {}
    for r in sorted(store.read("runs").to_pylist(), key=lambda r: (r["started_at"], r["finished_at"] is not None)):
        if not study or r["study"] == study:
            last[r["run_id"]] = r
    return sorted(last.values(), key=lambda r: r["started_at"])


def dead_runs(store: Store, study: str | None = None) -> list[dict]:
    """Runs recorded as running whose process is gone (checked on this host only: another host's pid means
    nothing here)."""
    return [r for r in latest_runs(store, study) if r["status"] == "running" and r["host"] == socket.gethostname()
            and r["pid"] is not None and not pid_alive(r["pid"])]
