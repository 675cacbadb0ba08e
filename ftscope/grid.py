"""The grid of a study: cells, their stable ids, and the training data each one selects."""

from dataclasses import asdict, dataclass

import numpy as np

from ftscope.config import StudyConfig
from ftscope.fingerprint import fingerprint


TRAINED = ("sft", "lora")  # methods that train; `restore` edits the checkpoint of an `sft` cell; `base`
# evaluates the base model itself, once per model, as the reference row


@dataclass(frozen=True)
class Cell:
    model: str
    level: str  # "0".."4" or "mixed"
    n_samples: int
    method: str
    seed: int
    strategy: str = ""  # restore only: top, bottom, random
    k_percent: float = 0.0  # restore only

    @property
    def variant(self) -> str:
        """The method with its settings: sft, lora, restore-top5, ..."""
        return f"restore-{self.strategy}{self.k_percent:g}" if self.method == "restore" else self.method

    @property
    def label(self) -> str:
        return f"{self.model}/L{self.level}/n{self.n_samples}/{self.variant}/s{self.seed}"

    @property
    def parent(self) -> "Cell | None":
        """The SFT cell whose checkpoint a restore cell edits."""
        return Cell(self.model, self.level, self.n_samples, "sft", self.seed) if self.method == "restore" else None


def expand_grid(cfg: StudyConfig) -> list[Cell]:
    """Trained cells first, then restore cells (each after its parent)."""
    g = cfg.grid
    points = [(m.name, str(lvl), n, seed) for m in cfg.models for lvl in g.levels for n in g.sample_counts
              for seed in g.seeds]
    cells = [Cell(m.name, "none", 0, "base", 0) for m in cfg.models] if "base" in g.methods else []
    cells += [Cell(m, lvl, n, method, seed) for m, lvl, n, seed in points for method in g.methods if method in TRAINED]
    if "restore" in g.methods:
        cells += [Cell(m, lvl, n, "restore", seed, strategy, float(k)) for m, lvl, n, seed in points
                  for strategy in cfg.restore.strategies for k in cfg.restore.k_percent]
    return cells


def resolved_cell_config(cfg: StudyConfig, cell: Cell) -> dict:
    """Everything that changes a cell's result, and nothing that does not (e.g. the study name)."""
    model = cfg.model(cell.model)
    spec = {"cell": asdict(cell), "model": model.model_dump(), "mastery": cfg.mastery.model_dump(),
            "eval": cfg.eval.model_dump(), "kl": cfg.kl.model_dump(), "params": cfg.params.model_dump()}
    if cell.method != "base":
        spec["train"] = cfg.train.model_dump()
    if cell.method == "lora":
        spec["lora"] = cfg.lora.model_dump()
    return spec


def cell_id(cfg: StudyConfig, cell: Cell, data_fp: str, model_fp: str) -> str:
    return fingerprint({**resolved_cell_config(cfg, cell), "data_fp": data_fp, "model_fp": model_fp})


def training_pool(items: list[dict], levels: dict[str, int], level: str) -> list[dict]:
    """ID training items of a mastery level ('mixed': all levels)."""
    pool = [it for it in items if it["split"] == "train" and it["domain"] == "id"]
    return pool if level == "mixed" else [it for it in pool if levels[it["item_id"]] == int(level)]


def select_training_items(items: list[dict], levels: dict[str, int], cell: Cell) -> list[dict]:
    pool = training_pool(items, levels, cell.level)
    if len(pool) < cell.n_samples:
        raise ValueError(f"mastery level {cell.level} has {len(pool)} training items; {cell.n_samples} are "
                         f"needed. Lower grid.sample_counts or enlarge the data.")
    rng = np.random.default_rng(cell.seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=cell.n_samples, replace=False))]


def capacity_problems(cfg: StudyConfig, items: list[dict], levels: dict[str, int]) -> list[str]:
    """Levels that hold too few training items for the largest sample count, or no test items."""
    need = max(cfg.grid.sample_counts)
    problems = []
    for lvl in cfg.grid.levels:
        have = len(training_pool(items, levels, str(lvl)))
        if have < need:
            problems.append(f"mastery level {lvl} has {have} ID training items but grid.sample_counts asks for "
                            f"{need}; lower the sample counts or enlarge the data")
    return problems
