"""Tasks of a study. The store is the cache (cells already done are skipped by the flow), so Prefect's
own input-hash caching is off: hashing a dataset on every call would cost more than it saves."""

from contextlib import contextmanager

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from ftscope.cell import CellContext, run_cell
from ftscope.config import StudyConfig
from ftscope.data.prepare import StudyData, prepare_data
from ftscope.grid import Cell
from ftscope.store import Store
from ftscope.study import base_model_path, ensure_mastery
from tasks.policy import GPU_LIMIT, worth_retrying


@task(name="prepare-data", cache_policy=NO_CACHE)
def prepare_data_task(cfg: StudyConfig) -> StudyData:
    return prepare_data(cfg.data, cfg.cache_dir)


@task(name="base-model", cache_policy=NO_CACHE, task_run_name="base-model {name}")
def base_model_task(cfg: StudyConfig, name: str, data: StudyData) -> str:
    return base_model_path(cfg, cfg.model(name), data)


@task(name="mastery", cache_policy=NO_CACHE, task_run_name="mastery {name}")
def mastery_task(cfg: StudyConfig, name: str, base_path: str, data: StudyData) -> dict[str, int]:
    with gpu_slots(cfg.model(name).gpus):
        return ensure_mastery(cfg, cfg.model(name), base_path, data, Store(cfg.results_dir))


@task(name="cell", cache_policy=NO_CACHE, task_run_name="cell {label}", retries=2, retry_delay_seconds=30,
      retry_condition_fn=worth_retrying)
def cell_task(cfg: StudyConfig, cell: Cell, cid: str, ctx: CellContext, parent_id: str | None, label: str) -> dict:
    """One cell; a cell that needs GPUs first takes that many slots of the global GPU limit."""
    with gpu_slots(cfg.model(cell.model).gpus):
        return run_cell(cfg, cell, cid, ctx, Store(cfg.results_dir), parent_id)


@contextmanager
def gpu_slots(n: int):
    """Hold `n` slots of the global GPU limit (nothing to hold on the CPU)."""
    if not n:
        yield
        return
    with concurrency(GPU_LIMIT, occupy=n, strict=True):
        yield
