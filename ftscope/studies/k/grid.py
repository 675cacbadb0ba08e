"""Study K's grid: the cells there are (mastery level 0..4 or mixed x sample count x method x seed), what of the
config goes into their ids, and which of them the prepared mastery levels cannot run."""

from ftscope.grid import expand
from ftscope.studies.k.data import dataset_spec, the_dataset, training_pool
from ftscope.studydata import StudyData


def grid(cfg) -> list:
    spec = dataset_spec(cfg)
    points = [((("level", str(lvl)), ("n", n)), spec) for lvl in cfg.grid.levels for n in cfg.grid.sample_counts]
    return expand(cfg, points, cfg.grid.methods, cfg.grid.seeds)


def cell_config(cfg, cell) -> dict:
    """What of the config changes a cell's rows (general capability's part: ftscope/measurements.py)."""
    return {"mastery": cfg.mastery.model_dump(), "eval": cfg.eval.model_dump(exclude={"general"}),
            "kl": cfg.kl.model_dump(), "params": cfg.params.model_dump()}


def unfit(cfg, data: StudyData, levels: dict[str, dict[str, int]]) -> dict:
    """The grid's cells the prepared mastery levels cannot run, with why."""
    return unfit_cells(cfg, grid(cfg), the_dataset(data).items, levels)


def unfit_cells(cfg, cells, items: list[dict], levels: dict[str, dict[str, int]]) -> dict:
    """{cell: why} for the cells whose mastery level holds fewer ID training items than their sample count
    (`levels`: model -> item id -> level). A cell that starts from such a cell cannot run either."""
    out, pools = {}, {}
    for cell in cells:
        axes = dict(cell.axes)
        if cell.model not in levels or "level" not in axes:
            continue
        if (cell.model, axes["level"]) not in pools:  # once per model and level, not per cell
            pools[cell.model, axes["level"]] = len(training_pool(items, levels[cell.model], axes["level"]))
        have = pools[cell.model, axes["level"]]
        if have < axes["n"]:
            out[cell] = (f"not run: mastery level {axes['level']} of {cell.model} has {have} ID training items and "
                         f"n={axes['n']} needs {axes['n']}")
    for cell in cells:
        if cell.parent in out:
            out[cell] = out[cell.parent]
    return out
