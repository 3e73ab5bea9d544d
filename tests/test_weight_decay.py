"""Weight decay: the SGD update equals the decay rule exactly, the ridge solve on hand-computed cases (a
polynomial, and slide 10's two nearly identical inputs), the pair data, the claims' decisions, and a smoke run of
the experiment end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from datamodules.configs import PairConfig
from datamodules.pairs import sample_pairs
from datamodules.polynomial import PolyConfig, sample_data
from engine.registry import get
from engine.spec import Results
from lightning_modules.regression import mse, poly_features, ridge_fit, ridge_solve, rmse, weight_measures
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


# ----------------------------------------------------------------------------- two nearly identical inputs (slide 10)
def test_pair_ridge_on_two_points_by_hand_puts_opposite_weights_without_a_penalty():
    """Points (x1, x2) = (1, 1) and (-0.1, 0.1), targets 2.06 and 0.4. Write w = a (1, 1) + b (-1, 1): the
    predictions are 2a and 0.2b, ||w||^2 = 2a^2 + 2b^2, so J_reg = 1/4 [(2a - 2.06)^2 + (0.2b - 0.4)^2]
    + lambda (a^2 + b^2) is minimized at a = 2.06 / (2 + 2 lambda), b = 0.04 / (0.02 + 2 lambda).
    lambda = 0: a = 1.03, b = 2, w = (-0.97, 3.03), opposite signs; lambda = 0.03: a = 1, b = 0.5, w = (0.5, 1.5)."""
    inputs = torch.tensor([[1.0, 1.0], [-0.1, 0.1]], dtype=torch.float64)
    t = torch.tensor([2.06, 0.4], dtype=torch.float64)
    free, shared = ridge_solve(inputs, t, 0.0), ridge_solve(inputs, t, 0.03)
    torch.testing.assert_close(free, torch.tensor([-0.97, 3.03], dtype=torch.float64))
    torch.testing.assert_close(shared, torch.tensor([0.5, 1.5], dtype=torch.float64))
    assert mse(free, inputs, t) == pytest.approx(0.0, abs=1e-20)  # two weights, two points: interpolated
    m = weight_measures(free)
    assert (m["w1"], m["w2"]) == pytest.approx((-0.97, 3.03))
    assert m["weight_gap"] == pytest.approx(4.0) and m["opposite"] == pytest.approx(2 * 0.97)  # 2 min(|w1|, |w2|)
    assert m["w_norm"] == pytest.approx(math.hypot(0.97, 3.03))
    m = weight_measures(shared)
    assert m["weight_gap"] == pytest.approx(1.0) and m["opposite"] == 0.0  # one sign: no opposite-sign mass


def test_pair_data_have_the_stated_mismatch_and_targets():
    cfg = PairConfig(n_train=20000, n_test=20000, eps=0.02, mismatch=10.0, noise_std=0.5)
    d = sample_pairs(cfg, seed=0)
    (train, t), (matched, tm), (mismatched, tx) = d["train"], d["matched"], d["mismatched"]
    assert train.shape == (20000, 2) and train.dtype == torch.float64
    for inputs in (train, matched):  # x2 - x1 = eps z: std eps
        assert float((inputs[:, 1] - inputs[:, 0]).std()) == pytest.approx(0.02, rel=0.03)
        assert float(inputs[:, 0].std()) == pytest.approx(1.0, rel=0.03)
    # the two test sets share x, z and noise: the same x1, a difference exactly 10x, targets x1 + x2 + the same noise
    assert torch.equal(matched[:, 0], mismatched[:, 0])
    torch.testing.assert_close(mismatched[:, 1] - mismatched[:, 0], 10 * (matched[:, 1] - matched[:, 0]))
    torch.testing.assert_close(tx - mismatched.sum(-1), tm - matched.sum(-1))
    assert float((t - train.sum(-1)).std()) == pytest.approx(0.5, rel=0.03)
    again, other = sample_pairs(cfg, seed=0), sample_pairs(cfg, seed=1)
    assert torch.equal(again["train"][1], t) and not torch.equal(other["train"][1], t)


def test_pair_mse_grows_with_the_weight_gap_times_the_mismatch():
    """y = (w1 + w2)(x1 + x2)/2 + (w2 - w1)(x2 - x1)/2: the slide's (-9, 11) and the shared (1, 1) have the same
    sum, so their predictions differ by 10 (x2 - x1): nothing where x1 = x2, more the less closely they match."""
    d = sample_pairs(PairConfig(n_test=5000), seed=0)
    shared, opposite = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([-9.0, 11.0], dtype=torch.float64)
    assert mse(shared, *d["matched"]) == pytest.approx(0.25, rel=0.05)  # the true weights: the noise alone
    extra = {}
    for name in ("matched", "mismatched"):
        inputs, t = d[name]
        diff, residual = inputs[:, 1] - inputs[:, 0], inputs @ shared - t
        torch.testing.assert_close(inputs @ opposite - inputs @ shared, 10 * diff)
        # the added error: 100 mean[(x2 - x1)^2] plus a cross term with the noise
        extra[name] = float((10 * diff).pow(2).mean())
        added = mse(opposite, inputs, t) - mse(shared, inputs, t)
        assert added == pytest.approx(extra[name] + float(2 * (10 * diff * residual).mean()), rel=1e-9)
    assert extra["matched"] == pytest.approx(0.04, rel=0.05)  # 100 eps^2, eps = 0.02
    assert extra["mismatched"] == pytest.approx(100 * extra["matched"])  # a 10x mismatch: 100x the added error


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


def test_pair_claims_read_log_ratios_and_the_matched_equivalence_has_a_margin():
    gap = _claim("Without a penalty the fit can put large opposite weights")
    shared = {"pair-none": {"weight_gap": [8.0, 20.0, 3.0]}, "pair-l2": {"weight_gap": [0.2, 0.5, 0.06]}}
    assert gap.check(results(**shared)).status == "supported"  # 40x, 40x, 50x
    swapped = {"pair-none": shared["pair-l2"], "pair-l2": shared["pair-none"]}
    assert gap.check(results(**swapped)).status == "contradicted"
    same = _claim("On test inputs that match as closely as in training")
    near = {"pair-none": {"test_mse": [0.26, 0.27, 0.25, 0.26]}, "pair-l2": {"test_mse": [0.25, 0.26, 0.25, 0.25]}}
    assert same.check(results(**near)).status == "supported"  # within 4%: log10 ratios <= 0.017
    far = {"pair-none": {"test_mse": [0.5, 0.55, 0.6, 0.5]}, "pair-l2": near["pair-l2"]}
    assert same.check(results(**far)).status == "contradicted"  # 2x: log10 0.3, beyond the margin 0.1
    worse = _claim("The unpenalized fit might make weird predictions")
    mism = {"pair-none": {"test_mse_mismatched": [1.0, 1.5, 0.8]}, "pair-l2": {"test_mse_mismatched": [0.25] * 3}}
    assert worse.check(results(**mism)).status == "supported"  # log10 ratios 0.60, 0.78, 0.51
    mism["pair-none"]["test_mse_mismatched"] = [1.0, 3.0, 0.3]  # 0.60, 1.08, 0.08: too spread for 3 seeds
    assert worse.check(results(**mism)).status == "inconclusive"


def test_mlp_l2_takes_its_weight_decay_from_the_profile_and_only_it():
    exp = get("weight-decay")
    for profile in exp.profiles:
        if "mlp-l2" not in exp.variant_names(profile.name):
            continue
        assert exp.resolve("mlp-l2", profile.name).optim.weight_decay > 0, profile.name
        for other in ("mlp-none", "mlp-l1"):
            assert exp.resolve(other, profile.name).optim.weight_decay == 0, (profile.name, other)
    assert exp.resolve("mlp-l2", "quick").optim.weight_decay == 1e-2


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
    # the pair fits: the record's weights are the exact fits to the data its seed draws
    pairs = {v: json.loads(open(f"{runs}/{v}/seed0/record.json").read()) for v in ("pair-none", "pair-l2")}
    for v, lam in (("pair-none", 0.0), ("pair-l2", 1e-2)):
        cfg = PairConfig(**pairs[v]["config"]["pair"])
        assert cfg.l2 == lam
        d = sample_pairs(cfg, seed=0)
        w = ridge_solve(*d["train"], lam)
        pm = pairs[v]["metrics"]
        fits = {
            "train_mse": mse(w, *d["train"]),
            "test_mse": mse(w, *d["matched"]),
            "test_mse_mismatched": mse(w, *d["mismatched"]),
        }
        assert pm == pytest.approx({**pm, **weight_measures(w), **fits})
    assert pairs["pair-l2"]["metrics"]["w_norm"] < pairs["pair-none"]["metrics"]["w_norm"]
    md = open(f"{runs}/report/weight-decay-smoke.md").read()
    assert "overfits" in md and "% weights below 1e-3 (abs)" in md and "weight-decay-smoke.png" in md
    assert "Two nearly identical inputs" in md and "weight gap \\|w1 - w2\\|" in md  # (| escaped in tables)
