"""Retry and GPU-slot policy for cells and preparations."""

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.logging import get_logger, get_run_logger

from ftscope.config import ConfigError

GPU_LIMIT = "ftscope-gpus"
LEASE_S = 60  # a dead holder's GPU slots come back this long after it died (Prefect renews live leases)


def worth_retrying(task, task_run, state) -> bool:
    """Retry lost workers and collective (NCCL/gloo) failures; never deterministic ones (bad
    config, too little data, out of memory at the same size)."""
    exc = state.result(raise_on_failure=False)
    retriable = bool(getattr(exc, "retriable", False))
    try:
        log = get_run_logger()  # shown on the task run in the UI
    except MissingContextError:
        log = get_logger("ftscope.policy")
    log.info("%s: %s -> %s", task_run.name, type(exc).__name__, "retrying" if retriable else "not retried: deterministic")
    return retriable


def gpu_limit(model) -> str:
    """The Prefect global limit that counts the GPUs of this model's runs: one per work queue (a queue per
    GPU shape of node), so that a pool of 8-GPU nodes and one of 4-GPU nodes are counted apart."""
    return GPU_LIMIT if model.work_queue is None else f"{GPU_LIMIT}-{model.work_queue}"


def ensure_gpu_limits(cfg) -> list[str]:
    """Create each GPU limit the study's models use if it is missing (size `gpu_slots`). A limit that exists
    is the user's (or another study's): it is never changed, only checked to admit the largest cell."""
    needs: dict[str, int] = {}
    for m in cfg.models:
        if m.gpus:
            needs[gpu_limit(m)] = max(needs.get(gpu_limit(m), 0), m.gpus)
    created, problems = [], []
    with get_client(sync_client=True) as client:
        for name, largest in sorted(needs.items()):
            try:
                limit = client.read_global_concurrency_limit_by_name(name).limit
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=cfg.gpu_slots))
                created.append(f"{name} ({cfg.gpu_slots} GPUs)")
                continue
            if limit < largest:
                problems.append(f"the Prefect limit {name} admits {limit} GPUs at once but a cell needs {largest}: "
                                f"`prefect gcl update {name} --limit {largest}` (or more)")
    if problems:
        raise ConfigError(problems)
    return created
