"""The points of a study's grid: a cell is (model, method, axes, seed, the method's variant settings), and
its id is a stable hash of everything that changes its result. No model code: planning and `validate`
need none."""

from dataclasses import dataclass
from typing import Any

from ftscope import measurements
from ftscope.engines import identity
from ftscope.fingerprint import fingerprint
from ftscope.methods import RECIPES, variant_name


@dataclass(frozen=True)
class Cell:
    """A point of the grid. `axes` are what the study varies (Study K: level, n; Study G: train, size);
    `params` are the method's variant settings (restore: strategy, k_percent; fticl: shots)."""
    model: str
    method: str
    axes: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def variant(self) -> str:
        """The method with its settings: sft, restore-top5, fticl-2, ..."""
        return variant_name(RECIPES.get(self.method), dict(self.params))

    @property
    def label(self) -> str:
        return "/".join([self.model, *(f"{k}={v}" for k, v in self.axes), self.variant, f"s{self.seed}"])

    @property
    def parent(self) -> "Cell | None":
        """The cell whose checkpoint this one starts from (restore: its SFT cell)."""
        parent = RECIPES.get(self.method).parent
        return Cell(self.model, RECIPES.get(parent).name, self.axes, self.seed) if parent else None


def cell_spec(cfg, study, cell: Cell) -> dict:
    """Everything that changes a cell's result, and nothing that does not (e.g. the study name)."""
    recipe = RECIPES.get(cell.method)
    return {"cell": {"model": cell.model, "method": recipe.name, "axes": dict(cell.axes), "seed": cell.seed,
                     "params": dict(cell.params)},
            "model": cfg.model(cell.model).model_dump(exclude={"backend"}),
            "study": {**study.cell_config(cfg, cell), **measurements.identity(cfg)},
            "method": recipe.relevant(cfg), "engine": identity(cfg, cfg.model(cell.model))}


def cell_id(cfg, study, cell: Cell, data_fp: str, model_fp: str) -> str:
    return fingerprint({**cell_spec(cfg, study, cell), "data_fp": data_fp, "model_fp": model_fp})


def expand(cfg, points: list[tuple[tuple, object]], methods: list[str], seeds: list[int]) -> list[Cell]:
    """The cells of a grid: methods that evaluate the base model as it is (base, icl) once per model;
    every other method at every point (axes, training DatasetSpec) x seed x its variants. Cells that
    start from another come after every cell they could start from."""
    recipes = [RECIPES.get(m) for m in methods]
    cells = [Cell(m.name, r.name) for r in recipes if not r.trains and r.parent is None for m in cfg.models]
    later = []
    for m in cfg.models:
        for axes, train_spec in points:
            for seed in seeds:
                for r in recipes:
                    if r.trains or r.parent:
                        cells_of = later if r.parent else cells
                        cells_of += [Cell(m.name, r.name, axes, seed, tuple(v.items()))
                                     for v in r.variants(cfg, train_spec)]
    return cells + later
