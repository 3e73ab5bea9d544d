"""The compiled training path (``train.compile``): the same networks, checkpoints and numbers as the eager one.

On a GPU it is the fast path of the paper-scale profiles (CUDA graphs, a fused optimizer step, no host syncs
inside an epoch: ``bench/compile_speed.py`` measures it); here, on a CPU, it is checked for what must not change.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import statistics
from pathlib import Path

import pytest
import torch
from torchmetrics import MeanMetric

from base.errors import ReproError
from datamodules.augment import augment
from datamodules.configs import AUGMENTATIONS
from engine.cli import main
from engine.config import config_to_dict
from engine.records import committed_records
from engine.registry import get
from lightning_modules.base import DeviceMean, RecordedModule

SMOKE = ["--profile", "smoke", "--wandb", "off"]


def test_a_field_added_at_its_default_leaves_every_committed_identity_as_it_was(monkeypatch):
    # train.compile came after these runs: at its default ("": eager) it is left out of the config's dict, so a
    # committed record's config is still exactly what its profile resolves to, and its run folder resumes
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(Path(__file__).resolve().parents[1] / "results"))
    exp = get("capacity")
    records = committed_records("capacity", "pilot")  # the runs of the quick table before 2026-12-06
    assert records
    for (variant, _seed), record in records.items():
        now = config_to_dict(exp.resolve(variant, "pilot", record.get("sets") or {}))
        assert now == record["config"] and "compile" not in now["train"]
    compiled = exp.resolve(next(iter(records))[0], "pilot", {"train.compile": "reduce-overhead"})
    assert config_to_dict(compiled)["train"]["compile"] == "reduce-overhead"  # a compiled run says so


def test_an_unknown_compile_mode_is_one_line_and_exit_2(data_env, capsys):
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--set", "train.compile=fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "compile must be one of" in err and "Traceback" not in err


def test_compiling_keeps_the_parameters_the_checkpoint_keys_and_the_outputs():
    exp = get("capacity")
    cfg = exp.resolve(exp.variant_names("smoke")[0], "smoke")
    torch.manual_seed(0)
    module, _ = exp.build(cfg, 0)
    eager = copy.deepcopy(module)
    module.compile_net("default")
    assert module.compiled == "default" and not eager.compiled
    assert list(module.state_dict()) == list(eager.state_dict())  # checkpoints move between the two paths
    x = torch.randn(16, 1, 28, 28)
    module.eval(), eager.eval()
    with torch.no_grad():
        out, ref = module(x), eager(x)
    assert out.shape == ref.shape and torch.allclose(out, ref, atol=1e-5)
    assert module.syncs_each_step  # on a CPU the per-step loss checks stay: they cost nothing there


def test_a_module_without_a_network_refuses_to_compile():
    with pytest.raises(ReproError, match="no network"):
        RecordedModule().compile_net("default")


@contextlib.contextmanager
def no_host_reads():
    """Every way Python reads a tensor's value (what waits for a GPU) raises inside this block."""
    names = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist")
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def read(self, *args, **kwargs):
        raise AssertionError("a tensor was read back to the host")

    try:
        for n in names:
            setattr(torch.Tensor, n, read)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


def test_the_epoch_mean_reads_nothing_back_keeps_the_weights_and_keeps_a_nan():
    values, weights = [1.5, 2.0, 4.0], [8, 8, 3]
    ours, theirs = DeviceMean(), MeanMetric()
    with no_host_reads():
        for v, w in zip(values, weights, strict=True):
            ours.update(torch.tensor(v), weight=w)
        with pytest.raises(AssertionError, match="read back"):  # torchmetrics' NaN check reads every update
            theirs.update(torch.tensor(1.0), weight=1)
    for v, w in zip(values, weights, strict=True):
        theirs.update(torch.tensor(v), weight=w)
    assert float(ours.compute()) == float(theirs.compute()) == pytest.approx(40 / 19)
    ours.update(torch.tensor(math.nan), weight=8)
    theirs.update(torch.tensor(math.nan), weight=8)
    assert math.isnan(float(ours.compute()))  # a NaN step makes the epoch's loss NaN: end_epoch marks divergence
    assert math.isfinite(float(theirs.compute()))  # torchmetrics drops it


def test_a_training_step_without_per_step_syncs_reads_nothing_back(monkeypatch):
    # the compiled path on a GPU: the batch is augmented and the step's loss and accuracy summed on the device,
    # read once per epoch
    monkeypatch.setattr(RecordedModule, "syncs_each_step", property(lambda self: False))
    exp = get("resnet-ablation")
    module, _ = exp.build(exp.resolve(exp.variant_names("smoke")[0], "smoke"), 0)
    images, y = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 10
    with no_host_reads():
        x = augment(images, AUGMENTATIONS, torch.Generator().manual_seed(0))  # every augmentation, batched
        loss = module.training_step((x, y), 0)
    assert loss.shape == () and float(module.metrics["train_loss"].compute()) == pytest.approx(float(loss))
    assert 0 <= float(module.metrics["train_acc"].compute()) <= 1


@pytest.mark.slow
def test_compiled_training_matches_eager_within_seed_noise(data_env, monkeypatch, tmp_path):
    # 3 seeds each of a short schedule: the compiled kernels add in another order, so the runs part in their last
    # bits and drift apart a little; the test errors must agree within the spread between seeds
    def test_errors(mode: str) -> list[float]:
        monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / f"runs-{mode or 'eager'}"))
        sets = ["--set", f"train.compile={mode}"] if mode else []
        assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--seeds", "3", "--no-report", *sets]) == 0
        out = []
        for seed in range(3):
            path = (
                tmp_path / f"runs-{mode or 'eager'}" / "augmentation" / "smoke" / "none" / f"seed{seed}" / "record.json"
            )
            record = json.loads(path.read_text())
            assert record["config"]["train"].get("compile", "") == mode  # the record says how it was trained
            out.append(record["metrics"]["test_error"])
        return out

    eager, compiled = test_errors(""), test_errors("default")
    spread = max(statistics.stdev(eager), statistics.stdev(compiled), 0.01)
    assert abs(statistics.mean(compiled) - statistics.mean(eager)) <= 2 * spread
    assert all(abs(a - b) <= 0.1 for a, b in zip(eager, compiled, strict=True))


def test_the_bench_counts_sync_warnings_and_passes_other_warnings_on(monkeypatch):
    import importlib.util
    import warnings

    bench_dir = Path(__file__).parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench_dir))  # its own folder, as when it runs as a script
    spec = importlib.util.spec_from_file_location("compile_speed", bench_dir / "compile_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    timer = bench._Timer(count_syncs=True)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        before = warnings.showwarning
        with bench.counting_syncs(timer):
            for _ in range(3):  # what torch warns under set_sync_debug_mode("warn")
                warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
        assert warnings.showwarning is before  # put back as it was
    assert timer.syncs == 3 and [str(w.message) for w in seen] == ["something else"]
