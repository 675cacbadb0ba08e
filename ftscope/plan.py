"""The plan of a study: every cell of its grid with its stable id and the id of the cell it starts
from, written to the store so `status` can tell what is missing; and what is left to run."""

import json
from dataclasses import dataclass

from ftscope import checkpoints
from ftscope.fingerprint import model_fingerprint
from ftscope.grid import Cell, cell_id
from ftscope.methods import RECIPES
from ftscope.records import Plan, as_row
from ftscope.runs import latest_config
from ftscope.store import Store


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    cid: str
    parent_id: str | None  # the cell whose checkpoint this one starts from
    has_children: bool = False  # other cells start from this one's checkpoint


def cell_ids(cfg, study, data, base_paths: dict[str, str]) -> dict[str, str]:
    """{cell label: cell id} of the study's grid. A cell's id covers the records it reads (the study says
    which), so editing a data file gives new ids to exactly the cells that read what changed."""
    return {p.cell.label: p.cid for p in _planned(cfg, study, data, base_paths)}


def _planned(cfg, study, data, base_paths: dict[str, str]) -> list[PlannedCell]:
    fps = {name: model_fingerprint(p) for name, p in base_paths.items()}

    def cid(c: Cell) -> str:
        return cell_id(cfg, study, c, data.fingerprint_of(study.cell_reads(cfg, c, data)), fps[c.model])

    cells = study.grid(cfg)
    parents = {c: c.parent for c in cells}
    with_children = {p for p in parents.values() if p is not None}
    return [PlannedCell(c, cid(c), cid(parents[c]) if parents[c] else None, c in with_children) for c in cells]


def plan_cells(cfg, study, data, base_paths: dict[str, str], store: Store) -> list[PlannedCell]:
    """Every cell with its id; the plan is written to the store (the latest plan of a study replaces
    the previous one)."""
    planned = _planned(cfg, study, data, base_paths)
    rows = [as_row(Plan(cell_id=p.cid, study=cfg.study, kind=cfg.kind, label=p.cell.label, model=p.cell.model,
                        method=RECIPES.get(p.cell.method).name, variant=p.cell.variant,
                        axes=json.dumps(dict(p.cell.axes)), seed=p.cell.seed, parent_cell=p.parent_id))
            for p in planned]
    store.write("plan", cfg.study, rows)
    return planned


def pending(cfg, planned: list[PlannedCell], store: Store, not_run: set[str] | None = None) -> list[PlannedCell]:
    """Cells not yet done (missing or failed), plus done parents whose checkpoint a pending child needs
    but which was already released: those train again (same seed, same result). `not_run`: the cells the data
    cannot run, as the study's check found them now (default: those recorded so in the store)."""
    latest = store.latest_cells()
    if not_run is None:
        not_run = {cid for cid, r in latest.items() if r["status"] == "not_run"}
    todo = {p.cid for p in planned if latest.get(p.cid, {}).get("status") != "done" and p.cid not in not_run}
    todo |= {p.parent_id for p in planned if p.cid in todo and p.parent_id
             and not checkpoints.available(cfg, p.parent_id)}
    return [p for p in planned if p.cid in todo]


def to_retry(store: Store, study: str | None = None) -> tuple[dict, list[str]]:
    """(the study's latest config, the labels of its planned cells that are not done and that the data can run):
    what `ftscope retry` submits again."""
    raw = latest_config(store, study)
    latest = store.latest_cells()
    todo = [r["label"] for r in store.read("plan").to_pylist() if r["study"] == raw["study"]
            and latest.get(r["cell_id"], {}).get("status") not in ("done", "not_run")]
    return raw, todo


def remaining(cfg, study, data, store: Store, base_paths: dict[str, str | None]) -> list[PlannedCell] | None:
    """What a run of the config would still have to run, found without running anything (`base_paths`: each
    model's local checkpoint, None when it is not built yet). None when that cannot be told yet."""
    if any(p is None for p in base_paths.values()):
        return None
    return pending(cfg, _planned(cfg, study, data, base_paths), store)
