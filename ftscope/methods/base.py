"""`base`: the base model itself, evaluated like any cell: the reference every method is compared to."""

from ftscope.methods.recipe import Built, Recipe, register


def build(run) -> Built:
    return Built(run.load(), checkpoint=run.base_dir, base_view="self")


RECIPE = register(Recipe("base", build, order=0, description="the base model, untouched (the reference row)"))
