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

from datamodules.base import RecordedDataModule
from datamodules.errors import ReproError
from experiments import registry
from experiments.config import config_from_dict, config_to_dict
from lightning_modules.base import RecordedModule

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datamodules", "lightning_modules", "experiments")
MAX_LINES = 400


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


# ----------------------------------------------------------------------------- layers
def test_the_lower_layers_never_import_the_experiments():
    offenders = {
        _module_name(p): sorted(n for n in _imported(p) if n == "experiments" or n.startswith("experiments."))
        for p in _sources("datamodules", "lightning_modules")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_import_checker_sees_a_deferred_import_inside_a_function(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from experiments.spec import Results\n    return Results\n")
    assert "experiments.spec" in _imported(bad)


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


def test_no_source_file_is_longer_than_the_limit():
    lines = {_module_name(p): len(p.read_text().splitlines()) for p in _sources(*PACKAGES)}
    assert {k: n for k, n in lines.items() if n > MAX_LINES} == {}


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
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, **trainer_kw)  # fmt: skip
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
