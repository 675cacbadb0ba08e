"""One cell as its own flow run (deployment `cell`): how a study dispatches cells to workers, each with
its own infrastructure and GPU request, when the config says `dispatch: deployments`."""

from prefect import flow
from prefect.runtime import flow_run

from ftscope.cell import ModelContext
from ftscope.config import parse_config
from ftscope.grid import Cell
from ftscope.plan import PlannedCell
from ftscope.runtime import pin_threads
from tasks.study import base_model_task, cell_task, prepare_data_task, prepare_model_task


@flow(name="cell", flow_run_name="{label}")
def cell(config: dict, cell: dict, cell_id: str, parent_id: str | None = None, keep: bool = False,
         label: str = "cell") -> dict:
    """Run the cell `cell` (model, method, axes, seed, params) of the study `config` (a resolved config
    mapping, as `ftscope submit` sends it). Data, base model and the model's preparation come from the
    caches and the store the study flow filled before dispatching."""
    cfg = parse_config(config)
    pin_threads(cfg)
    c = Cell(cell["model"], cell["method"], tuple((k, v) for k, v in cell["axes"]), cell["seed"],
             tuple((k, v) for k, v in cell["params"]))
    data = prepare_data_task(cfg)
    path, local = base_model_task(cfg, c.model, data)
    prep = prepare_model_task(cfg, c.model, path, data)
    planned = PlannedCell(c, cell_id, parent_id, keep)
    return cell_task(cfg, planned, ModelContext(data, path, local, prep), c.label, owner={"run": str(flow_run.id)})


def cell_parameters(cfg_raw: dict, planned: PlannedCell) -> dict:
    """The parameters of the cell deployment's run for one planned cell."""
    c = planned.cell
    return {"config": cfg_raw, "cell": {"model": c.model, "method": c.method, "axes": [list(a) for a in c.axes],
                                        "seed": c.seed, "params": [list(p) for p in c.params]},
            "cell_id": planned.cid, "parent_id": planned.parent_id, "keep": planned.has_children, "label": c.label}
