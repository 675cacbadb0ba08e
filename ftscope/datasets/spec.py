"""The description of a dataset: one YAML file, read into a validated `DatasetSpec`.

A file may start with `include: other.yaml` (relative to itself): it is that file with its own keys
merged over it, mappings key by key (lm-evaluation-harness style). Files whose name starts with `_`
are only included by others (a task's shared fields), never registered as datasets.
"""

import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ftscope import yamlfile
from ftscope.metrics import METRICS
from ftscope.registry import unknown

TYPES = ("cbqa", "generation", "classification")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerationSpec(_Strict):
    """How an answer is decoded: greedy, at most `max_new_tokens`, cut at the first line or blank line."""
    max_new_tokens: int = Field(16, gt=0)
    stop: Literal["newline", "blank_line"] = "newline"


class Subset(_Strict):
    """A relation of a CBQA dataset: its question stems (with `{s}` for the subject); the sandbox world
    also reads the types of its subjects and answers and its statement phrasings (`{s}`, `{o}`)."""
    name: str = ""
    questions: list[str] = Field(default_factory=list)
    subject_type: str = ""
    answer_type: str = ""
    statements: list[str] = Field(default_factory=list)


class SourceSpec(BaseModel):
    """Where the records come from: `format` names a reader (files, hub, paper_g, entityquestions,
    sandbox-k, sandbox-g); every other key is an option of that reader."""
    model_config = ConfigDict(extra="allow")
    format: str


class DatasetSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    task: str
    type: Literal["cbqa", "generation", "classification"]
    description: str = ""
    metric: str
    templates: list[str] = Field(min_length=1, description="prompt maps: templates over the item's fields")
    target: str = Field("output", description="field holding the gold target (a string or a list of them)")
    target_sep: str = Field("auto", description="between prompt and target; 'auto': a space unless the prompt "
                                                "ends with whitespace")
    labels: list[str] | None = Field(None, description="classification: the label words, in score order")
    unlabeled: list[str] = Field(default_factory=list, description="classification: stored labels that mean 'no gold "
                                 "label' (MNLI's '-': annotators disagreed); such records are kept and can never be "
                                 "predicted correctly, as in the paper's code (a study may drop them)")
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    source: SourceSpec
    hub: SourceSpec | None = Field(None, description="the same data from a hub dataset id (data.source: hub)")
    fields: dict[str, str] = Field(default_factory=dict, description="field name in templates <- name in the records")
    domain: str = Field("", description="same task and same domain as the training set = in-domain")
    shots: list[int] = Field(default_factory=lambda: [0], description="demonstrations shown at test time")
    fticl_shots: list[int] = Field(default_factory=list, description="demonstrations prefixed in FTICL training")
    test_items: int | None = Field(None, gt=0, description="test the first N test items")
    groups: dict[str, list[str]] = Field(default_factory=dict, description="cbqa: group -> its subsets")
    subsets: dict[str, Subset] = Field(default_factory=dict)
    framings: list[str] = Field(default_factory=lambda: ["{q}"], description="cbqa: each stem is asked in each framing")
    origin: str = Field("", description="the YAML file it was read from (set by the loader)")

    @field_validator("metric")
    @classmethod
    def _registered(cls, v):
        if v not in METRICS:
            raise ValueError(f"{unknown('metric', v, METRICS)} (a plug-in's metric must be "
                             f"named in the study config's `plugins:`)")
        return v

    @field_validator("templates")
    @classmethod
    def _parsable(cls, v):
        for t in v:
            try:
                placeholders(t)
            except ValueError as e:
                raise ValueError(f"template {t!r} is not a valid format string: {e}") from None
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.type == "classification" and (not self.labels or len(set(self.labels)) != len(self.labels)
                                               or len(self.labels) < 2):
            raise ValueError("a classification dataset needs `labels`: two or more distinct label words")
        if self.type not in METRICS.get(self.metric).types:
            raise ValueError(f"metric: {self.metric!r} scores {' or '.join(METRICS.get(self.metric).types)} datasets, "
                             f"not a {self.type} dataset")
        if self.type == "cbqa" and not self.subsets:
            raise ValueError("a cbqa dataset needs `subsets` (its relations and their question stems)")
        unknown = {s for members in self.groups.values() for s in members} - set(self.subsets)
        if unknown:
            raise ValueError(f"groups name subsets that are not described: {sorted(unknown)}")
        if any(k < 0 for k in self.shots + self.fticl_shots):
            raise ValueError("shots must be >= 0")
        return self

    def phrasings(self, relation: str) -> list[str]:
        """cbqa: every question phrasing of a relation, stems x framings, with `{s}` left for the subject."""
        return [f.replace("{q}", q) for q in self.subsets[relation].questions for f in self.framings]

    def group_of(self, subset: str) -> str | None:
        return next((g for g, members in self.groups.items() if subset in members), None)


def placeholders(template: str) -> set[str]:
    """The field names a template fills, e.g. {'input'} for '### Input:\\n{input}'."""
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def read_spec(path: Path) -> DatasetSpec:
    """Parse one description file (with its `include:` chain); errors name the file and the field."""
    try:
        raw = yamlfile.load_chain(path, "include", "dataset description")
    except yamlfile.YamlError as e:
        raise ValueError(f"dataset description {e}") from None
    raw["origin"] = str(path)
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as e:
        lines = [f"{'.'.join(map(str, err['loc'])) or '(top level)'}: {err['msg']}" for err in e.errors()]
        raise ValueError(f"dataset description {path}:\n  " + "\n  ".join(lines)) from None
