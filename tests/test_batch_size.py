"""Batch size: the learning-rate scaling rule in the resolved configs, the steps per epoch, the claims, and a
smoke run through the CLI."""

from __future__ import annotations

import json
import math

import pytest

from datamodules.batches import ResidentBatches
from experiments import get
from experiments.batch_size import linear_scaled_lr
from experiments.spec import Results
from tests.conftest import repro


def test_linear_scaling_rule():
    assert linear_scaled_lr(256) == pytest.approx(0.05)  # the reference: 0.05 per 256 images
    assert linear_scaled_lr(32) == pytest.approx(0.00625)
    assert linear_scaled_lr(1024) == pytest.approx(0.2)
    assert linear_scaled_lr(64, base_lr=0.2, base_batch=128) == pytest.approx(0.1)


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_each_variant_resolves_to_its_batch_size_and_lr(profile):
    """The variants override the profile: every profile trains at the stated (batch, lr) pairs, and nothing
    else differs between the variants."""
    exp = get("batch-size")
    cfgs = {v: exp.resolve(v, profile) for v in ("batch-32", "batch-1024", "batch-1024-same-lr")}
    got = {v: (c.data.batch_size, c.optim.lr) for v, c in cfgs.items()}
    assert got == {
        "batch-32": (32, pytest.approx(0.00625)),
        "batch-1024": (1024, pytest.approx(0.2)),  # 32x the batch, 32x the lr
        "batch-1024-same-lr": (1024, pytest.approx(0.00625)),
    }
    base = cfgs["batch-32"]
    for c in cfgs.values():
        assert (c.model, c.train, c.optim.schedule, c.optim.warmup, c.optim.momentum, c.optim.weight_decay) == (
            base.model, base.train, base.optim.schedule, base.optim.warmup, base.optim.momentum,
            base.optim.weight_decay,
        )  # fmt: skip
        assert (c.data.train_size, c.data.test_size, c.data.train_eval_size) == (
            base.data.train_size, base.data.test_size, base.data.train_eval_size,
        )  # fmt: skip


def test_steps_per_epoch_in_the_quick_profile():
    """4,096 training images: 128 steps of 32, or 4 steps of 1024, and every image is used each epoch."""
    import torch

    exp = get("batch-size")
    n = exp.resolve("batch-32", "quick").data.train_size
    assert n == 4096
    x, y = torch.zeros(n, 1, 1, 1, dtype=torch.uint8), torch.arange(n)
    for variant, steps in (("batch-32", 128), ("batch-1024", 4)):
        b = exp.resolve(variant, "quick").data.batch_size
        batches = list(ResidentBatches(x, y, batch_size=b, shuffle=True))
        assert len(batches) == steps and all(len(by) == b for _, by in batches)
        assert sorted(torch.cat([by for _, by in batches]).tolist()) == list(range(n))


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims():
    exp = get("batch-size")
    fits, tests_worse, gap, underfits = exp.claims
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
    lower = results(
        **{
            "batch-32": {"gen_error": [0.05, 0.06, 0.05]},
            "batch-1024": {"gen_error": [0.04, 0.045, 0.04]},
        }
    )
    assert gap.check(lower).status == "contradicted"
    same = results(
        **{"batch-32": {"train_error": [0.0, 0.0, 0.0]}, "batch-1024-same-lr": {"train_error": [0.1, 0.12, 0.11]}}
    )
    assert underfits.check(same).status == "supported"


def test_smoke_run_counts_the_steps(data_env):
    result = repro("run", "batch-size", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    # 256 training images, 2 epochs: 8 steps of 32 per epoch; batch 1024 is one batch of all 256 images
    # the lr the optimizer holds after epoch 1 of 2 (step 8 of 16 for batch 32, 1 of 2 for batch 1024): the 5%
    # warm-up is round(0.05 * 16) = 1 step for batch 32 (none for 1024), then cosine over the remaining steps
    cosine_at = {"batch-32": 0.5 * (1 + math.cos(math.pi * 7 / 15)), "batch-1024": 0.5}
    for variant, per_epoch, lr in (("batch-32", 8, 0.00625), ("batch-1024", 1, 0.2)):
        rec = json.loads(open(f"{runs}/batch-size/smoke/{variant}/seed0/record.json").read())
        m = rec["metrics"]
        assert m["steps_per_epoch"] == per_epoch and m["steps"] == 2 * per_epoch
        assert m["gen_error"] == pytest.approx(m["test_error"] - m["train_error"])
        assert rec["history"][0]["lr"] == pytest.approx(cosine_at[variant] * lr)
    md = open(f"{data_env['REPRO_RUNS_DIR']}/batch-size/smoke/report/batch-size-smoke.md").read()
    assert "tests worse" in md and "steps / epoch" in md
