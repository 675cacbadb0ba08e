"""Every row the store holds, defined once as a type: one dataclass per table, its fields in the table's column
order. The store's Parquet schemas are derived from them (`schema`), and the code that makes rows builds these
(`as_row(Metric(...))`) rather than dicts whose shape lives elsewhere. A field that may be empty is `X | None`.

Changing a field here changes the table: bump store.SCHEMA_VERSION and say what moved."""

from dataclasses import dataclass, fields
from datetime import datetime
from types import UnionType
from typing import get_args

import pyarrow as pa

_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_(),
          datetime: pa.timestamp("us", tz="UTC")}


@dataclass
class Mastery:
    """One item's mastery under one base model (Study K's preparation): R = hits / (n_map x n_sample)."""
    model: str
    model_fp: str
    data_fp: str
    item_id: str
    relation: str
    split: str
    domain: str
    exposure: int | None
    hits: int
    r: float
    level: int
    n_map: int
    n_sample: int
    temperature: float
    engine: str


@dataclass
class Plan:
    """One planned cell of a study's latest plan."""
    cell_id: str
    study: str
    kind: str
    label: str
    model: str
    method: str
    variant: str
    axes: str  # JSON
    seed: int
    parent_cell: str | None


@dataclass
class Attempt:
    """One attempt at a cell (`cells`): what it is, with what it ran, and how it ended."""
    cell_id: str
    study: str
    kind: str
    model: str
    method: str
    variant: str
    axes: str  # JSON
    params: str  # JSON: the variant's settings
    seed: int
    parent_cell: str | None
    status: str  # done, failed, not_run
    error: str | None = None
    config: str | None = None  # JSON: everything that went into its id
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    train_s: float | None = None
    eval_s: float | None = None
    versions: str | None = None
    host: str | None = None  # host, device, threads, machine: where it ran (None for a cell recorded as not run)
    device: str | None = None
    threads: int | None = None
    engine: str | None = None
    machine: str | None = None


@dataclass
class Scored:
    """What a `metrics` row and its `scores` rows share: which cell, test set, domain, slice, prompt map, shots and
    metric."""
    cell_id: str
    task: str
    dataset: str
    domain: str
    slice: str
    prompt_map: int
    shots: int
    metric: str


@dataclass
class Metric(Scored):
    """One cell x test dataset x domain x slice x prompt map x shots x metric; `total` is the sum of the per-item
    values (the number correct, for a proportion), so any interval can be recomputed."""
    n: int
    total: float
    value: float


@dataclass
class Score(Scored):
    """One item's value behind a `metrics` (or KL) row, for paired and bootstrap intervals."""
    item_id: str
    value: float
    prediction: str | None


@dataclass
class KL:
    """Token-level KL to the base model over one slice of a cell's test items."""
    cell_id: str
    dataset: str
    domain: str
    slice: str
    n: int
    n_positions: int
    value: float
    direction: str
    positions: str


@dataclass
class Change:
    """Parameter change of one matrix (or a layer, or the whole region) of a cell's model from its base (`params`)."""
    cell_id: str
    scope: str
    matrix: str | None
    layer: int | None
    n_elements: int
    n_zero_base: int
    mean_change: float
    sum_change: float
    top1_share: float | None
    top5_share: float | None
    top10_share: float | None
    measure: str
    region: str


@dataclass
class Run:
    """One flow run of a study, written when it starts and again when it ends."""
    run_id: str
    study: str
    kind: str
    status: str
    config: str  # YAML: the resolved config
    started_at: datetime
    finished_at: datetime | None
    prefect_url: str | None
    host: str
    pid: int
    versions: str
    message: str | None


@dataclass
class Restoration:
    """How much of one matrix type's change a restoration cell set back to the base values."""
    cell_id: str
    parent_cell: str
    k_percent: float
    strategy: str
    matrix: str
    n_elements: int
    n_restored: int
    fraction_restored: float
    threshold: float
    undone_share: float | None


@dataclass
class General:
    """lm-evaluation-harness's own number per cell x task x metric, with its stderr (ftscope/general.py)."""
    cell_id: str
    task: str
    dataset: str
    metric: str
    shots: int
    n: int
    value: float | None
    stderr: float | None
    higher_is_better: bool
    lm_eval: str
    task_hash: str


TABLES: dict[str, type] = {"mastery": Mastery, "plan": Plan, "cells": Attempt, "metrics": Metric, "scores": Score,
                           "kl": KL, "params": Change, "runs": Run, "restoration": Restoration, "general": General}


def _arrow(annotation) -> pa.DataType:
    if isinstance(annotation, UnionType):  # X | None: the column's type is X's (every column may hold nulls)
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return _ARROW[annotation]


def schema(record: type) -> pa.Schema:
    """The table's Parquet schema: one column per field, in order."""
    return pa.schema([(f.name, _arrow(f.type)) for f in fields(record)])


def as_row(record) -> dict:
    """A record as the store writes it."""
    return dict(vars(record))
