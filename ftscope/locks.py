"""Claims on shared work (a cell, a cache entry) between processes, even on other hosts sharing the
filesystem: an advisory `flock` on a lock file. The kernel drops a lock when its owner dies, so a
claim of a killed run is taken over by the next one with no heartbeat or timeout to tune. The file
records who holds it (host, pid, since) for humans and `ftscope status`."""

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


def _owner(extra: dict | None) -> str:
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(), **(extra or {})})


@contextmanager
def exclusive(path: Path, wait: bool = True, owner: dict | None = None):
    """Hold the lock at `path` for the block. With `wait=False`, yield False at once (and hold nothing)
    when another process holds it; otherwise yield True once it is ours. The file keeps its last
    owner's host, pid and `owner` fields after release: `last_owner` tells who held it last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            f.seek(0)
            f.truncate()
            f.write(_owner(owner))
            f.flush()
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_HELD: list = []  # locks this process holds until it exits


def hold_until_exit(path: Path, owner: dict | None = None) -> None:
    """Take the lock at `path` and keep it until this process ends (no code releases it: the kernel does,
    when the process exits or dies). Another process seeing it free after it was taken knows the holder is
    gone, however it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    f.truncate()
    f.write(_owner(owner))
    f.flush()
    _HELD.append(f)


def annotate(path: Path, **fields) -> None:
    """Add fields to the record of a claim this process holds (best effort): what a cell's failure was, kept
    beside the claim even when the store could not take its row (a full disk, say)."""
    try:
        record = {**last_owner(path), **fields}
        path.write_text(json.dumps(record))
    except OSError:
        pass


def last_owner(path: Path) -> dict:
    """Who held the lock at `path` last (held now or not); {} if nobody ever did."""
    try:
        return json.loads(path.read_text() or "{}")
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def holder(path: Path) -> dict | None:
    """Who holds the lock at `path` now, or None if nobody does."""
    if not path.exists():
        return None
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                return json.loads(f.read() or "{}")
            except json.JSONDecodeError:
                return {}
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
