"""`fticl`: fine-tuning with in-context examples (Study G). Every training input is prefixed by the same
first k demonstrations of the training set's pool; one variant per k (the training set's
`fticl_shots`, or `fticl.shots` for every task)."""

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from ftscope.methods.recipe import Built, Recipe, register
from ftscope.train.examples import cell_examples
from ftscope.train.fit import fit


class FticlConfig(BaseModel):
    """The `fticl:` section."""
    model_config = ConfigDict(extra="forbid")
    shots: list[NonNegativeInt] | None = Field(None, min_length=1, description="demonstrations per training "
                                               "input; default: the training dataset's fticl_shots")


def variants(cfg, train_spec) -> list[dict]:
    shots = cfg.fticl.shots if cfg.fticl.shots is not None else train_spec.fticl_shots
    return [{"shots": k} for k in shots]


def build(run) -> Built:
    return fit(run, cell_examples(run, shots=run.params["shots"]), lr=run.cfg.train.lr)


RECIPE = register(Recipe("fticl", build, trains=True, full_weights=True, section=("fticl", FticlConfig), variants=variants,
                         label=lambda p: str(p["shots"]), relevant=lambda cfg: {"train": cfg.train.model_dump()},
                         description="fine-tuning with k demonstrations before every training input"))
