"""Runs a multi-process training job (torchrun or the deepspeed launcher) as a subprocess of a cell:
its own free master port, the GPUs it may use, a timeout enforced on the whole process group, every
output line streamed to a callback and a log file, and exit codes mapped to clear failures."""

import collections
import contextvars
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


class LaunchError(RuntimeError):
    """A failed training subprocess. `retriable` says whether running it again may succeed."""
    retriable = False

    def __init__(self, message: str, tail: list[str] | None = None):
        self.tail = tail or []
        super().__init__(message + ("\nlast lines of the log:\n" + "".join(self.tail) if self.tail else ""))


class LaunchTimeout(LaunchError):
    pass


class OutOfMemory(LaunchError):
    """Deterministic at the same size: not retried."""


class KilledBySignal(LaunchError):
    retriable = True  # a lost node or a pre-empted worker


class CollectiveFailure(LaunchError):
    retriable = True  # NCCL/gloo timeouts, a peer gone, a port taken between picking and binding


_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|std::bad_alloc")
_COLLECTIVE = re.compile(r"NCCL (error|timeout)|Watchdog caught collective operation timeout|Connection (closed|reset) "
                         r"by peer|EADDRINUSE|[Aa]ddress already in use|RendezvousTimeoutError|[Gg]loo.*[Tt]imed out")
# torchrun's summary names the first rank that failed; the others are then SIGTERMed by torchrun itself.
_ROOT_EXIT = re.compile(r"Root Cause.*?exitcode\s*:\s*(-?\d+)", re.S)
_port_lock, _ports_given = threading.Lock(), set()


def die_with_parent() -> None:
    """In a child, before it runs (preexec_fn): the kernel kills it when its parent dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the child is still stopped when its parent exits normally


def free_port() -> int:
    """A port free now and not handed to another cell of this process (two cells never share one)."""
    with _port_lock:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _ports_given:
                _ports_given.add(port)
                return port


def launcher_executable(name: str) -> str | None:
    """The launcher installed beside the running interpreter (its virtual environment), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    return shutil.which(name)


def command(module_args: list[str], nproc: int, port: int, launcher: str = "torchrun") -> list[str]:
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
                "--master_addr=127.0.0.1", f"--master_port={port}", *module_args]
    if launcher == "deepspeed":
        if module_args[0] != "-m":
            raise ValueError("the deepspeed launcher runs modules: pass ['-m', module, ...]")
        exe = launcher_executable("deepspeed")
        if exe is None:
            raise LaunchError(f"the deepspeed launcher is not installed beside {sys.executable} nor on PATH")
        return [exe, f"--num_gpus={nproc}", f"--master_port={port}", "--module", *module_args[1:]]
    raise ValueError(f"unknown launcher {launcher!r}; use torchrun or deepspeed")


_RUNNING: set[subprocess.Popen] = set()  # launched process groups: stopped with their cell's run (stop_all)


def stop_all(grace_s: float = 3) -> int:
    """Stop every training run this process launched (SIGTERM to each process group, SIGKILL after
    `grace_s`): what a stopped `ftscope run` does before it exits. Returns how many there were."""
    procs = list(_RUNNING)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return len(procs)


def launch(module_args: list[str], *, nproc: int, log_file: Path, timeout_s: float | None = None,
           gpus: list[int] | None = None, launcher: str = "torchrun", on_line: Callable[[str], None] = print,
           env: dict | None = None, tail_lines: int = 60) -> None:
    """Run `python -m ...` on `nproc` ranks; return on success, raise a LaunchError subclass otherwise."""
    port = free_port()
    run_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    if gpus is not None:
        run_env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    with open(log_file, "a") as log:
        proc = subprocess.Popen(command(module_args, nproc, port, launcher), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1, env=run_env, start_new_session=True)
        _RUNNING.add(proc)

        def pump():
            for line in proc.stdout:
                log.write(line)
                log.flush()
                tail.append(line)
                on_line(line.rstrip("\n"))

        # the caller's context goes along, so a logging handler that reads it (Prefect's) sees each line
        reader = threading.Thread(target=contextvars.copy_context().run, args=(pump,), daemon=True)
        reader.start()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            reader.join(5)
            raise LaunchTimeout(f"training did not finish within {timeout_s:g} s; killed (log: {log_file})",
                                list(tail)) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            _RUNNING.discard(proc)
        reader.join(5)
    if rc != 0:
        raise classify(rc, list(tail), log_file)


def _kill_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the launcher and all its ranks, then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def classify(rc: int, tail: list[str], log_file: Path) -> LaunchError:
    text = "".join(tail)
    if _OOM.search(text):
        return OutOfMemory(f"out of memory (exit code {rc}); lower train.batch_size or max_length, or use more "
                           f"GPUs or `deepspeed: zero3_offload` (log: {log_file})", tail)
    root = _ROOT_EXIT.search(text)
    sig = -rc if rc < 0 else (-int(root.group(1)) if root and int(root.group(1)) < 0 else None)
    if sig:
        name = signal.Signals(sig).name
        hint = " (SIGKILL often means the kernel's out-of-memory killer)" if sig == signal.SIGKILL else ""
        return KilledBySignal(f"a training process was killed by {name}{hint} (log: {log_file})", tail)
    if _COLLECTIVE.search(text):
        return CollectiveFailure(f"communication between ranks failed (exit code {rc}) (log: {log_file})", tail)
    return LaunchError(f"training exited with code {rc} (log: {log_file})", tail)
