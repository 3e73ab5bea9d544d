"""Early stopping: the offline stopping rules on hand-made curves (exact epochs), the slide-15 measures on nets
with hand-set weights (exact values), the claims, and a smoke run."""

from __future__ import annotations

import json

import pytest
import torch

from datamodules.images import NoisyLabelDataModule, corrupt_labels
from engine.registry import get
from engine.spec import ReproError, Results
from lightning_modules.configs import MLPConfig
from lightning_modules.early_stopping import best_epoch, patience_stop, stopping_metrics
from lightning_modules.measures import saturation, share_outside, weight_norm
from lightning_modules.nets.mlp import MLP
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
    history = [
        {"val_error": (x + y) / 2, "val_a_error": x, "val_b_error": y, "test_error": y, "val_loss": 1, "test_loss": 1}
        for x, y in zip(a, b, strict=True)
    ]
    m = stopping_metrics(history, (2,))
    assert m["best_val_a_epoch"] == 3 and m["val_b_at_best_a_error"] == 0.33 and m["val_b_end_error"] == 0.45
    rise = next(c for c in get("early-stopping").claims if "rises again" in c.statement and "clean" in c.statement)
    runs = {"val_b_at_best_a_error": [0.33, 0.32, 0.34], "val_b_end_error": [0.45, 0.43, 0.46]}
    assert rise.check(results(mlp=runs)).status == "supported"
    # a curve that ends at its minimum is measured as no rise, not as a rise (the old test was >= 0 always)
    flat = {"val_b_at_best_a_error": [0.33, 0.32, 0.34], "val_b_end_error": [0.32, 0.315, 0.33]}
    assert rise.check(results(mlp=flat)).status == "contradicted"


def test_the_share_outside_the_near_linear_range_is_counted_exactly():
    # 8 values over two layers; outside |z| <= 2: -2.5, 3.0 and 2.01 (the bound itself, +-2.0, is inside)
    layers = [torch.tensor([[0.0, 2.0, -2.5], [3.0, -1.0, 0.5]]), torch.tensor([[2.01, -2.0]])]
    assert share_outside(layers) == 3 / 8
    assert share_outside(layers, bound=0.75) == 6 / 8  # and 2.0, -1.0, -2.0 beyond 0.75
    # through the net: one hidden layer of 2 logistic units with W = diag(1, 3), no bias, so z = (x1, 3 x2)
    net = MLP(MLPConfig(hidden=(2,), activation="sigmoid"), in_features=2, num_classes=2)
    with torch.no_grad():
        net.hidden_layers[0].weight.copy_(torch.diag(torch.tensor([1.0, 3.0])))
        net.hidden_layers[0].bias.zero_()
    x = torch.tensor([[1.0, 1.0], [0.5, -1.0], [2.5, 0.5]])  # z: (1, 3), (0.5, -3), (2.5, 1.5): 3 of 6 outside
    assert saturation(net, x) == {"saturated_pct": 50.0}


def test_the_weight_norm_leaves_the_biases_out():
    net = MLP(MLPConfig(hidden=(3,)), in_features=2, num_classes=2)
    with torch.no_grad():
        net.hidden_layers[0].weight.fill_(1.0)  # 6 entries of 1
        net.out.weight.fill_(-2.0)  # 6 entries of 2
        net.hidden_layers[0].bias.fill_(100.0)
        net.out.bias.fill_(100.0)
    assert weight_norm(net) == {"weight_norm": pytest.approx(30**0.5, abs=1e-12)}  # sqrt(6 + 6 * 4), not 245


def test_the_weight_course_is_read_at_initialization_at_the_kept_epoch_and_at_the_end():
    val = [0.5, 0.4, 0.3, 0.35, 0.36, 0.37]  # best at epoch 3; patience 2 stops at 5 and keeps 3
    rows = [
        {
            "epoch": e,
            "val_error": v,
            "test_error": v,
            "val_loss": v,
            "test_loss": v,
            "weight_norm": 10.0 + e,
            "saturated_pct": 2.0 * e,
        }
        for e, v in enumerate(val, 1)
    ]
    init = {"epoch": 0, "weight_norm": 9.0, "saturated_pct": 0.5, "seconds": 0.0}
    m = stopping_metrics([init, *rows], (2,))
    assert m == {**stopping_metrics(rows, (2,)), **{k: m[k] for k in m if k.startswith(("weight", "saturated"))}}
    assert (m["kept_epoch_p2"], m["best_val_epoch"]) == (3, 3)  # the epoch-0 row shifts no epoch
    assert (m["weight_norm_init"], m["weight_norm_p2"], m["weight_norm_final"]) == (9.0, 13.0, 16.0)
    assert (m["saturated_pct_init"], m["saturated_pct_p2"], m["saturated_pct_final"]) == (0.5, 6.0, 12.0)
    assert m["weight_norm_growth"] == 16.0 / 9.0
    assert "weight_norm_init" not in stopping_metrics(rows, (2,))  # no epoch 0 recorded: no course


def weight_claim(words: str):
    return next(c for c in get("early-stopping").claims if words in c.statement)


def test_the_slide_15_claims_reject_shrinking_weights_and_a_net_that_starts_saturated():
    grows = weight_claim(
        "norm grows during training, from a small start: the L2 norm of all weights at the end "
        "against at initialization (clean labels)"
    )
    up = {"weight_norm_init": [18.6, 18.5, 18.7], "weight_norm_final": [24.0, 23.1, 25.2]}
    down = {"weight_norm_init": [18.6, 18.5, 18.7], "weight_norm_final": [12.0, 13.1, 11.9]}
    assert grows.check(results(mlp=up)).status == "supported"
    assert grows.check(results(mlp=down)).status == "contradicted"
    assert grows.check(results(**{"mlp-sigmoid": up})).status == "inconclusive"  # another variant's runs

    nonlinear = weight_claim("starts nearly linear")
    rises = {"saturated_pct_init": [0.1, 0.2, 0.1], "saturated_pct_final": [20.0, 25.0, 18.0]}
    falls = {"saturated_pct_init": [0.1, 0.2, 0.1], "saturated_pct_final": [0.0, 0.05, 0.02]}
    saturated_from_the_start = {"saturated_pct_init": [30.0, 28.0, 35.0], "saturated_pct_final": [60.0, 55.0, 70.0]}
    assert nonlinear.check(results(**{"mlp-sigmoid": rises})).status == "supported"
    assert nonlinear.check(results(**{"mlp-sigmoid": falls})).status == "contradicted"
    assert nonlinear.check(results(**{"mlp-sigmoid": saturated_from_the_start})).status == "contradicted"

    smaller = weight_claim("kept epoch is lower than at the end (20% wrong")
    kept_small = {"weight_norm_p10": [19.0, 19.2, 19.1], "weight_norm_final": [30.0, 29.0, 31.0]}
    kept_large = {"weight_norm_p10": [30.0, 29.0, 31.0], "weight_norm_final": [19.0, 19.2, 19.1]}
    assert smaller.check(results(**{"mlp-noisy": kept_small})).status == "supported"
    assert smaller.check(results(**{"mlp-noisy": kept_large})).status == "contradicted"


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
    noisy, clean = (
        next(c for c in exp.claims if "patience 10" in c.statement and v in c.statement) for v in ("wrong", "clean")
    )
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


def test_smoke_run_records_the_test_curve_the_stopping_points_and_the_weights_from_initialization(data_env):
    import lightning as L

    result = repro("run", "early-stopping", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = f"{data_env['REPRO_RUNS_DIR']}/early-stopping/smoke"
    rec = json.loads(open(f"{runs}/mlp/seed0/record.json").read())
    init, hist, m = rec["history"][0], rec["history"][1:], rec["metrics"]
    assert init["epoch"] == 0 and "val_error" not in init  # the net before any step: measures only
    # epoch 0 is the norm of the initial weights: the net the runner builds after seeding, before training
    exp = get("early-stopping")
    L.seed_everything(0, workers=True, verbose=False)
    initial, _ = exp.build(exp.resolve("mlp", "smoke"), 0)
    assert init["weight_norm"] == pytest.approx(weight_norm(initial.net)["weight_norm"], rel=1e-12)
    assert m["weight_norm_init"] == init["weight_norm"] != hist[0]["weight_norm"]  # one epoch of steps moved it
    assert m["weight_norm_final"] == hist[-1]["weight_norm"] and "saturated_pct" not in init  # ReLU: no logistic
    sigmoid = json.loads(open(f"{runs}/mlp-sigmoid/seed0/record.json").read())
    assert all(0 <= row["saturated_pct"] <= 100 for row in sigmoid["history"])
    assert sigmoid["metrics"]["saturated_pct_init"] == sigmoid["history"][0]["saturated_pct"]
    assert [row["epoch"] for row in hist] == list(range(1, 7)) and m["epochs"] == 6
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
    assert "Early stopping (patience 10" in md and "early-stopping-smoke.png" in md and "Slide 15: the weights" in md
