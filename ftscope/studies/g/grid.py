"""Study G's grid: the cells there are (training set x size x method x seed), what of the config and the
data goes into their ids, and which of them cannot run (a model whose tokenizer cannot tell label words apart)."""

from ftscope.grid import expand
from ftscope.studies.g.data import specs
from ftscope.studydata import StudyData


def grid(cfg) -> list:
    by_name = specs(cfg)
    points = [((("train", t), ("size", n)), by_name[t]) for t in cfg.grid.train for n in cfg.grid.sizes]
    return expand(cfg, points, cfg.grid.methods, cfg.grid.seeds)


def cell_config(cfg, cell) -> dict:
    return {"data": cfg.data.model_dump(exclude={"root"}), "eval": cfg.eval.model_dump(exclude={"general"})}


def cell_reads(cfg, cell, data) -> list[tuple[str, str]]:
    """What a cell reads: every test set's test records and demonstrations, and, for a cell that trains,
    its training set's training records and demonstrations (FTICL)."""
    reads = [(t, s) for t in cfg.data.test for s in ("test", "demo")]
    train = dict(cell.axes).get("train")
    if train is not None:
        reads += [(train, s) for s in {it["split"] for it in data.dataset(train).items} if s != "test"]
    return reads


def unfit(cfg, data: StudyData, preps: dict[str, list[str]]) -> dict:
    """Every cell of a model whose tokenizer cannot tell the label words apart is not run, with why."""
    return {c: f"not run: {'; '.join(preps[c.model])}" for c in grid(cfg) if preps.get(c.model)}
