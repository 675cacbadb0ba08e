"""What a study kind is: a package that reads like a recipe (torchtune's style), and one object, `Study`,
through which the flow runs every kind the same way:

    load_data(cfg) -> base models -> prepare(cfg, model, ...) each -> grid(cfg) -> run_cell(run) each -> report

A study package (ftscope/studies/k/, g/) holds its config sections (config.py), its data (data.py), its grid
(grid.py), one cell top to bottom (cell.py), its checks (checks.py) and its report (report.py); its
`__init__.py` registers the `Study` that points at them. The hooks a new kind fills in:

    load_data(cfg)                     -> StudyData        e.g. the facts of `data.dataset`, split train/test
    prepare(cfg, model, path, data, store) -> anything     e.g. Study K: the mastery level of every item
    grid(cfg)                          -> [Cell]           e.g. level x sample count x method x seed
    run_cell(run)                      -> None             build the model (ftscope.methods.build), measure it, write
                                                           its rows: e.g. KL, accuracy, parameter change
    report                             -> StudyReport      tables, README block, figures, findings from Results

Two more say what a cell's id holds (`cell_config`, `cell_reads`; defaults: nothing, every dataset read), and
`checks` what `validate` says before anything runs.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftscope.methods import check_methods
from ftscope.registry import Registry
from ftscope.report import general


class Section(BaseModel):
    """A study's config section: an unknown key is an error (a typo is named, not ignored)."""
    model_config = ConfigDict(extra="forbid")


class GridSection(Section):
    """What every study's `grid:` has besides its axes: the methods (each one registered, with the methods
    it starts from) and the seeds. A study kind subclasses it with its axes and its default methods."""
    methods: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)

    @field_validator("methods")
    @classmethod
    def _known(cls, v):
        return check_methods(v)


def positive_counts(name: str):
    """A validator for a list of counts (sample counts, sizes) that must all be positive."""
    def check(cls, v):
        if min(v) <= 0:
            raise ValueError(f"{name} must be positive counts")
        return v
    return field_validator(name)(classmethod(check))


@dataclass(frozen=True)
class StudyReport:
    """What a study kind shows of its `Results`: every member renders from it, none reads the store.

    tables:      text blocks `ftscope run` and `ftscope report` print, in order
    headline:    the block a README shows under the verdicts
    figures:     one function per figure: (Results, out dir) -> report.page.Section, or None when the
                 study has nothing for it (an ICL-only study has no training curves)
    Every study's text and figures end with general capability (eval.general: ftscope/report/general.py).
    comparisons: the paper's findings as differences on the same test items
    """
    tables: list[Callable] = field(default_factory=list)
    headline: Callable | None = None
    figures: list[Callable] = field(default_factory=list)
    comparisons: Callable = lambda results: []

    def text(self, results) -> str:
        return "\n\n".join(t for t in (table(results) for table in [*self.tables, general.table]) if t)

    def sections(self, results, out: Path) -> list:
        return [s for s in (figure(results, out) for figure in [*self.figures, general.figure]) if s is not None]


@dataclass(frozen=True)
class StudyChecks:
    """What a study kind checks, each before the work it would spoil:

    problems:     config -> what is wrong, before anything runs (`validate`)
    notes:        config -> what `validate` should say of a config that can run (warnings, counts)
    costs:        (config, calibrate) -> lines saying what the plan costs
    prompt_cases: (config, StudyData) -> every kind of prompt the study gives a model, as
                  ftscope.context.PromptCase: a prompt longer than the model's context is refused before anything
                  runs (the longest of each kind is enough)
    unfit:        (config, StudyData, {model: preparation}) -> {Cell: why}: cells the prepared data cannot run
                  (Study K: a mastery level with fewer items than the cell's sample count), known once every model
                  is prepared; the flow records them as not run and runs every other cell"""
    problems: Callable = lambda cfg: []
    notes: Callable = lambda cfg: []
    costs: Callable = lambda cfg, calibrate=False: []
    prompt_cases: Callable = lambda cfg, data: []
    unfit: Callable = lambda cfg, data, preps: {}


def _no_preparation(cfg, model, base_path: str, data, store):
    return None


def _every_read(cfg, cell, data) -> list[tuple[str, str]]:
    return data.reads()


@dataclass(frozen=True)
class Study:
    """A study kind, described by what the flow calls, in the order it calls it. Example: Study K,
    ftscope/studies/k/__init__.py."""
    kind: str  # the config's `kind:`
    title: str
    sections: dict[str, type[BaseModel]]  # its config sections, by name
    load_data: Callable  # config -> StudyData (cached by fingerprint)
    grid: Callable  # config -> [Cell] (ftscope.grid.expand: points x methods x variants x seeds)
    run_cell: Callable  # CellRun -> None: one cell, top to bottom (ftscope.methods.build, measure, run.write)
    report: StudyReport
    prepare: Callable = _no_preparation  # (config, model, base path, StudyData, Store) -> what every cell of
    #                                      one base model shares (Study K: its mastery levels)
    prepares_on_gpus: bool = False  # its preparation runs the model (on a cluster: a job with the model's GPUs)
    cell_config: Callable = lambda cfg, cell: {}  # the study's settings that change a cell's rows: in its id
    cell_reads: Callable = _every_read  # (config, Cell, StudyData) -> the (dataset, split) pairs a cell reads:
    #                                     their records go into its id
    checks: StudyChecks = StudyChecks()


STUDIES: Registry[Study] = Registry("study kind")


def register(study: Study) -> Study:
    return STUDIES.register(study.kind, study)
