"""What a study kind is: one object with named members, as a torchtune recipe is. The flow runs every
kind the same way:

    load_data -> base models -> prepare(model) for each -> check -> grid's cells, each: the study picks its
    training_items(run), a method's recipe builds a model from them, measurements (ftscope/measurements.py)
    and evaluate(run, built) write rows -> report

A kind subclasses `Study`, fills in what differs and registers an instance; its `report` renders tables,
the README block, figures and comparisons from the study's `Results` (ftscope/report/results.py).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftscope.methods import check_methods
from ftscope.registry import Registry
from ftscope.report import general


class GridSection(BaseModel):
    """What every study's `grid:` has besides its axes: the methods (each one registered, with the methods
    it starts from) and the seeds. A study kind subclasses it with its axes and its default methods."""
    model_config = ConfigDict(extra="forbid")
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


class Study:
    kind: str = ""
    title: str = ""
    sections: dict[str, type[BaseModel]] = {}  # its config sections, by name
    report: StudyReport = StudyReport()
    prepares_on_gpus: bool = False  # its preparation runs the model (on a cluster: a job with the model's GPUs)

    def load_data(self, cfg):
        """config -> StudyData (cached by fingerprint)."""
        raise NotImplementedError

    def prepare(self, cfg, model, base_path: str, data, store):
        """What every cell of one base model shares (Study K: its mastery levels); None by default."""
        return None

    def check(self, cfg, data, preps: dict) -> dict:
        """Cells of the grid the prepared data cannot run, each with why (Study K: a mastery level that holds fewer
        training items than the cell's sample count), known once every model is prepared: {Cell: reason}. The flow
        records them as not run and runs every other cell."""
        return {}

    def grid(self, cfg) -> list:
        """config -> [Cell]."""
        raise NotImplementedError

    def cell_config(self, cfg, cell) -> dict:
        """The study's settings that change a cell's result (they go into its id)."""
        return {}

    def cell_reads(self, cfg, cell, data) -> list[tuple[str, str]]:
        """The (dataset, split) pairs a cell reads: their records go into its id."""
        return data.reads()

    def training_items(self, run) -> tuple[list[dict], object]:
        """CellRun -> (items to train on, their Dataset)."""
        raise NotImplementedError

    def evaluate(self, run, built) -> None:
        """Evaluate a built model and write its rows (metrics, scores, ...)."""
        raise NotImplementedError

    def prompt_cases(self, cfg, data):
        """Every kind of prompt the study gives a model, as ftscope.context.PromptCase, so that a prompt longer
        than the model's context is refused before anything runs (the longest of each kind is enough)."""
        return []

    def validate(self, cfg) -> list[str]:
        """Problems found before anything runs."""
        return []

    def notes(self, cfg) -> list[str]:
        """What `validate` should say of a config that can run (warnings, counts)."""
        return []

    def costs(self, cfg, calibrate: bool = False) -> list[str]:
        """Lines saying what the plan costs."""
        return []


STUDIES: Registry[Study] = Registry("study kind")


def register(study: Study) -> Study:
    return STUDIES.register(study.kind, study)
