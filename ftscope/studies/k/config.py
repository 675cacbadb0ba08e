"""Study K's config sections: `data`, `mastery`, `grid`, `eval`, `kl`, `params` (docs/config.md lists every key)."""

from typing import Literal, Union

from pydantic import Field

from ftscope.change import ParamsConfig
from ftscope.divergence import KLConfig
from ftscope.general import GeneralConfig
from ftscope.studies.k.mastery import MasteryConfig
from ftscope.studies.study import GridSection, Section, positive_counts

Level = Union[Literal[0, 1, 2, 3, 4], Literal["mixed"]]


class DataConfig(Section):
    """Study K's `data:` section: a CBQA dataset of the registry and where its records are."""
    dataset: str = Field("sandbox-k", description="a cbqa dataset of the registry (sandbox-k, entityquestions, "
                                                  "or one of datasets_dirs)")
    path: str | None = Field(None, description="a local directory or a dataset id (entityquestions)")
    options: dict = Field(default_factory=dict, description="options of the dataset's source, e.g. the sandbox "
                                                            "world's size")
    id_relations: list[str] | None = Field(None, description="in-domain relations (default: the dataset's 'id' group)")
    max_test_items: int | None = Field(None, gt=0, description="cap per domain (id, ood), sampled")
    max_train_items: int | None = Field(None, gt=0, description="cap per in-domain relation, sampled with `seed`")
    seed: int = Field(0, description="seed of the caps")


class GridConfig(GridSection):
    levels: list[Level] = Field(default_factory=lambda: [0, 1, 2, 3, 4, "mixed"], min_length=1)
    sample_counts: list[int] = Field(default_factory=lambda: [60, 120, 240, 480, 960, 1920], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["base", "sft"], min_length=1)
    positive = positive_counts("sample_counts")


class EvalConfig(Section):
    max_new_tokens: int = Field(16, gt=0)
    general: GeneralConfig | None = Field(None, description="lm-eval tasks every cell and base model is scored on "
                                                            "(ftscope/general.py)")


SECTIONS = {"data": DataConfig, "mastery": MasteryConfig, "grid": GridConfig, "eval": EvalConfig, "kl": KLConfig,
            "params": ParamsConfig}
