"""A hook for the fault tests: with FTSCOPE_KILL_AT=<point>, the process kills itself (SIGKILL, as the
out-of-memory killer would) when it reaches that point, so a test can show that nothing computed before
is lost and nothing half-written is left; with FTSCOPE_KILL_AT=<point>:worker, it kills its parent (a
Prefect worker) and everything the worker started, as a lost node would. Points: `mastery` (scores
computed, not yet stored), `train` (the end of a training epoch), `store:<table>` (a temporary written,
not yet renamed). Linux only, for tests."""

import os
import signal
from pathlib import Path


def kill_point(point: str) -> None:
    target = os.environ.get("FTSCOPE_KILL_AT")
    if target == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if target == f"{point}:worker":
        worker = os.getppid()
        for pid in [worker, *descendants(worker)]:
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        os.kill(os.getpid(), signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process started (directly or not) by `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out
