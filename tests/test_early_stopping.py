"""Early stopping: the offline stopping rules on hand-made curves (exact epochs), the claims, and a smoke run."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.images import NoisyLabelDataModule, corrupt_labels
from experiments import get
from experiments.spec import ReproError, Results
from lightning_modules.early_stopping import best_epoch, patience_stop, stopping_metrics
from tests.conftest import repro

# epochs 1..10: best 0.30 at epoch 4, a near miss (0.31) at 6, a new best 0.29 at epoch 8
VAL = [0.50, 0.40, 0.35, 0.30, 0.33, 0.31, 0.32, 0.29, 0.34, 0.36]


def test_patience_rule_stops_exactly_p_epochs_after_the_last_improvement():
    # P=2: no improvement at epochs 5 and 6 -> stops after epoch 6, keeps epoch 4
    assert patience_stop(VAL, 2) == (6, 4)
    # P=3: epochs 5, 6, 7 without improvement -> stops at 7, before the later best at 8
    assert patience_stop(VAL, 3) == (7, 4)
    # P=4: epoch 8 improves in time; then 9 and 10 only: never fires, stops at the end with the best epoch
    assert patience_stop(VAL, 4) == (10, 8)
    # P=1 stops at the first epoch that fails to improve
    assert patience_stop(VAL, 1) == (5, 4)


def test_patience_rule_needs_a_strict_improvement_and_ties_keep_the_first_epoch():
    flat = [0.5, 0.4, 0.4, 0.4, 0.4]
    assert patience_stop(flat, 2) == (4, 2)  # equal is not better
    assert best_epoch(flat) == 2
    assert patience_stop([0.3], 5) == (1, 1)
    with pytest.raises(ValueError):
        patience_stop(VAL, 0)


def test_stopping_metrics_read_the_test_error_at_the_kept_epoch():
    test = [0.45, 0.38, 0.33, 0.28, 0.30, 0.29, 0.31, 0.30, 0.33, 0.35]
    history = [
        {"val_error": v, "test_error": t, "val_loss": 1 + e, "test_loss": 2 + e}  # losses rise from epoch 1
        for e, (v, t) in enumerate(zip(VAL, test, strict=True))
    ]
    m = stopping_metrics(history, (2, 3, 4))
    assert m["best_val_epoch"] == 8 and m["best_val_test_error"] == 0.30
    assert m["end_test_error"] == 0.35
    assert m["min_test_error"] == 0.28 and m["best_test_epoch"] == 4
    assert m["val_choice_extra_error"] == pytest.approx(0.02)
    assert (m["stop_epoch_p2"], m["kept_epoch_p2"], m["p2_test_error"]) == (6, 4, 0.28)
    assert (m["stop_epoch_p3"], m["p3_test_error"], m["epochs_saved_p3"]) == (7, 0.28, 3)
    assert (m["stop_epoch_p4"], m["kept_epoch_p4"], m["p4_test_error"]) == (10, 8, 0.30)
    assert m["best_val_loss_epoch"] == 1 and m["test_loss_at_best_val_loss"] == 2 and m["test_loss_end"] == 11
    assert -1 <= m["val_test_corr"] <= 1
    assert "val_b_end_error" not in m  # no validation halves recorded


def test_the_rise_after_the_minimum_is_measured_on_the_other_half_of_the_validation_set():
    # half a bottoms out at epoch 3; half b, which chose nothing, is read there and at the end
    a = [0.5, 0.4, 0.3, 0.35, 0.4]
    b = [0.52, 0.41, 0.33, 0.3, 0.45]
    history = [{"val_error": (x + y) / 2, "val_a_error": x, "val_b_error": y, "test_error": y, "val_loss": 1,
                "test_loss": 1} for x, y in zip(a, b, strict=True)]  # fmt: skip
    m = stopping_metrics(history, (2,))
    assert m["best_val_a_epoch"] == 3 and m["val_b_at_best_a_error"] == 0.33 and m["val_b_end_error"] == 0.45
    rise = next(c for c in get("early-stopping").claims if "rises again" in c.statement and "clean" in c.statement)
    runs = {"val_b_at_best_a_error": [0.33, 0.32, 0.34], "val_b_end_error": [0.45, 0.43, 0.46]}
    assert rise.check(results(mlp=runs)).status == "supported"
    # a curve that ends at its minimum is measured as no rise, not as a rise (the old test was >= 0 always)
    flat = {"val_b_at_best_a_error": [0.33, 0.32, 0.34], "val_b_end_error": [0.32, 0.315, 0.33]}
    assert rise.check(results(mlp=flat)).status == "contradicted"


def test_corrupt_labels_changes_exactly_the_fraction_to_other_classes():
    y = torch.arange(1000) % 10
    noisy = corrupt_labels(y, 0.2, 10, seed=3)
    changed = noisy != y
    assert int(changed.sum()) == 200  # exactly 20%, each to a different class
    assert noisy.min() >= 0 and noisy.max() <= 9 and torch.equal(y, torch.arange(1000) % 10)  # input untouched
    assert torch.equal(noisy, corrupt_labels(y, 0.2, 10, seed=3))  # fixed by the seed
    assert not torch.equal(noisy, corrupt_labels(y, 0.2, 10, seed=4))
    assert torch.equal(corrupt_labels(y, 0.0, 10, seed=3), y)
    # the wrong class is spread over the other nine
    assert len(set(((noisy[changed] - y[changed]) % 10).tolist())) == 9


def test_noisy_data_module_corrupts_training_labels_only(data_env):
    from datamodules.images import ImageDataConfig, ImageDataModule

    cfg = ImageDataConfig(dataset="mnist", train_size=200, val_size=100, test_size=100, train_eval_size=50)
    clean, noisy = ImageDataModule(cfg), NoisyLabelDataModule(cfg, 0.2, seed=7)
    clean.setup(), noisy.setup()
    assert int((clean.train[1] != noisy.train[1]).sum()) == 40 and torch.equal(clean.train[0], noisy.train[0])
    assert torch.equal(noisy.train_eval[1], noisy.train[1][:50])  # training error against the labels trained on
    for split in ("val", "test"):
        assert torch.equal(getattr(clean, split)[1], getattr(noisy, split)[1])


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_are_paired_by_seed():
    exp = get("early-stopping")
    noisy, clean = (next(c for c in exp.claims if "patience 10" in c.statement and v in c.statement)
                    for v in ("wrong", "clean"))  # fmt: skip
    helps = {"end_test_error": [0.20, 0.21, 0.22], "p10_test_error": [0.18, 0.185, 0.19]}
    hurts = {"end_test_error": [0.18, 0.185, 0.19], "p10_test_error": [0.20, 0.21, 0.22]}
    r = results(**{"mlp-noisy": helps, "mlp": hurts})
    assert noisy.check(r).status == "supported" and clean.check(r).status == "contradicted"
    mixed = {"end_test_error": [0.20, 0.18, 0.21], "p10_test_error": [0.19, 0.19, 0.20]}  # + - +
    assert clean.check(results(mlp=mixed)).status == "inconclusive"
    assert clean.check(results()).status == "inconclusive"


def test_the_claims_patience_must_be_computed():
    exp = get("early-stopping")
    with pytest.raises(ReproError, match="include 10"):
        exp.resolve("mlp", "quick", {"stopping.patiences": "5,20"})


def test_smoke_run_records_the_test_curve_and_the_stopping_points(data_env):
    result = repro("run", "early-stopping", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    rec = json.loads(open(f"{data_env['REPRO_RUNS_DIR']}/early-stopping/smoke/mlp/seed0/record.json").read())
    hist, m = rec["history"], rec["metrics"]
    assert [row["epoch"] for row in hist] == list(range(1, 7))
    assert all(0 <= row["test_error"] <= 1 and row["test_loss"] > 0 for row in hist)
    # the last epoch's test error is the final test of the same weights
    assert hist[-1]["test_error"] == pytest.approx(m["test_error"], abs=1e-6)
    assert m["end_test_error"] == hist[-1]["test_error"]
    for p in (1, 2, 3):
        stop, kept = patience_stop([row["val_error"] for row in hist], p)
        assert (m[f"stop_epoch_p{p}"], m[f"kept_epoch_p{p}"]) == (stop, kept)
        assert m[f"p{p}_test_error"] == hist[kept - 1]["test_error"]
    assert 0 <= m["val_b_end_error"] <= 1 and 1 <= m["best_val_a_epoch"] <= 6
    md = open(f"{data_env['REPRO_RUNS_DIR']}/early-stopping/smoke/report/early-stopping-smoke.md").read()
    assert "Early stopping (patience 10" in md and "early-stopping-smoke.png" in md
