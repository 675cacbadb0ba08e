"""`restore`: parameter restoration of Study K. Starts from the checkpoint of the `sft` cell with the same
model, axes and seed, ranks every element of the region by how much fine-tuning changed it (globally,
not per matrix), sets the top (or bottom, or a random) k% back to the base values, streaming shard by
shard, and records per matrix type how much of the change that undid."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftscope.change import Measure
from ftscope.methods.recipe import Built, Recipe, register
from ftscope.records import Restoration, as_row
from ftscope.restoration import restore


class RestoreConfig(BaseModel):
    """The `restore:` section."""
    model_config = ConfigDict(extra="forbid")
    k_percent: list[float] = Field(default_factory=lambda: [1, 3, 5, 10, 20, 40, 60])
    strategies: list[Literal["top", "bottom", "random"]] = Field(default_factory=lambda: ["top"])
    region: Literal["transformer", "attention", "mlp", "all"] = "transformer"
    measure: Measure = Field("relative", description="how change is ranked (change.py: relative, absolute, "
                                                     "relative_nonzero)")

    @field_validator("k_percent")
    @classmethod
    def _percent(cls, v):
        if not v or any(not 0 < k <= 100 for k in v):
            raise ValueError("k_percent must be a non-empty list of percentages in (0, 100]")
        return v


def variants(cfg, train_spec) -> list[dict]:
    return [{"strategy": s, "k_percent": float(k)} for s in cfg.restore.strategies for k in cfg.restore.k_percent]


def build(run) -> Built:
    out = run.work / "model"
    rows = restore(run.base_dir, run.parent_checkpoint(), out, k_percent=run.params["k_percent"],
                   strategy=run.params["strategy"], region=run.cfg.restore.region, measure=run.cfg.restore.measure,
                   seed=run.cell.seed)
    return Built(run.load(out), checkpoint=out,
                 rows={"restoration": [as_row(Restoration(cell_id=run.cid, parent_cell=run.parent_id, **r)) for r in rows]})


RECIPE = register(Recipe("restore", build, parent="sft", section=("restore", RestoreConfig), variants=variants,
                         label=lambda p: f"{p['strategy']}{p['k_percent']:g}",
                         relevant=lambda cfg: {"train": cfg.train.model_dump(), "restore": {
                             "region": cfg.restore.region, "measure": cfg.restore.measure}},
                         description="restore the k% most-changed parameters of an SFT model"))
