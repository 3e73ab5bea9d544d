"""Batch size and batch normalization: the tuned learning rates in the resolved configs, the steps per epoch,
FixedStatsNorm on an exact small case, the batch dependence that separates the two normalizations, the claims,
and a smoke run through the CLI."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn as nn

from datamodules.batches import ResidentBatches
from engine.registry import get
from engine.spec import Results
from experiments.batch_size import EPOCHS_LARGE, LR_BN, LR_LARGE, LR_SMALL
from lightning_modules.configs import MLPConfig
from lightning_modules.nets.mlp import MLP, FixedStatsNorm
from tests.conftest import repro

VARIANTS = ("batch-32", "batch-1024", "batch-1024-same-lr", "bn-batch", "bn-fixed")


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_each_variant_resolves_to_its_batch_size_lr_and_normalization(profile):
    """Keskar et al.'s protocol: the variants differ in batch size, lr and normalization, and batch 1024 in its
    epochs (it trains until it fits, too); every one trains the same net on the same data with the same schedule."""
    exp = get("batch-size")
    cfgs = {v: exp.resolve(v, profile) for v in VARIANTS}
    got = {v: (c.data.batch_size, c.optim.lr, c.model.batch_norm) for v, c in cfgs.items()}
    assert got == {
        "batch-32": (32, LR_SMALL, ""),
        "batch-1024": (1024, LR_LARGE, ""),
        "batch-1024-same-lr": (1024, LR_SMALL, ""),
        "bn-batch": (32, LR_BN, "batch"),
        "bn-fixed": (32, LR_BN, "fixed"),
    }
    base = cfgs["batch-32"]
    assert cfgs["batch-1024"].train.max_epochs == EPOCHS_LARGE
    for c in cfgs.values():
        c.train.max_epochs = base.train.max_epochs  # (checked above)
        assert (c.model.hidden, c.train, c.optim.schedule, c.optim.warmup, c.optim.momentum, c.optim.weight_decay) == (
            base.model.hidden,
            base.train,
            base.optim.schedule,
            base.optim.warmup,
            base.optim.momentum,
            base.optim.weight_decay,
        )
        assert (c.data.train_size, c.data.test_size, c.data.train_eval_size) == (
            base.data.train_size,
            base.data.test_size,
            base.data.train_eval_size,
        )


def test_quick_profile_runs_ten_seeds_of_every_variant_two_at_a_time():
    quick = get("batch-size").profile("quick")
    assert quick.seeds == 10 and quick.cpu_jobs == 2 and quick.overrides["train.threads"] == 1
    assert get("batch-size").variant_names("quick") == list(VARIANTS)
    assert "10 seeds" in quick.power and "sd" in quick.power  # sized from a measured spread, written down


def test_steps_per_epoch_in_the_quick_profile():
    """4,096 training images: 128 steps of 32, or 4 steps of 1024, and every image is used each epoch."""
    exp = get("batch-size")
    n = exp.resolve("batch-32", "quick").data.train_size
    assert n == 4096
    x, y = torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.arange(n)
    for variant, steps in (("batch-32", 128), ("batch-1024", 4), ("bn-fixed", 128)):
        b = exp.resolve(variant, "quick").data.batch_size
        batches = list(ResidentBatches(x, y, batch_size=b, shuffle=True))
        assert len(batches) == steps and all(len(by) == b for _, by in batches)
        assert sorted(torch.cat([by for _, by in batches]).tolist()) == list(range(n))


# ----------------------------------------------------------------------------- the two normalizations
def test_fixed_stats_norm_normalizes_with_its_stored_statistics_while_training():
    """(x - stored mean) / sqrt(stored var) * scale + shift, with the statistics stored before the batch; then the
    batch's mean and unbiased variance are folded in with momentum 0.1; the gradient ignores the statistics."""
    norm = FixedStatsNorm(2, eps=0.0).train()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([1.0, 2.0]))
        norm.running_var.copy_(torch.tensor([4.0, 9.0]))
        norm.weight.copy_(torch.tensor([2.0, 1.0]))
        norm.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.tensor([[3.0, 5.0], [1.0, -1.0]], requires_grad=True)
    y = norm(x)
    assert torch.allclose(
        y, torch.tensor([[2.0, 2.0], [0.0, 0.0]]), atol=1e-6
    )  # (3-1)/2*2, (5-2)/3+1; (1-1)/2*2, (-1-2)/3+1
    # the batch: mean (2, 2), unbiased variance (2, 18)
    assert torch.allclose(norm.running_mean, torch.tensor([1.1, 2.0]))
    assert torch.allclose(norm.running_var, torch.tensor([3.8, 9.9]))
    assert int(norm.num_batches_tracked) == 1
    y.sum().backward()
    assert torch.allclose(x.grad, torch.tensor([[1.0, 1 / 3], [1.0, 1 / 3]]))  # scale / sqrt(var): no batch terms
    # BatchNorm1d on the same batch normalizes with the batch's own statistics instead
    bn = nn.BatchNorm1d(2, eps=1e-9).train()  # (its eps must be > 0 while training)
    assert torch.allclose(bn(x.detach()), torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))


def test_fixed_stats_norm_is_batch_norm_in_evaluation_mode():
    torch.manual_seed(0)
    fixed, bn = FixedStatsNorm(5).eval(), nn.BatchNorm1d(5).eval()
    with torch.no_grad():
        for m in (fixed, bn):
            m.running_mean.copy_(torch.arange(5.0))
            m.running_var.copy_(torch.arange(1.0, 6.0))
            m.weight.copy_(torch.linspace(0.5, 2, 5))
            m.bias.copy_(torch.linspace(-1, 1, 5))
    x = torch.randn(7, 5)
    assert torch.equal(fixed(x), bn(x))


def _nets(seed: int = 0) -> dict[str, MLP]:
    out = {}
    for kind in ("batch", "fixed"):
        torch.manual_seed(seed)
        out[kind] = MLP(MLPConfig(hidden=(16, 16), batch_norm=kind), in_features=12, num_classes=3)
    return out


def test_both_normalizations_have_the_same_parameters_and_initial_weights():
    """A fair comparison: the same tensors (names, shapes, initial values) and the same function in eval mode."""
    nets = _nets()
    a, b = nets["batch"].state_dict(), nets["fixed"].state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(9, 12)
    assert torch.equal(nets["batch"].eval()(x), nets["fixed"].eval()(x))


def test_only_batch_statistics_make_an_example_depend_on_its_batch():
    """While training, the first example's output changes with the other examples of its batch under bn-batch,
    and is bit for bit the same under bn-fixed (the counter-example the claim is about)."""
    g = torch.Generator().manual_seed(1)
    first = torch.randn(1, 12, generator=g)
    batches = [torch.cat([first, torch.randn(7, 12, generator=g) * scale]) for scale in (1.0, 3.0)]
    for kind, net in _nets().items():
        outs = [copy.deepcopy(net).train()(batch)[0] for batch in batches]  # fresh statistics for each batch
        if kind == "batch":
            assert (outs[0] - outs[1]).abs().max() > 1e-2
        else:
            assert torch.equal(outs[0], outs[1])


# ----------------------------------------------------------------------------- claims
def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims():
    exp = get("batch-size")
    fits, tests_worse, underfits, _ = exp.claims
    r = results(
        **{
            "batch-32": {"train_error": [0.0, 0.0, 0.0], "test_error": [0.05, 0.051, 0.049]},
            "batch-1024": {"train_error": [0.0, 0.0, 0.0], "test_error": [0.06, 0.062, 0.061]},
        }
    )
    assert fits.check(r).status == "supported"  # a tie on every seed: "at least as well"
    assert tests_worse.check(r).status == "supported"
    higher = results(
        **{"batch-32": {"train_error": [0.01, 0.0, 0.01]}, "batch-1024": {"train_error": [0.03, 0.02, 0.03]}}
    )
    assert fits.check(higher).status == "contradicted"
    # the fit claim's margin is a tenth of a point: the 30-epoch batch 1024 of the table until 2026-12-06, short of
    # fitting by +0.16 pts, cannot pass it
    undertrained = results(
        **{"batch-32": {"train_error": [0.0, 0.0, 0.0]}, "batch-1024": {"train_error": [0.0012, 0.0029, 0.0007]}}
    )
    assert fits.check(undertrained).status != "supported"
    same = results(
        **{"batch-32": {"train_error": [0.0, 0.0, 0.0]}, "batch-1024-same-lr": {"train_error": [0.1, 0.12, 0.11]}}
    )
    assert underfits.check(same).status == "supported"


def test_the_batch_norm_claim_is_decided_by_test_error_paired_by_seed():
    bn = get("batch-size").claims[3]
    helps = results(
        **{"bn-batch": {"test_error": [0.043, 0.045, 0.044]}, "bn-fixed": {"test_error": [0.05, 0.052, 0.049]}}
    )
    assert bn.check(helps).status == "supported"
    hurts = results(
        **{"bn-batch": {"test_error": [0.05, 0.052, 0.049]}, "bn-fixed": {"test_error": [0.043, 0.045, 0.044]}}
    )
    assert bn.check(hurts).status == "contradicted"
    # a lower training error alone decides nothing; neither do two seeds
    assert (
        bn.check(results(**{"bn-batch": {"train_error": [0, 0, 0]}, "bn-fixed": {"train_error": [1, 1, 1]}})).status
        == "inconclusive"
    )
    two = results(**{"bn-batch": {"test_error": [0.04, 0.04]}, "bn-fixed": {"test_error": [0.05, 0.05]}})
    assert bn.check(two).status == "inconclusive"


def test_smoke_run_counts_the_steps(data_env):
    result = repro("run", "batch-size", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    # 256 training images, 2 epochs: 8 steps of 32 per epoch; batch 1024 is one batch of all 256 images
    # the lr the optimizer holds after epoch 1 of 2 (step 8 of 16 for batch 32, 1 of 2 for batch 1024): the 5%
    # warm-up is round(0.05 * 16) = 1 step for batch 32 (none for 1024), then cosine over the remaining steps
    at_32 = 0.5 * (1 + math.cos(math.pi * 7 / 15))
    expected = {
        "batch-32": (8, at_32 * LR_SMALL),
        "batch-1024-same-lr": (1, 0.5 * LR_SMALL),
        "bn-batch": (8, at_32 * LR_BN),
        "bn-fixed": (8, at_32 * LR_BN),
    }
    for variant, (per_epoch, lr) in expected.items():
        rec = json.loads(open(f"{runs}/batch-size/smoke/{variant}/seed0/record.json").read())
        m = rec["metrics"]
        assert m["steps_per_epoch"] == per_epoch and m["steps"] == 2 * per_epoch
        assert m["gen_error"] == pytest.approx(m["test_error"] - m["train_error"])
        assert rec["history"][0]["lr"] == pytest.approx(lr)
    report = f"{runs}/batch-size/smoke/report"
    md = open(f"{report}/batch-size-smoke.md").read()
    assert "at the expense of test error" in md and "steps / epoch" in md and "also regularizes" in md
    assert open(f"{report}/batch-size-smoke.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
