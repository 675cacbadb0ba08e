"""A hook for the fault tests: with FTSCOPE_KILL_AT=<point>, the process kills itself (SIGKILL, as the
out-of-memory killer would) when it reaches that point, so a test can show that nothing computed before
is lost and nothing half-written is left; with FTSCOPE_KILL_AT=<point>:worker, it kills its parent (a
Prefect worker) and everything the worker started, as a lost node would. Points: `mastery` (scores
computed, not yet stored), `train` (the end of a training epoch), `store:<table>` (a temporary written,
not yet renamed), `cell:start` (a cell job's process started, nothing claimed yet), `dispatch:<flow>` (the
study flow just created a run of that flow: cell, prepare). With FTSCOPE_FILL_DISK_AT=<point> and
FTSCOPE_FILL_DISK=<file>, it fills that file's filesystem at the point instead: a real full disk, from
then on. Linux only, for tests."""

import os
import signal
from pathlib import Path


def kill_point(point: str) -> None:
    if os.environ.get("FTSCOPE_FILL_DISK_AT") == point:
        fill_disk(Path(os.environ["FTSCOPE_FILL_DISK"]))
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


def fill_disk(ballast: Path) -> None:
    """Write `ballast` until its filesystem is full: every later write there fails with ENOSPC, as on a
    full disk (the test frees the space by deleting the file)."""
    with open(ballast, "ab", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):  # smaller and smaller, until not a byte is left
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass


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
