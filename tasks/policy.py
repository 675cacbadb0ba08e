"""Retry and GPU-slot policy for cells."""

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.logging import get_logger, get_run_logger

GPU_LIMIT = "ftscope-gpus"


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


def ensure_gpu_limit(slots: int) -> None:
    """Create or resize the global limit on GPUs held by cells at once."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
            client.update_global_concurrency_limit(GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=slots))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=slots))
