"""What a cell measures besides its study's own evaluation, as a registry (lm-eval's style): a measurement is
one module that describes itself with `register(Measurement(...))`; every study's cell runs each measurement its
config asks for (`measure`), on the model as built (a LoRA cell's adapter not merged yet), before its own, and
writes the rows it returns with the study's own rows of each table. Built in (registered at the end of this
file): general capability with lm-evaluation-harness (ftscope/general.py, asked for by `eval.general`).

A plug-in measurement (a module named in the config's `plugins:`) brings its config section, and runs where the
config has that section:

    class NormConfig(BaseModel):
        scale: float = 1.0

    def weight_norm(run, model):
        norm = sum(float(p.detach().float().norm() ** 2) for p in model.parameters()) ** 0.5
        return {"metrics": [{"cell_id": run.cid, "task": "norm", "dataset": "weights", "domain": "norm",
                             "slice": "all", "prompt_map": 0, "shots": 0, "metric": "l2", "n": 1,
                             "total": norm, "value": norm * run.cfg.norm.scale}]}

    register(Measurement("norm", weight_norm, section=("norm", NormConfig), domain="norm"))

tests/test_extend.py runs such a plug-in through a study.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ftscope import general
from ftscope.registry import Registry


@dataclass(frozen=True)
class Measurement:
    """name:     the cell's progress phase, and the key of its identity in the cell's id
    measure:  (CellRun, model) -> {table: rows}: the rows of this cell it adds to the store
    section:  its own top-level config section (name, schema), for a plug-in; the config asks for the
              measurement by having it (absent: None, not run)
    wanted:   whether a config asks for it (default: it has the section); the built-in reads its study's own
    identity: what of the config changes its rows (goes into every cell's id; None: nothing, ids unchanged)
    domain:   the `domain` of its rows in metrics and scores: the study's own tables leave them out
    problems: (config, StudyData) -> what `validate` says is wrong, before anything runs
    costs:    (config, StudyData, cells) -> validate's lines on what it costs"""
    name: str
    measure: Callable[[Any, Any], dict[str, list[dict]]]
    section: tuple[str, type[BaseModel]] | None = None
    wanted: Callable[[Any], bool] | None = None
    identity: Callable[[Any], Any] = lambda cfg: None
    domain: str | None = None
    problems: Callable[[Any, Any], list[str]] = lambda cfg, data: []
    costs: Callable[[Any, Any, int], list[str]] = lambda cfg, data, cells: []

    def asked(self, cfg) -> bool:
        if self.wanted is not None:
            return self.wanted(cfg)
        return self.section is not None and getattr(cfg, self.section[0], None) is not None


MEASUREMENTS: Registry[Measurement] = Registry("measurement")


def register(measurement: Measurement) -> Measurement:
    return MEASUREMENTS.register(measurement.name, measurement)


def asked(cfg) -> list[Measurement]:
    """The measurements this config asks for, by name."""
    return [m for name in MEASUREMENTS if (m := MEASUREMENTS.get(name)).asked(cfg)]


def identity(cfg) -> dict:
    """What the asked measurements add to a cell's id: {name: identity}, without those that add nothing (a config
    that asks for none keeps the ids it had)."""
    return {m.name: ident for m in asked(cfg) if (ident := m.identity(cfg)) is not None}


def domains() -> set[str]:
    """The domains of measurements' rows, which the studies' own tables leave out."""
    return {m.domain for name in MEASUREMENTS if (m := MEASUREMENTS.get(name)).domain}


def measure(run, model) -> None:
    """Run the cell's asked measurements on `model` and add their rows to the cell's (the cell writes them)."""
    for m in asked(run.cfg):
        run.progress.phase(m.name)
        for table, rows in m.measure(run, model).items():
            run.add(table, rows)


register(Measurement("general", general.score, wanted=lambda cfg: general.section(cfg) is not None,
                     identity=general.identity, domain=general.DOMAIN, problems=general.problems, costs=general.costs))
