"""The experiment layer: one module per lecture claim, and the machinery that runs and reports them."""

from __future__ import annotations

from experiments.spec import Experiment, ReproError

_MODULES = ("augmentation", "resnet_ablation")  # one module per experiment; each defines EXPERIMENT


def registry() -> dict[str, Experiment]:
    """Every registered experiment by name (imports the experiment modules on first use)."""
    import importlib

    found = {}
    for name in _MODULES:
        exp = importlib.import_module(f"experiments.{name}").EXPERIMENT
        found[exp.name] = exp
    return found


def get(name: str) -> Experiment:
    from experiments.spec import unknown_name

    exps = registry()
    if name not in exps:
        raise ReproError(unknown_name("experiment", name, sorted(exps)))
    return exps[name]
