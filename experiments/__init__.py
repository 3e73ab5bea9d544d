"""The experiment layer: one module per lecture claim, and the machinery that runs and reports them.

Every module of this package that is not part of the machinery (``_MACHINERY``) is an experiment and
defines ``EXPERIMENT``: adding an experiment is adding its file. They are listed in slide order.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.errors import ReproError
from experiments.spec import Experiment

_MACHINERY = {
    "__init__", "__main__", "callbacks", "claims", "cli", "common", "compare", "config", "evidence", "lecture", "plan",
    "plots", "pool", "provenance", "records", "report", "runner", "spec", "stats", "sweep", "tracking", "verify",
}  # fmt: skip


def _first_slide(exp: Experiment) -> int:
    digits = "".join(c if c.isdigit() else " " for c in exp.slides).split()
    return int(digits[0]) if digits else 0


def registry() -> dict[str, Experiment]:
    """Every experiment by name, in slide order (imports the experiment modules on first use)."""
    import importlib

    names = sorted(p.stem for p in Path(__file__).parent.glob("*.py") if p.stem not in _MACHINERY)
    found = [importlib.import_module(f"experiments.{name}").EXPERIMENT for name in names]
    return {exp.name: exp for exp in sorted(found, key=lambda e: (_first_slide(e), e.name))}


def get(name: str) -> Experiment:
    from datamodules.errors import unknown_name

    exps = registry()
    if name not in exps:
        raise ReproError(unknown_name("experiment", name, sorted(exps)))
    return exps[name]
