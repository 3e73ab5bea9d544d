"""The capacity experiment: variants resolve to the stated sizes, widths and step budgets; parameter
counts by hand; the claims decide from paired seeds; a smoke run end to end."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.batches import ResidentBatches
from engine.registry import get
from engine.spec import Results
from experiments.capacity import epochs_for, mlp_params, steps_per_epoch, training_images
from experiments.common import build_mlp
from tests.conftest import repro


def test_parameter_count_by_hand():
    # 784-8-10: 784*8 weights + 8 biases, then 8*10 weights + 10 biases
    assert mlp_params(8) == 6272 + 8 + 80 + 10 == 6370
    exp = get("capacity")
    for w in (8, 32, 128, 512):
        cfg = exp.resolve(f"width-{w}", "quick")
        assert sum(p.numel() for p in build_mlp(cfg).parameters()) == mlp_params(w) == 795 * w + 10


def test_variants_resolve_to_the_stated_sizes_widths_and_step_budget():
    exp = get("capacity")
    for n in (500, 2000, 5000, 10_000):
        cfg = exp.resolve(f"n-{n}", "quick")
        assert cfg.data.train_size == n and cfg.model.hidden == (256,) and cfg.data.batch_size == 64
        # the same 1,000-step budget for every n: 500 images make 7 batches of 64 per epoch -> 143 epochs
        assert cfg.train.max_epochs == -(-1000 // (n // 64))
        assert 1000 <= cfg.train.max_epochs * (n // 64) < 1000 + n // 64
    assert exp.resolve("n-500", "quick").train.max_epochs == 143
    assert exp.resolve("n-10000", "quick").train.max_epochs == 7  # 156 steps per epoch
    for w in (8, 32, 128, 512):
        cfg = exp.resolve(f"width-{w}", "quick")
        assert cfg.model.hidden == (w,) and cfg.data.train_size == 2000 and cfg.train.max_epochs == 33  # 31 / epoch
    full = exp.resolve("n-all", "full")
    assert training_images(full.data) == 50_000 and full.train.max_epochs == 26  # 390 steps of 128 per epoch
    assert exp.resolve("width-2048", "full").model.hidden == (2048,)
    # the command line's max_epochs wins over the budget; a budget of 0 leaves max_epochs alone
    assert exp.resolve("n-500", "quick", {"train.max_epochs": "1"}).train.max_epochs == 1
    assert exp.resolve("n-500", "quick", {"budget.steps": "0"}).train.max_epochs == 50  # the MLP default


@pytest.mark.parametrize("n", [10, 63, 64, 65, 500, 2000])
def test_steps_per_epoch_matches_the_data_loader(n):
    batches = ResidentBatches(torch.zeros(n, 1), torch.zeros(n), batch_size=64, shuffle=True)
    assert len(batches) == len(list(batches)) == steps_per_epoch(n, 64)
    assert epochs_for(100, n, 64) * steps_per_epoch(n, 64) >= 100 > (epochs_for(100, n, 64) - 1) * len(batches)


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_compare_the_smallest_and_largest_present_variants():
    gap, _, train_n, train_width, widest = get("capacity").claims
    r = results(
        **{
            "n-500": {"gen_error": [0.12, 0.13, 0.125], "test_error": [0.12, 0.13, 0.125], "train_error": [0, 0, 0]},
            "n-2000": {"gen_error": [0.5, 0.5, 0.5], "test_error": [0.5, 0.5, 0.5]},  # middle: ignored
            "n-10000": {
                "gen_error": [0.03, 0.035, 0.031],
                "test_error": [0.04, 0.045, 0.04],
                "train_error": [0.0] * 3,
            },
        }
    )
    assert gap.check(r).status == "supported" and "n-500 minus n-10000" in gap.check(r).statistic
    assert train_n.check(r).status == "inconclusive"  # both fit their sets perfectly: no difference
    r.values["n-10000"]["train_error"] = {0: 0.01, 1: 0.012, 2: 0.02}
    assert train_n.check(r).status == "supported"
    # every step of the width sweep must lower the training loss (on a log scale: 1e-1, 1e-2, ... is steady progress)
    losses = {
        "width-8": [0.3, 0.35, 0.32],
        "width-32": [0.03, 0.04, 0.035],
        "width-128": [3e-3, 4e-3, 3.5e-3],
        "width-512": [4e-4, 5e-4, 4.5e-4],
    }
    w = results(**{k: {"train_loss": v} for k, v in losses.items()})
    assert train_width.check(w).status == "supported"
    losses["width-512"] = [5e-3, 6e-3, 5.5e-3]  # the widest net fits worse than width 128: one step fails
    w = results(**{k: {"train_loss": v} for k, v in losses.items()})
    assert train_width.check(w).status == "contradicted"
    del losses["width-32"]  # a missing width leaves its two steps undecided, never skipped over
    assert train_width.check(results(**{k: {"train_loss": v} for k, v in losses.items()})).status != "supported"
    assert widest.check(results()).status == "inconclusive"
    u = results(**{"width-128": {"test_error": [0.05, 0.05, 0.05]}, "width-512": {"test_error": [0.06, 0.07, 0.065]}})
    assert widest.check(u).status == "supported" and "width-512 minus width-128" in widest.check(u).statistic


def test_smoke_run_records_parameters_steps_and_the_gap(data_env):
    result = repro("run", "capacity", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant, width in (("n-500", 32), ("width-8", 8), ("width-128", 128)):
        rec = json.loads(open(f"{runs}/capacity/smoke/{variant}/seed0/record.json").read())
        m = rec["metrics"]
        assert m["params_k"] * 1000 == pytest.approx(mlp_params(width)) and rec["provenance"]["params"] == mlp_params(
            width
        )
        assert m["gen_error"] == pytest.approx(m["test_error"] - m["train_error"])
        # the 20-step budget: whole epochs of full batches of 64
        per_epoch = rec["provenance"]["data"]["train"] // 64
        assert m["steps"] == rec["provenance"]["steps"] == m["epochs"] * per_epoch and 20 <= m["steps"] < 20 + per_epoch
    md = open(f"{data_env['REPRO_RUNS_DIR']}/capacity/smoke/report/capacity-smoke.md").read()
    assert "generalization gap" in md and "params (k)" in md and "capacity-smoke.png" in md
