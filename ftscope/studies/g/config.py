"""Study G's config sections: `data`, `grid`, `eval` (and the methods' own, e.g. `fticl`; docs/config.md)."""

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt

from ftscope.general import GeneralConfig
from ftscope.studies.study import GridSection, Section, positive_counts

PAPER_TRAIN = ["xsum", "socialqa", "amazon", "paws", "multinli"]
PAPER_TEST = ["xsum", "xlsum", "cnn", "pdfs", "socialqa", "tweetqa", "sciqa", "amazon", "amazonfood", "sst2", "yelp",
              "paws", "qqp", "stsb", "multinli", "multinli2", "rte", "gptnli"]


class DataConfig(Section):
    """Study G's `data:` section: the test sets and where the records are."""
    test: list[str] = Field(default_factory=lambda: list(PAPER_TEST), min_length=1,
                            description="datasets every model is tested on")
    root: str | None = Field(None, description="the paper's released data directory (datasets of format paper_g)")
    source: Literal["default", "hub"] = Field("default", description="hub: read each dataset from its `hub:` source")
    test_items: int | None = Field(None, gt=0, description="test the first N items of each set (default: each "
                                                           "dataset's own, 250 for the paper's)")
    options: dict = Field(default_factory=dict, description="options of generated (sandbox-g) datasets: seed, sizes")
    unlabeled: Literal["keep", "drop"] = Field("keep", description="records without a gold label (MNLI's '-'): keep "
                                               "them, scored wrong as the paper's code does, or drop them")


class GridConfig(GridSection):
    train: list[str] = Field(default_factory=lambda: list(PAPER_TRAIN), min_length=1,
                             description="training datasets (one per task, usually)")
    sizes: list[int] = Field(default_factory=lambda: [2000, 4000, 6000], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["icl", "sft", "fticl"], min_length=1)
    positive = positive_counts("sizes")


class EvalConfig(Section):
    prompt_maps: list[NonNegativeInt] = Field(default_factory=lambda: [0, 1], min_length=1,
                                              description="templates tested")
    shots: dict[str, Annotated[list[NonNegativeInt], Field(min_length=1)]] | None = Field(
        None, description="task -> shots tested (default: each dataset's)")
    max_new_tokens: int | None = Field(None, gt=0, description="override each dataset's (60 for generation)")
    general: GeneralConfig | None = Field(None, description="lm-eval tasks every cell and base model is scored on "
                                                            "(ftscope/general.py)")


SECTIONS = {"data": DataConfig, "grid": GridConfig, "eval": EvalConfig}
