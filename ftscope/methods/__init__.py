"""Method recipes: every module of this package registers one (base, sft, lora, restore, icl, fticl).
See recipe.py for what a recipe declares."""

import importlib
import pkgutil

from ftscope.methods.recipe import RECIPES, Built, Recipe, register, variant_name

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "recipe":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["RECIPES", "Built", "Recipe", "register", "variant_name"]
