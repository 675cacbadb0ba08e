"""Study plug-ins: what a kind of study varies, prepares, trains on and evaluates. Every module of this
package registers one (k: knowledge, g: generalization); a user's plug-in calls `register` too."""

import importlib
import pkgutil

import ftscope.datasets.world  # noqa: F401  real facts from installed packages (world-facts) register on import
import ftscope.sandbox  # noqa: F401  the sandbox's data formats (sandbox-k, sandbox-g) register on import
from ftscope.studies.study import STUDIES, Study, register

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "study":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["STUDIES", "Study", "register"]
