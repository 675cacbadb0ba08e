"""Which GPUs of this node a cell may use. A Prefect global concurrency limit caps how many GPUs
cells hold at once (tasks/); this picks the device ids, with one lock file per GPU so that cells in
different processes on the same node never share a device, and a cell waits for its node's GPUs to be free."""

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LOCK_DIR = Path(os.environ.get("FTSCOPE_GPU_LOCK_DIR", "/tmp/ftscope-gpus"))


def visible_gpus() -> list[int]:
    return list(range(torch.cuda.device_count()))


@contextmanager
def hold_gpus(n: int, devices: list[int] | None = None, lock_dir: Path = LOCK_DIR, poll_s: float = 5.0,
              timeout_s: float | None = None, what: str = "this run"):
    """Yield `n` free device ids of this node (None for n = 0), locked until the block ends. When fewer are
    free (the cluster's GPU limit admitted more runs than this node has GPUs), wait for them: a wait, not a
    failure; `timeout_s` bounds it."""
    if n == 0:
        yield None
        return
    devices = visible_gpus() if devices is None else devices
    if n > len(devices):
        raise RuntimeError(f"{what} needs {n} GPUs but this node has {len(devices)}: send the model's runs to nodes "
                           f"with {n} GPUs (its work_queue), or lower its gpus")
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waited = False
    while True:
        held = _take(n, devices, lock_dir)
        if len(held) == n:
            break
        _free(held)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {n} GPUs of this node were not free within {timeout_s:.0f} s")
        if not waited:
            log.info("%s waits for %d GPUs of this node (%d free now)", what, n, len(held))
            waited = True
        time.sleep(poll_s)
    try:
        yield [d for d, _ in held]
    finally:
        _free(held)


def _take(n: int, devices: list[int], lock_dir: Path) -> list[tuple[int, object]]:
    held = []
    for d in devices:
        if len(held) == n:
            break
        f = open(lock_dir / f"gpu{d}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append((d, f))
        except BlockingIOError:
            f.close()
    return held


def _free(held) -> None:
    for _, f in held:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
