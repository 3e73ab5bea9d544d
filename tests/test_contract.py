"""The contract between the layers: what imports what, where each kind of class lives, what every run resolves
to, and gradients under mixed precision."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import lightning as L
import pytest
import torch
import torchmetrics
import yaml

from base.errors import ReproError
from datamodules.base import RecordedDataModule
from engine.config import config_from_dict, config_to_dict
from engine.registry import registry
from lightning_modules.base import RecordedModule

ROOT = Path(__file__).resolve().parents[1]
# the floors of the house, lowest first: a module imports from its own floor or those below, never above
FLOORS = ("base", "datamodules", "lightning_modules", "engine", "experiments")
PACKAGES = FLOORS[1:]  # where the suite's classes live
MAX_FUNCTION_LINES = 60
# functions allowed over the budget, and why (each reads as one list or one table, not as steps)
LONG_FUNCTIONS = {
    # the hot loop of program generation (bench/program_generation.py): its random draws inlined in one frame, in
    # the order that fixes every generated data set
    "datamodules/programs.py:_program": "one program's operations, drawn in order",
}


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Every first-party module a file imports, deferred imports inside functions included; ``from pkg import
    mod`` counts as ``pkg.mod`` where that is a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")}
    return {n for n in names if n.split(".")[0] in FLOORS + ("bench",)}


def _is_module(name: str) -> bool:
    parts = name.split(".")
    return (ROOT.joinpath(*parts).with_suffix(".py")).is_file() or (ROOT.joinpath(*parts) / "__init__.py").is_file()


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _graph(*packages: str) -> dict[str, set[str]]:
    """module -> the modules it imports (a package's __init__ as the package's name)."""
    return {_module_name(p): {n for n in _imported(p) if _is_module(n)} for p in _sources(*packages)}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan), plus modules that import themselves."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in graph.get(v, ()):
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ----------------------------------------------------------------------------- layers
def test_no_module_imports_a_floor_above_its_own():
    floor = {name: i for i, name in enumerate(FLOORS)}
    offenders = {
        _module_name(p): sorted(
            n for n in _imported(p) if floor.get(n.split(".")[0], -1) > floor[p.relative_to(ROOT).parts[0]]
        )
        for p in _sources(*FLOORS)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_engine_finds_the_lecture_by_its_package_name_alone():
    from engine import registry as reg

    assert reg.LECTURE == "experiments" and not any(
        n.startswith("experiments") for p in _sources("engine") for n in _imported(p)
    )
    # every module of the lecture that declares an experiment is found, and nothing else is
    declared = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if "EXPERIMENT" in _assigned(p))
    assert sorted(e.name.replace("-", "_") for e in registry().values()) == declared


def _assigned(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def test_no_import_circle_in_the_house():
    assert _circles(_graph(*FLOORS, "bench")) == []


def test_the_circle_finder_finds_a_circle_of_three_and_a_module_importing_itself():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"a"}, "b": set()}) == [["a"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_import_checker_sees_a_deferred_import_inside_a_function(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from experiments.figures import capacity\n    return capacity\n")
    assert {"experiments.figures", "experiments.figures.capacity"} <= _imported(bad)


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_the_budget_but_the_named_exceptions():
    long = {
        f"{p.relative_to(ROOT)}:{name}": n
        for p in _sources(*FLOORS, "bench")
        for name, n in _functions(p)
        if n > MAX_FUNCTION_LINES
    }
    assert {k: n for k, n in long.items() if k not in LONG_FUNCTIONS} == {}
    assert set(LONG_FUNCTIONS) <= set(long)  # an exception that is no longer one is taken off the list


def test_no_line_is_kept_from_the_formatter():
    packed = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in _sources(*FLOORS, "bench", "tests")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if line.rstrip().endswith("# fmt: " + "skip")
    ]
    assert packed == []


def _classes(packages=PACKAGES):
    for path in _sources(*packages):
        if path.name == "__main__.py":
            continue
        module = importlib.import_module(_module_name(path))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_every_lightning_module_and_datamodule_lives_in_its_layer_and_keeps_the_contract():
    classes = list(_classes())
    modules = [c for c in classes if issubclass(c, L.LightningModule)]
    datamodules = [c for c in classes if issubclass(c, L.LightningDataModule)]
    assert len(modules) >= 9 and len(datamodules) >= 9  # the checker found the suite's classes
    assert [c.__qualname__ for c in modules if not c.__module__.startswith("lightning_modules.")] == []
    assert [c.__qualname__ for c in datamodules if not c.__module__.startswith("datamodules.")] == []
    # every one of them goes through the base class the runner depends on
    assert [c.__qualname__ for c in modules if not issubclass(c, RecordedModule)] == []
    assert [c.__qualname__ for c in datamodules if not issubclass(c, RecordedDataModule)] == []
    # a network is a plain nn.Module in lightning_modules/nets/, never inside a LightningModule's file
    nets = [c for c in _classes(("lightning_modules",)) if issubclass(c, torch.nn.Module) and c not in modules]
    nets = [c for c in nets if not issubclass(c, torchmetrics.Metric)]  # metrics are modules too, not networks
    assert [c.__qualname__ for c in nets if not c.__module__.startswith("lightning_modules.nets.")] == []


# ----------------------------------------------------------------------------- every run resolves
def test_every_run_of_every_profile_resolves_to_a_valid_config_that_builds():
    count = 0
    for name, exp in registry().items():
        for profile in exp.profiles:
            assert (
                profile.seeds >= 1
                and profile.variants is None
                or set(profile.variants) <= {v.name for v in exp.variants}
            ), f"{name}/{profile.name} names a variant that does not exist"
            for variant in exp.variant_names(profile.name):
                cfg = exp.resolve(variant, profile.name)
                # its config survives the text round trip the records and the identity check rely on
                again = config_from_dict(exp.config(), yaml.safe_load(yaml.safe_dump(config_to_dict(cfg))))
                assert again == cfg, f"{name}/{profile.name}/{variant}"
                count += 1
        # one run per experiment builds its module and datamodule (the quick profile's first variant)
        quick = next((p.name for p in exp.profiles if p.name == "quick"), exp.profiles[0].name)
        module, datamodule = exp.build(exp.resolve(exp.variant_names(quick)[0], quick), 0)
        assert isinstance(module, RecordedModule) and isinstance(datamodule, RecordedDataModule), name
    assert count > 200  # every profile of every experiment was walked


def test_a_bad_variant_list_in_a_profile_would_be_caught():
    exp = registry()["augmentation"]
    assert "no-such-variant" not in {v.name for v in exp.variants}
    with pytest.raises(ReproError, match="unknown variant"):
        exp.resolve("no-such-variant", "quick")


# ----------------------------------------------------------------------------- clipping under mixed precision
class _Clipped(RecordedModule):
    """One linear layer trained by hand, clipping at ``limit``: it keeps the norm the helper returned, the
    norm of the gradients it was handed and the norm after clipping."""

    def __init__(self, limit: float):
        super().__init__()
        self.automatic_optimization = False
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(16, 1)
        self.limit, self.seen = limit, []

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(((self.lin(x) - y) ** 2).mean() * 100)
        before = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.parameters()]))
        returned = self.clip_gradient_norm(opt, self.limit)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in self.parameters()]))
        self.seen.append((float(returned), float(before), float(after)))
        opt.step()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=1e-3)

    def summary(self):
        return {}


def _fit(module, **trainer_kw):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 16, generator=g), torch.randn(24, 1, generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kw,
    )
    trainer.fit(module, loader)
    return module.seen


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_clipping_helper_returns_the_true_norm_and_clips_to_the_limit(precision):
    seen = _fit(_Clipped(limit=0.5), precision=precision)
    assert len(seen) == 3
    for returned, before, after in seen:
        assert before > 0.5  # the limit binds (a loss scaled by 100)
        assert returned == pytest.approx(before, rel=1e-6) and after == pytest.approx(0.5, rel=1e-4)


def test_a_loss_scale_under_manual_optimization_is_refused_in_one_line():
    """fp16 mixed precision multiplies the gradients a hand-written step sees by the loss scale; Lightning
    itself turns 16-mixed into bf16-mixed on the CPU, so the plugin is built by hand here."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaled = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    with pytest.raises(ReproError, match="use --precision bf16-mixed or 32"):
        _fit(_Clipped(limit=0.5), plugins=[scaled])
