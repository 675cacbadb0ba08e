"""`sft` (alias `ft`): full fine-tuning on the cell's training items, loss on the target and EOS only."""

from ftscope.methods.recipe import Built, Recipe, register
from ftscope.train.examples import cell_examples
from ftscope.train.fit import fit


def build(run) -> Built:
    return fit(run, cell_examples(run), lr=run.cfg.train.lr)


RECIPE = register(Recipe("sft", build, trains=True, full_weights=True, order=1,
                         relevant=lambda cfg: {"train": cfg.train.model_dump()}, description="full fine-tuning"), "ft")
