"""How far along a long step is: a cell's training steps (with epoch and loss), its evaluation prompts, the
mastery items scored. One log line per phase, never per step; updates go at most every few seconds to the
sinks (a progress file beside the cell's claim that `ftscope status` reads, the Prefect UI's progress
artifact that tasks/ adds, a progress bar on a terminal). The core knows no sink but the file."""

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

log = logging.getLogger("ftscope.progress")
SINKS: ContextVar[tuple] = ContextVar("ftscope_progress_sinks", default=())  # sinks a caller adds (Prefect's)


def progress_file(claim: Path) -> Path:
    return claim.with_name(claim.stem + ".progress.json")


class Progress:
    """The progress of one unit of work (`what`: a cell's label, "mastery of <model>")."""

    def __init__(self, what: str, sinks: tuple = (), every_s: float = 3.0):
        self.what, self.every_s = what, every_s
        self.sinks = tuple(sinks) + SINKS.get()
        self.state: dict = {}
        self._sent, self._started = 0.0, time.monotonic()

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        """A new phase (train, evaluate, kl, mastery): one log line."""
        self.end_phase()
        self._started = time.monotonic()
        log.info("[%s] %s%s", self.what, name, f": {total:,} {unit}" if total else "")
        self.state = {"what": self.what, "phase": name, "done": 0, "total": total, "unit": unit, "info": {}}
        self._send(force=True)

    def update(self, done: int, total: int | None = None, **info) -> None:
        """Where the phase is; sent when `every_s` has passed since the last send (or the phase is complete)."""
        self.state.update(done=done, total=total or self.state.get("total"), info={**self.state.get("info", {}),
                                                                                    **info})
        self._send(force=bool(self.state["total"]) and done >= self.state["total"])

    def end_phase(self) -> None:
        """The current phase is over (one log line, with its last counts)."""
        if self.state.get("phase"):
            self._end()
            self.state = {**self.state, "phase": ""}

    def counter(self) -> Callable[[int, int], None]:
        """A `progress(done, total)` callback for the current phase (generation's batches call one)."""
        return lambda done, total: self.update(done, total)

    def finish(self) -> None:
        self.end_phase()
        self.state = {"what": self.what, "phase": "done", "done": 1, "total": 1, "unit": "", "info": {}}
        self._send(force=True)

    def _end(self) -> None:
        info = "".join(f", {k} {v:.3g}" if isinstance(v, float) else f", {k} {v}"
                       for k, v in self.state.get("info", {}).items())
        log.info("[%s] %s done in %.0f s%s", self.what, self.state["phase"], time.monotonic() - self._started, info)

    def _send(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._sent < self.every_s:
            return
        self._sent = now
        state = {**self.state, "percent": percent(self.state), "updated": time.time()}
        for sink in self.sinks:
            try:
                sink(state)
            except Exception as e:  # noqa: BLE001 -- progress is never worth failing the work for
                log.debug("progress sink failed: %s", e)


def percent(state: dict) -> float | None:
    return 100.0 * min(state["done"], state["total"]) / state["total"] if state.get("total") else None


def describe(state: dict) -> str:
    """'train 25% (12/48 steps, epoch 1, loss 3.1)'."""
    pct = percent(state)
    counts = f"{state['done']:,}/{state['total']:,} {state.get('unit', '')}".strip() if state.get("total") else ""
    info = [f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in state.get("info", {}).items()]
    inside = ", ".join(x for x in [counts, *info] if x)
    return f"{state['phase']}{f' {pct:.0f}%' if pct is not None else ''}{f' ({inside})' if inside else ''}"


def file_sink(path: Path) -> Callable[[dict], None]:
    """Writes the latest state to `path` (atomically), for `ftscope status`."""
    def write(state: dict) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(path)
    return write


MARK = "ftscope-progress "


def line_sink(stream) -> Callable[[dict], None]:
    """Writes each state as one marked line: how a training rank in another process reports to its cell."""
    def write(state: dict) -> None:
        stream.write(MARK + json.dumps(state) + "\n")
        stream.flush()
    return write


def relay(line: str, progress: "Progress") -> bool:
    """A line from a training process: a progress state is passed on (True), any other line is not ours."""
    if not line.startswith(MARK):
        return False
    state = json.loads(line[len(MARK):])
    if state["phase"] != progress.state.get("phase") and state["phase"] != "done":
        progress.phase(state["phase"], state.get("total"), state.get("unit", ""))
    elif state["phase"] != "done":
        progress.update(state["done"], state.get("total"), **state.get("info", {}))
    return True


def read_progress(claim: Path) -> str:
    """The progress a running cell last reported beside its claim, described; '' when there is none."""
    try:
        state = json.loads(progress_file(claim).read_text())
    except (OSError, ValueError):
        return ""
    age = time.time() - state.get("updated", 0)
    return describe(state) + (f", {age:.0f} s ago" if age >= 60 else "")


def terminal_sink() -> Callable[[dict], None] | None:
    """A progress bar (tqdm) when standard error is a terminal and this is not CI; else None (the log lines
    say enough in a file)."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        return None
    from tqdm import tqdm  # deferred: only a terminal draws a bar

    bar = {}

    def draw(state: dict) -> None:
        key = (state["what"], state["phase"])
        if key not in bar:
            for b in bar.values():
                b.close()
            bar.clear()
            bar[key] = tqdm(total=state.get("total"), desc=f"{state['what']}: {state['phase']}", unit=state["unit"],
                            leave=False)
        b = bar[key]
        b.n = state["done"]
        b.set_postfix({k: f"{v:.3g}" if isinstance(v, float) else v for k, v in state.get("info", {}).items()},
                      refresh=False)
        b.refresh()
        if state["phase"] == "done" or (state.get("total") and state["done"] >= state["total"]):
            b.close()
            bar.clear()
    return draw


@contextmanager
def adding(sink: Callable[[dict], None]):
    """Within the block, every Progress created also sends to `sink` (how tasks/ adds Prefect's artifact)."""
    token = SINKS.set(SINKS.get() + (sink,))
    try:
        yield
    finally:
        SINKS.reset(token)
