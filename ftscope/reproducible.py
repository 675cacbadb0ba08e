"""Bitwise-reproducible CPU results where the platform allows. What makes CPU results differ between
machines of one kind is the instruction set the kernels are compiled for: ATen picks AVX-512 kernels on a CPU
that has them and AVX2 ones elsewhere, and their float results differ in the last bits (measured: one
fine-tuning run gives other weights under each). On one machine MKL's results also moved with the thread
count. A study with `reproducible: true` pins every kernel library to AVX2, which all x86-64 machines of this
kind have: ATen (ATEN_CPU_CAPABILITY), MKL's conditional numerical reproducibility in its strict mode, whatever
the thread count (MKL_CBWR), and oneDNN (ONEDNN_MAX_CPU_ISA), and turns on torch's deterministic algorithms.
The variables must be set before torch is imported: `ftscope run` and `validate` read the config first and set
them (a variable the user set is kept)."""

import logging
import os
from contextlib import contextmanager

log = logging.getLogger("ftscope.reproducible")


def _has_avx2() -> bool:
    try:
        return " avx2" in open("/proc/cpuinfo").read()
    except OSError:
        return False


def pinned_env() -> dict[str, str]:
    """The variables that pin the kernels: AVX2 on a CPU that has it (else the portable default path)."""
    if not _has_avx2():
        return {"ATEN_CPU_CAPABILITY": "default"}
    # STRICT: MKL's results also independent of the thread count (without it, 1 and 2 threads gave other weights on
    # a Xeon with AVX-512 FP16; on the machine this was first measured on they agreed)
    return {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pinned() -> bool:
    """Whether this process computes with the pinned kernels (its environment holds every pin)."""
    return all(os.environ.get(k) == v for k, v in pinned_env().items())


def pin_before_torch(wanted: bool) -> None:
    """Set the pinning variables for this process and its children, before torch is imported."""
    if wanted:
        for key, value in pinned_env().items():
            os.environ.setdefault(key, value)


def kernels() -> dict:
    """The kernels this process computes with: the instruction set ATen uses and the pinning variables set. Part of
    the key of what it pretrains (a sandbox model pretrained under other kernels is another model)."""
    import torch  # deferred: only a process that computes asks

    return {"isa": torch.backends.cpu.get_cpu_capability(),
            "pinned": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA") if k in os.environ}}


def settle(cfg) -> None:
    """In a process that computes: the config's thread count, and with `reproducible`, deterministic algorithms
    and a warning when the kernels are not the pinned ones (torch was imported before the variables were set,
    as in a worker started by hand)."""
    import torch  # deferred: only a process that computes settles its torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not getattr(cfg, "reproducible", False):
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    want = os.environ.get("ATEN_CPU_CAPABILITY", pinned_env()["ATEN_CPU_CAPABILITY"])
    have = torch.backends.cpu.get_cpu_capability()
    if have.lower() != want.lower():
        log.warning("the study asks for reproducible results, but this process computes with %s kernels, not %s: "
                    "start it with `ftscope run`, or set %s before Python starts (its rows record what it ran with)",
                    have, want.upper(), " ".join(f"{k}={v}" for k, v in pinned_env().items()))


@contextmanager
def shared_threads(cfg, ways: int):
    """While `ways` compute-bound tasks of this process run at once on the CPU: the config's torch threads (default:
    the cores) split among them, at least one each, then restored. With the pinned kernels the numbers do not depend
    on the thread count (tests/test_reproducible.py). Threads started inside take the count at their first
    parallel operation. (In a process where vLLM's CPU worker started, torch.set_num_threads does nothing.)"""
    import torch  # deferred: only a process that computes shares its threads

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (cfg.threads or before) // ways))
    try:
        yield
    finally:
        torch.set_num_threads(before)
