"""Which GPUs of this node a cell may use. A Prefect global concurrency limit caps how many GPUs
cells hold at once (tasks/); this picks the device ids, with one lock file per GPU so that cells in
different processes on the same node never share a device."""

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

import torch

LOCK_DIR = Path(os.environ.get("FTSCOPE_GPU_LOCK_DIR", "/tmp/ftscope-gpus"))


def visible_gpus() -> list[int]:
    return list(range(torch.cuda.device_count()))


@contextmanager
def hold_gpus(n: int, devices: list[int] | None = None, lock_dir: Path = LOCK_DIR):
    """Yield `n` free device ids of this node (None for n = 0), locked until the block ends."""
    if n == 0:
        yield None
        return
    devices = visible_gpus() if devices is None else devices
    if n > len(devices):
        raise RuntimeError(f"a cell needs {n} GPUs but this node has {len(devices)}; lower the model's gpus")
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, object]] = []
    try:
        for d in devices:
            if len(held) == n:
                break
            f = open(lock_dir / f"gpu{d}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append((d, f))
            except BlockingIOError:
                f.close()
        if len(held) < n:
            raise RuntimeError(f"only {len(held)} of {n} GPUs free on this node: the 'ftscope-gpus' concurrency "
                               f"limit is larger than the GPUs cells can use here")
        yield [d for d, _ in held]
    finally:
        for _, f in held:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()
