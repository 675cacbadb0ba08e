"""What a study kind declares. The flow runs every kind the same way: load data -> base models ->
`prepare` each model (Study K: mastery) -> `check` -> the `grid`'s cells (a method's recipe builds a
model from `training_items`, then `evaluate` writes rows) -> `report`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ftscope.registry import Registry


def _nothing(*args, **kwargs):
    return None


def _no_problems(*args, **kwargs) -> list[str]:
    return []


def _everything(cfg, cell, data) -> list[tuple[str, str]]:
    return data.reads()


@dataclass(frozen=True)
class Study:
    kind: str
    title: str
    sections: dict[str, type[BaseModel]]  # its config sections, by name
    load_data: Callable[[Any], Any]  # config -> StudyData
    grid: Callable[[Any], list]  # config -> [Cell]
    training_items: Callable[[Any], tuple[list[dict], Any]]  # CellRun -> (items, Dataset)
    evaluate: Callable[[Any, Any], None]  # (CellRun, Built) -> rows written
    cell_config: Callable[[Any, Any], dict]  # (config, Cell) -> the config that changes its result
    report: Callable[[Any, str | None], str]  # (Store, study name) -> text tables
    prepare: Callable[..., Any] = _nothing  # (config, ModelConfig, base path, StudyData, Store) -> per-model prep
    check: Callable[..., list[str]] = _no_problems  # (config, StudyData, {model: prep}) -> problems
    validate: Callable[[Any], list[str]] = _no_problems  # config -> problems found before anything runs
    costs: Callable[..., list[str]] = _no_problems  # (config, calibrate) -> lines: what the plan costs
    figures: Callable[..., list] = _no_problems  # (report.summary.Results, out dir) -> [report.page.Section]
    comparisons: Callable[..., list] = _no_problems  # Results -> [report.summary.Comparison]
    headline: Callable[..., str] = lambda results: ""  # report.summary.Results -> the table a README shows
    cell_reads: Callable[..., list[tuple[str, str]]] = _everything  # (config, Cell, StudyData) -> (dataset, split)s


STUDIES: Registry[Study] = Registry("study kind")


def register(study: Study) -> Study:
    return STUDIES.register(study.kind, study)
