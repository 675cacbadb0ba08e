"""`icl`: in-context learning. The base model, untouched; Study G tests every cell at the shots of each
test set (its `shots:`), so this cell's rows at k shots are ICL-k, and at 0 shots the zero-shot base."""

from ftscope.methods.base import build
from ftscope.methods.recipe import Recipe, register

RECIPE = register(Recipe("icl", build, description="the base model shown k demonstrations at test time"))
