"""`lora`: LoRA adapters (peft) trained on the cell's items at `lora.lr`; evaluated merged. Analyses
that compare with the base model use the same model with its adapter switched off."""

from ftscope.methods.recipe import Built, Recipe, register
from ftscope.train.examples import cell_examples
from ftscope.train.fit import fit
from ftscope.train.lora import LoraConfig


def build(run) -> Built:
    return fit(run, cell_examples(run), lr=run.cfg.lora.lr, lora=run.cfg.lora)


RECIPE = register(Recipe("lora", build, trains=True, section=("lora", LoraConfig), order=2,
                         relevant=lambda cfg: {"train": cfg.train.model_dump(), "lora": cfg.lora.model_dump()},
                         description="LoRA fine-tuning"))
