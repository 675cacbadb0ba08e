"""One job of a study as its own flow run (deployment `cell`): a cell, or a cell and the cells that start
from its checkpoint (ftscope/jobs.py), on one worker with its own infrastructure and GPU request. How a
study dispatches cells when the config says `dispatch: deployments`."""

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed
from prefect.utilities.annotations import quote

from ftscope.cell import ModelContext
from ftscope.config import parse_config
from ftscope.faults import kill_point
from ftscope.grid import Cell
from ftscope.plan import PlannedCell
from ftscope.reproducible import settle
from tasks.dispatch import mark_started
from tasks.study import base_model_task, cell_task, prepare_data_task, prepare_model_task


@flow(name="cell", flow_run_name="{label}")
def cell(config: dict, cells: list[dict], label: str = "cell"):
    """Run `cells` (each: cell, cell_id, parent_id, keep, as `job_parameters` writes them) of the study
    `config` (a resolved config mapping) in order. Data, base model and the model's preparation come from the
    caches and the store the study filled before dispatching. A cell whose parent failed is not run."""
    cfg = parse_config(config)
    kill_point("cell:start")
    mark_started(cfg)
    settle(cfg)
    planned = [_planned(c) for c in cells]
    data = prepare_data_task(cfg)
    path, local = base_model_task(cfg, planned[0].cell.model, data)
    ctx = ModelContext(data, path, local, prepare_model_task(cfg, planned[0].cell.model, path, data, hold=False))
    failed: dict[str, str] = {}
    for p in planned:
        if p.parent_id in failed:
            failed[p.cid] = f"{p.cell.label}: not run, the cell it starts from failed"
            continue
        state = cell_task(cfg, p, quote(ctx), p.cell.label, owner={"run": str(flow_run.get_id())},  # quote: see study.py
                          return_state=True)
        if not state.is_completed():
            failed[p.cid] = f"{p.cell.label}: {state.message}"
    if failed:
        return Failed(message=f"{len(failed)} of {len(planned)} cells failed: " + "; ".join(failed.values()))
    return {p.cid: "done" for p in planned}


def _planned(entry: dict) -> PlannedCell:
    c = entry["cell"]
    return PlannedCell(Cell(c["model"], c["method"], tuple((k, v) for k, v in c["axes"]), c["seed"],
                            tuple((k, v) for k, v in c["params"])), entry["cell_id"], entry["parent_id"], entry["keep"])


def job_parameters(cfg_raw: dict, job: list[PlannedCell]) -> dict:
    """The parameters of the cell deployment's run for one job."""
    return {"config": cfg_raw, "label": job[0].cell.label + (f" +{len(job) - 1}" if len(job) > 1 else ""),
            "cells": [{"cell": {"model": p.cell.model, "method": p.cell.method, "axes": [list(a) for a in p.cell.axes],
                                "seed": p.cell.seed, "params": [list(x) for x in p.cell.params]},
                       "cell_id": p.cid, "parent_id": p.parent_id, "keep": p.has_children} for p in job]}
