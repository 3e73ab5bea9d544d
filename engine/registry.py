"""Where the engine finds the lecture: every module of the lecture's package that defines ``EXPERIMENT`` is an
experiment, listed in slide order. Adding an experiment is adding its file to that package.

The engine never imports the lecture at the top of a module (the lecture imports the engine's vocabulary, so
the arrow runs one way): it loads the package by its name, ``LECTURE``, on first use.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from base.errors import ReproError, unknown_name
from engine.spec import Experiment

LECTURE = "experiments"  # the package that holds the lecture's claims


def _first_slide(exp: Experiment) -> int:
    digits = "".join(c if c.isdigit() else " " for c in exp.slides).split()
    return int(digits[0]) if digits else 0


@functools.cache
def _experiments() -> tuple[Experiment, ...]:
    package = importlib.import_module(LECTURE)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg or info.name.startswith("_"):
            continue  # figures/ and __main__ are no experiments
        module = importlib.import_module(f"{LECTURE}.{info.name}")
        if isinstance(getattr(module, "EXPERIMENT", None), Experiment):
            found.append(module.EXPERIMENT)
    return tuple(sorted(found, key=lambda e: (_first_slide(e), e.name)))


def registry() -> dict[str, Experiment]:
    """Every experiment by name, in slide order (imports the lecture's modules on first use)."""
    return {exp.name: exp for exp in _experiments()}


def get(name: str) -> Experiment:
    exps = registry()
    if name not in exps:
        raise ReproError(unknown_name("experiment", name, sorted(exps)))
    return exps[name]
