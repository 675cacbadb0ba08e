"""Tasks of a study: policy (retries, GPU slots, caching) around the core's steps. The store is the
cache (cells already done are skipped by the flow), so Prefect's own input-hash caching is off:
hashing a dataset on every call would cost more than it saves."""

import atexit
import gc
from contextlib import contextmanager

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from ftscope import checkpoints
from ftscope.cell import ModelContext, record_not_run, run_cell
from ftscope.models import base_model_path
from ftscope.plan import PlannedCell, plan_cells
from ftscope.progress import adding
from ftscope.report.render import report_dir, write_report
from ftscope.runs import RunRecord, mark_dead
from ftscope.shards import checkpoint_dir
from ftscope.store import Store
from ftscope.studies import STUDIES
from tasks.artifacts import progress_sink
from tasks.policy import LEASE_S, ensure_gpu_limits, gpu_limit, worth_retrying


@task(name="housekeeping", cache_policy=NO_CACHE)
def housekeeping_task(cfg, prefect_url: str | None, run_id) -> RunRecord:
    """Before any work: temporaries of writers that died swept away, damaged files moved aside (their cells are
    redone), runs whose process died recorded as crashed, missing GPU limits created; then this run recorded."""
    log = get_run_logger()
    store = Store(cfg.results_dir)
    store.sweep()
    for line in store.repair():
        log.warning("repaired the store: %s", line)
    for dead in mark_dead(store, cfg.study):
        log.warning("run %s (pid %s) had died while running: recorded as crashed", dead["run_id"][:8], dead["pid"])
    for created in ensure_gpu_limits(cfg):
        log.info("created the GPU limit %s", created)
    return RunRecord(cfg, store, prefect_url, run_id)


@task(name="prepare-data", cache_policy=NO_CACHE)
def prepare_data_task(cfg):
    """The study's data. It lives as long as the run, so it is frozen out of the garbage collector's walks:
    transformers' Trainer runs a full collection at every training, which walked it (0.2 s a cell on the demo)."""
    data = STUDIES.get(cfg.kind).load_data(cfg)
    gc.collect()
    gc.freeze()
    return data


# what prepare_data_task froze is collectable again at exit: native extensions (triton's) report what never is
atexit.register(gc.unfreeze)


@task(name="base-model", cache_policy=NO_CACHE, task_run_name="base-model {name}")
def base_model_task(cfg, name: str, data) -> tuple[str, str]:
    """(the base checkpoint as configured, its local directory): the sandbox model is pretrained now
    (or read from the cache), a hub id downloaded now, inside a task."""
    path = base_model_path(cfg, cfg.model(name), data)
    return path, str(checkpoint_dir(path))


@task(name="prepare-model", cache_policy=NO_CACHE, task_run_name="prepare {name}")
def prepare_model_task(cfg, name: str, base_path: str, data, hold: bool = True):
    """The study's preparation of one base model (Study K: mastery scoring). `hold=False`: read a stored
    preparation (a dispatched run computed it), holding no GPU slots."""
    with gpu_slots(cfg.model(name) if hold else None), adding(progress_sink(f"{cfg.study}-prepare-{name}")):
        return STUDIES.get(cfg.kind).prepare(cfg, cfg.model(name), base_path, data, Store(cfg.results_dir))


@task(name="plan", cache_policy=NO_CACHE)
def plan_task(cfg, data, bases: dict[str, str]) -> list[PlannedCell]:
    return plan_cells(cfg, STUDIES.get(cfg.kind), data, bases, Store(cfg.results_dir))


@task(name="not-run", cache_policy=NO_CACHE)
def not_run_task(cfg, planned: list[PlannedCell], data, preps: dict) -> dict[str, str]:
    """The cells the prepared data cannot run (Study K: a mastery level with too few items), recorded as not run."""
    study = STUDIES.get(cfg.kind)
    return record_not_run(cfg, study, planned, study.checks.unfit(cfg, data, preps), Store(cfg.results_dir))


@task(name="cell", cache_policy=NO_CACHE, task_run_name="cell {label}", retries=2, retry_delay_seconds=30,
      retry_condition_fn=worth_retrying)
def cell_task(cfg, planned: PlannedCell, ctx: ModelContext, label: str, owner: dict | None = None) -> dict:
    """One cell; a cell that needs GPUs first takes that many slots of the global GPU limit."""
    with gpu_slots(cfg.model(planned.cell.model)), adding(progress_sink(f"cell-{planned.cid}")):
        return run_cell(cfg, STUDIES.get(cfg.kind), planned.cell, planned.cid, ctx, Store(cfg.results_dir),
                        planned.parent_id, keep=planned.has_children, owner=owner)


COMPACT_AT = 1000  # small files of finished work in one table before a study's end merges them


@task(name="compact", cache_policy=NO_CACHE)
def compact_task(cfg) -> list[str]:
    """Merge the small files of the study's finished cells (one file per cell and table) into one per table, once
    a table has COMPACT_AT of them: below that, a file per cell costs little and is easy to look at."""
    return Store(cfg.results_dir).compact(min_files=COMPACT_AT)


@task(name="release-checkpoints", cache_policy=NO_CACHE)
def release_task(cfg, planned: list[PlannedCell]) -> list[str]:
    return checkpoints.release(cfg, planned, Store(cfg.results_dir).latest_cells())


@task(name="report", cache_policy=NO_CACHE)
def report_task(cfg) -> tuple[str, str]:
    """(the text tables and verdicts, the HTML report's path), under the results directory (or the artifacts
    directory when results live in an object store)."""
    text, page = write_report(Store(cfg.results_dir, snapshot=True), report_dir(cfg), cfg.study)
    return text, str(page)


@contextmanager
def gpu_slots(model):
    """Hold the model's GPUs in its GPU limit (nothing to hold on the CPU): waits while the limit is full."""
    if model is None or not model.gpus:
        yield
        return
    with concurrency(gpu_limit(model), occupy=model.gpus, strict=True, lease_duration=LEASE_S):
        yield
