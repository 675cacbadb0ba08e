"""What a method is: a recipe the generic cell runs (torchtune style). A recipe turns a cell's run
context into a model to evaluate; it says whether it trains, which method's checkpoint it starts from
(its parent), the config section it reads, and its variants (e.g. restoration's k and strategy).

The cell never branches on a method's name: adding a method is a module in this package (or a user's
plug-in) that calls `register(Recipe(...))`.
"""

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from ftscope.registry import Registry


@dataclass(frozen=True)
class Built:
    """A recipe's result. `checkpoint` is where its weights already are on disk (None: the cell saves
    them when an analysis needs them). `base_view`, set by the recipe, is how `base_model` gives an analysis the
    base model: loaded, this very model, or this model with its LoRA adapter switched off. `rows`: what the
    recipe measured while it built ({table: rows}; restoration: how much of each matrix type's change it undid),
    which the cell writes with its own: a recipe never writes the store."""
    model: Any
    checkpoint: Path | None = None
    base_view: Literal["load", "self", "adapter_off"] = "load"
    rows: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        """It is the base model as it is (base, icl): nothing to measure against the base."""
        return self.base_view == "self"

    def base_model(self, load: Callable[[], Any]):
        """The base model an analysis compares this one with: this very model when unchanged; None when it is
        this model with its LoRA adapter switched off (divergence.token_kl switches it off); else `load()`."""
        if self.base_view == "load":
            return load()
        return self.model if self.unchanged else None

    def merge_adapter(self) -> "Built":
        """The model to evaluate as a plain transformers model: LoRA adapters merged into the weights. peft
        merges in place, so this Built's adapter view is gone afterwards: compare with the base first."""
        if self.base_view != "adapter_off":
            return self
        return Built(self.model.merge_and_unload(), self.checkpoint, "load")


def _no_variants(cfg, train_spec) -> list[dict]:
    return [{}]


@dataclass(frozen=True)
class Recipe:
    name: str
    build: Callable[[Any], Built]  # CellRun -> Built
    trains: bool = False
    full_weights: bool = False  # it updates every weight (full fine-tuning): impossible on a quantized checkpoint
    parent: str | None = None  # a method whose checkpoint (same model, axes, seed) this one starts from
    section: tuple[str, type[BaseModel]] | None = None  # its config section: (name, schema)
    variants: Callable[[Any, Any], list[dict]] = _no_variants  # (config, training DatasetSpec) -> settings
    label: Callable[[dict], str] = field(default=lambda params: "")  # suffix of a variant: "top5", "2"
    relevant: Callable[[Any], dict] = field(default=lambda cfg: {})  # config that changes its result
    description: str = ""
    order: int = 3  # where reports list it among methods: the reference (base) 0, then sft 1, lora 2, then by name


RECIPES: Registry[Recipe] = Registry("method")
# transformers' TrainingArguments and accelerate's state are process-wide: one training at a time in a process (two
# cells training at once, `workers: 2`, failed with "`AcceleratorState` object has no attribute `num_processes`")
TRAINING = threading.Lock()


def register(recipe: Recipe, *aliases: str) -> Recipe:
    for name in (recipe.name, *aliases):
        RECIPES.register(name, recipe)
    return recipe


def build(run, training_items: Callable[[Any], tuple[list[dict], Any]]) -> Built:
    """The cell's model (`run`: ftscope.cell.CellRun), built by its method's recipe: a recipe that trains reads
    its examples (`run.examples`) from the items `training_items(run)` picks (the study's choice: items, their
    Dataset). What the recipe measured while it built (restoration's rows) joins the cell's rows. Timed as the
    cell's training (`run.train_s`)."""
    t = time.monotonic()
    recipe = RECIPES.get(run.cell.method)
    run.progress.phase("build")  # a recipe that trains starts its own phase
    if recipe.trains:
        run.training = training_items(run)
    with TRAINING if recipe.trains else nullcontext():
        built = recipe.build(run)
    for table, rows in built.rows.items():
        run.add(table, rows)
    run.train_s = time.monotonic() - t
    return built


def report_order(method: str) -> tuple[int, str]:
    """The key reports sort methods by: each recipe's `order`, then its name (a method no plug-in registered in
    this process, a report read without it, comes with the others by name)."""
    return (RECIPES.get(method).order if method in RECIPES else Recipe.order, method)


def variant_name(recipe: Recipe, params: dict) -> str:
    suffix = recipe.label(params) if params else ""
    return f"{recipe.name}-{suffix}" if suffix else recipe.name
