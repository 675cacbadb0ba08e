"""Method recipes: every module of this package registers one (base, sft, lora, restore, icl, fticl).
See recipe.py for what a recipe declares."""

import importlib
import pkgutil

from ftscope.methods.recipe import RECIPES, Built, Recipe, build, register, report_order, variant_name
from ftscope.registry import unknown

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "recipe":
        importlib.import_module(f"{__name__}.{_m.name}")


def check_methods(methods: list[str]) -> list[str]:
    """A grid's `methods:`: every one registered, and every parent a method starts from in the list."""
    missing = [m for m in methods if m not in RECIPES]
    if missing:
        raise ValueError(unknown("methods", missing, RECIPES))
    names = {RECIPES.get(m).name for m in methods}
    for m in methods:
        parent = RECIPES.get(m).parent
        if parent and RECIPES.get(parent).name not in names:
            raise ValueError(f"'{m}' starts from the checkpoints of '{parent}' cells; add '{parent}'")
    return methods


def changes_model(method: str) -> bool:
    """The method trains the base model or edits a trained one (not the base model as it is). A method no
    plug-in registered here (a report read without it) counts as one that changes the model."""
    if method not in RECIPES:
        return True
    recipe = RECIPES.get(method)
    return recipe.trains or recipe.parent is not None


__all__ = ["RECIPES", "Built", "Recipe", "build", "changes_model", "check_methods", "register", "report_order", "variant_name"]
