"""Damage is found, named, moved aside and redone, never repeated: files a crash or a full disk left half
written (a truncated Parquet file, a cached model without its weights) go to a `.quarantine/` folder beside
them, where a person can look, and the work they held is done again; temporaries of writers that died are
removed."""

import logging
import os
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from ftscope.locks import pid_alive

log = logging.getLogger("ftscope.damage")
QUARANTINE = ".quarantine"


def move_aside(path: Path, why: str) -> Path:
    """Move a damaged file or directory into `.quarantine/` beside it; returns where it went."""
    folder = path.parent / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{path.name}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    shutil.move(str(path), dest)
    log.warning("%s: %s; moved to %s", path, why, dest)
    return dest


def temporary_name(final: Path) -> Path:
    """A writer's temporary beside `final`: `.<name>.<host>.<pid>.<time>.tmp`, so that a sweep can tell a
    dead writer's leftover from a live one's."""
    return final.with_name(f".{final.name}.{socket.gethostname()}.{os.getpid()}.{time.time_ns()}.tmp")


def sweep_temporaries(final: Path, older_than_s: float = 86400) -> list[Path]:
    """Remove temporaries of `final` whose writer is gone: a dead process on this host, or anyone's left
    more than `older_than_s` ago. Returns what was removed."""
    gone = []
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        parts = tmp.name[len(final.name) + 2:-4].split(".")  # host . pid . time
        dead = len(parts) >= 3 and parts[-3] == socket.gethostname() and parts[-2].isdigit() \
            and not pid_alive(int(parts[-2]))
        if dead or time.time() - tmp.stat().st_mtime > older_than_s:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone
