"""Weight decay: the SGD update equals the decay rule exactly, the ridge solve on hand-computed cases,
the claims' decisions, and a smoke run of the experiment end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from datamodules.polynomial import PolyConfig, sample_data
from experiments import get
from experiments.spec import Results
from lightning_modules.regression import poly_features, ridge_fit, rmse
from tests.conftest import repro


# ----------------------------------------------------------------------------- the decay update (slide 9)
def _tiny_problem():
    """J(w) = 1/2 (x . w - y)^2 with w = (0.5, -1), x = (1, 2), y = 0.5: x . w - y = -2, dJ/dw = -2 x = (-2, -4).
    Powers of two throughout, so every product below is exact in float32."""
    w = torch.tensor([0.5, -1.0])
    x, y = torch.tensor([1.0, 2.0]), torch.tensor(0.5)
    return w, x, y


def _sgd_step(w0, loss_fn, lr, weight_decay):
    w = torch.nn.Parameter(w0.clone())
    opt = torch.optim.SGD([w], lr=lr, momentum=0.0, weight_decay=weight_decay)
    opt.zero_grad()
    loss_fn(w).backward()
    opt.step()
    return w.detach()


def test_sgd_weight_decay_is_the_decay_update_exactly():
    w0, x, y = _tiny_problem()
    lr, lam = 0.25, 0.5
    data_loss = lambda w: 0.5 * (x @ w - y) ** 2  # noqa: E731
    got = _sgd_step(w0, data_loss, lr, weight_decay=lam)
    grad = torch.tensor([-2.0, -4.0])  # by hand, see _tiny_problem
    by_hand = (1 - lr * lam) * w0 - lr * grad  # w <- (1 - a lambda) w - a dJ/dw
    assert torch.equal(got, by_hand)
    assert torch.equal(got, torch.tensor([0.9375, 0.125]))  # 0.875 * 0.5 + 0.25 * 2, 0.875 * -1 + 0.25 * 4
    # the same step as plain SGD on the penalized cost J + lambda/2 ||w||^2
    penalized = _sgd_step(w0, lambda w: data_loss(w) + lam / 2 * w.pow(2).sum(), lr, weight_decay=0.0)
    assert torch.equal(got, penalized)


def test_sgd_weight_decay_matches_the_penalized_cost_on_a_random_problem():
    g = torch.Generator().manual_seed(0)
    w0, x, y = torch.randn(5, generator=g), torch.randn(8, 5, generator=g), torch.randn(8, generator=g)
    loss = lambda w: ((x @ w - y) ** 2).mean()  # noqa: E731
    for lr, lam in ((0.1, 1e-2), (0.03, 0.5)):
        decayed = _sgd_step(w0, loss, lr, lam)
        penalized = _sgd_step(w0, lambda w: loss(w) + lam / 2 * w.pow(2).sum(), lr, 0.0)  # noqa: B023
        torch.testing.assert_close(decayed, penalized, rtol=0, atol=1e-7)
        assert not torch.allclose(decayed, _sgd_step(w0, loss, lr, 0.0))  # the decay does something


# ----------------------------------------------------------------------------- ridge regression
def test_ridge_fit_of_a_line_through_two_points_by_hand():
    """Points x = 0, 1 (u = -1, 1), t = 0, 2. Phi = [[1, -1], [1, 1]]: Phi^T Phi = 2 I, Phi^T t = (2, 2).
    (Phi^T Phi + N lambda I) w = Phi^T t with N = 2 gives w = (2, 2) / (2 + 2 lambda)."""
    x, t = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(ridge_fit(x, t, 1, 0.0), torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(ridge_fit(x, t, 1, 0.5), torch.tensor([2 / 3, 2 / 3], dtype=torch.float64))
    assert rmse(ridge_fit(x, t, 1, 0.0), x, t) == pytest.approx(0.0, abs=1e-12)
    # the minimizer of the cost: its gradient 1/N Phi^T (Phi w - t) + lambda w is zero there
    w = ridge_fit(x, t, 1, 0.5)
    phi = poly_features(x, 1)
    torch.testing.assert_close(phi.T @ (phi @ w - t) / 2 + 0.5 * w, torch.zeros(2, dtype=torch.float64))


def test_poly_features_map_the_unit_interval_onto_minus_one_one():
    f = poly_features(torch.tensor([0.0, 0.5, 1.0]), 3)
    assert f.dtype == torch.float64
    assert torch.equal(f, torch.tensor([[1.0, -1, 1, -1], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float64))


def test_degree_nine_interpolates_and_the_penalty_shrinks_its_coefficients():
    x, t = sample_data(PolyConfig(), seed=3)["train"]
    norms = [float(ridge_fit(x, t, 9, lam).norm()) for lam in (0.0, 1e-8, 1e-6, 1e-4, 1e-2, 1.0, 1e3)]
    assert rmse(ridge_fit(x, t, 9, 0.0), x, t) < 1e-9  # 10 coefficients, 10 distinct points
    assert all(b < a for a, b in zip(norms, norms[1:], strict=False))
    assert norms[-1] < 1e-3 * norms[0] and norms[-1] < 1e-2  # lambda -> infinity: w -> 0
    # the training error grows with lambda
    fits = [rmse(ridge_fit(x, t, 9, lam), x, t) for lam in (0.0, 1e-4, 1.0)]
    assert fits[0] < fits[1] < fits[2]


def test_data_are_drawn_from_the_seed():
    a, b, c = sample_data(PolyConfig(), 0), sample_data(PolyConfig(), 0), sample_data(PolyConfig(), 1)
    assert torch.equal(a["train"][1], b["train"][1]) and not torch.equal(a["train"][1], c["train"][1])
    assert torch.equal(a["train"][0], torch.linspace(0, 1, 10, dtype=torch.float64))
    # the noise has the configured size: the test residuals of the true function have std close to 0.3
    x, t = sample_data(PolyConfig(n_test=20000), 0)["test"]
    assert float((t - torch.sin(2 * math.pi * x)).std()) == pytest.approx(0.3, rel=0.03)


# ----------------------------------------------------------------------------- claims
def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def _claim(text: str):
    exp = get("weight-decay")
    return next(c for c in exp.claims + exp.checks if c.statement.startswith(text))


def test_overfitting_claim_decides_on_the_log_ratio_of_test_rmse():
    claim = _claim("... but overfits")
    worse = results(
        **{"degree-9": {"test_rmse": [0.7, 0.9, 0.8, 1.2]}, "degree-3": {"test_rmse": [0.3, 0.4, 0.35, 0.3]}}
    )
    assert claim.check(worse).status == "supported"
    better = results(
        **{"degree-9": {"test_rmse": [0.3, 0.4, 0.35, 0.3]}, "degree-3": {"test_rmse": [0.7, 0.9, 0.8, 1]}}
    )
    assert claim.check(better).status == "contradicted"
    assert claim.check(results()).status == "inconclusive"


def test_shrinkage_is_a_check_of_a_strict_decrease_in_every_seed():
    check = _claim("The coefficients shrink")
    ok = {"degree-9": [100.0, 80.0], "degree-9-l2-1e-8": [90.0, 70.0], "degree-9-l2-1": [1.0, 2.0]}
    outcome = check.check(results(**{v: {"w_norm": n} for v, n in ok.items()}))
    assert outcome.holds and outcome.largest_error == 0
    ok["degree-9-l2-1"] = [1.0, 77.0]  # seed 1 grows from 70 to 77
    outcome = check.check(results(**{v: {"w_norm": n} for v, n in ok.items()}))
    assert not outcome.holds and "seeds [1]" in outcome.detail and outcome.largest_error == pytest.approx(0.1)


def test_sparsity_metrics_count_weight_matrix_entries_only():
    from lightning_modules import measures

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.0, 5e-4], [5e-3, 1.0]]))  # 2 of 4 below 1e-3, 3 below 1e-2
        net[1].weight.copy_(torch.tensor([[2e-3, -2.0]]))  # 0 of 2 below 1e-3, 1 below 1e-2
        net[0].bias.zero_()  # biases are not counted
    s = measures.sparsity(net)
    assert s["pct_below_1e-3"] == pytest.approx(100 * 2 / 6) and s["pct_below_1e-2"] == pytest.approx(100 * 4 / 6)
    hist = measures.weight_histogram(net)["weight_histogram"]
    assert sum(hist["counts"]) == 6 and hist["counts"][0] == 1  # the exact zero lands in the first bin


# ----------------------------------------------------------------------------- end to end
def test_smoke_run_fits_polynomials_and_mlps_and_writes_the_report(data_env):
    result = repro("run", "weight-decay", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = f"{data_env['REPRO_RUNS_DIR']}/weight-decay/smoke"
    rec = json.loads(open(f"{runs}/degree-9/seed0/record.json").read())
    m, w = rec["metrics"], torch.tensor(rec["coefficients"], dtype=torch.float64)
    assert m["train_rmse"] < 1e-9 and m["test_rmse"] > 0.3 and len(w) == 10
    assert m["w_norm"] == pytest.approx(float(w.norm()))
    # the record's coefficients are the exact fit to the record's training points
    x, t = (torch.tensor(rec["train_points"][k], dtype=torch.float64) for k in ("x", "t"))
    torch.testing.assert_close(w, ridge_fit(x, t, 9, 0.0))
    penalized = json.loads(open(f"{runs}/degree-9-l2-1e-4/seed0/record.json").read())["metrics"]
    assert penalized["w_norm"] < m["w_norm"] and penalized["train_rmse"] > m["train_rmse"]
    mlp = json.loads(open(f"{runs}/mlp-l1/seed0/record.json").read())
    assert 0 <= mlp["metrics"]["pct_below_1e-3"] <= mlp["metrics"]["pct_below_1e-2"] <= 100
    assert mlp["config"]["kind"] == "mlp" and rec["config"]["kind"] == "poly"
    md = open(f"{runs}/report/weight-decay-smoke.md").read()
    assert "overfits" in md and "% weights below 1e-3 (abs)" in md and "weight-decay-smoke.png" in md
