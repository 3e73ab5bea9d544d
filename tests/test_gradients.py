"""The gradients experiment: the slide's numbers, BPTT by hand, Jacobians, the iterated map, divergence, a smoke run."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from datamodules.configs import RECALL_GUESS_MSE
from datamodules.sequences import RecallConfig, RecallDataModule
from engine.registry import get
from engine.spec import Results
from lightning_modules.rnn_gradients import (
    ClipModelConfig,
    ClipOptimConfig,
    ClippedRNNRegressor,
    TanhRNN,
    attracting_cycle,
    bptt_by_hand,
    bptt_vs_autograd,
    cycle_phase,
    jacobian_norms,
    logistic_orbit,
    recurrent_matrix,
    rnn_loss,
    scalar_linear_jacobian,
)
from tests.conftest import repro, train_whole_and_resumed


def test_scalar_linear_rnn_gives_the_slides_numbers_with_one_factor_per_step():
    assert scalar_linear_jacobian(1.1, 50) == pytest.approx(1.1**50, rel=1e-12)
    assert round(scalar_linear_jacobian(1.1, 50), 1) == 117.4
    assert round(scalar_linear_jacobian(0.9, 50), 5) == 0.00515
    assert round(scalar_linear_jacobian(1.1, 49), 1) == 106.7  # w^(T-1) with T = 50 is not the slide's number


@pytest.mark.parametrize("steps,seed", [(1, 0), (8, 1), (20, 2)])
def test_bptt_by_hand_equals_autograd_in_float64(steps, seed):
    g = torch.Generator().manual_seed(seed)
    p = TanhRNN.random(3, 5, 2, g)
    xs = torch.randn(steps, 3, generator=g, dtype=torch.float64)
    targets = torch.rand(steps, 2, generator=g, dtype=torch.float64) * 2 - 1
    h0 = torch.randn(5, generator=g, dtype=torch.float64)
    assert bptt_vs_autograd(p, xs, targets, h0) < 1e-6
    hand = bptt_by_hand(p, xs, targets, h0)
    assert all(float(v.abs().max()) > 1e-4 for v in hand.values())  # not a comparison of zeros
    # one finite difference, independent of autograd: dL/dW[0, 1]
    eps, W = 1e-6, p.W.clone()
    plus, minus = W.clone(), W.clone()
    plus[0, 1] += eps
    minus[0, 1] -= eps
    fd = (
        rnn_loss(TanhRNN(p.U, plus, p.b, p.V, p.c), xs, targets, h0)
        - rnn_loss(TanhRNN(p.U, minus, p.b, p.V, p.c), xs, targets, h0)
    ) / (2 * eps)
    assert float(hand["W"][0, 1]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


def test_linear_rnn_jacobian_is_exactly_the_matrix_power():
    g = torch.Generator().manual_seed(0)
    W = recurrent_matrix(6, 1.3, g)
    drive = torch.randn(12, 6, generator=g, dtype=torch.float64)
    norms = jacobian_norms(W, drive, linear=True)

    def h_last(h1):  # h_1 -> h_12 through the linear recurrence
        for d in drive[1:]:
            h1 = W @ h1 + d
        return h1

    J = torch.autograd.functional.jacobian(h_last, drive[0])
    assert torch.allclose(J, torch.linalg.matrix_power(W, 11), rtol=1e-12, atol=1e-12)
    assert norms[-1] == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=1e-10)
    assert norms[0] == 1.0 and len(norms) == 12


def test_tanh_jacobian_norms_match_autograd_and_orthogonal_linear_norms_stay_one():
    g = torch.Generator().manual_seed(1)
    W = recurrent_matrix(5, 1.5, g)
    drive = 0.3 * torch.randn(7, 5, generator=g, dtype=torch.float64)

    def h_last(h1):
        for d in drive[1:]:
            h1 = torch.tanh(W @ h1 + d)
        return h1

    J = torch.autograd.functional.jacobian(h_last, torch.tanh(drive[0]))
    assert jacobian_norms(W, drive)[-1] == pytest.approx(float(torch.linalg.matrix_norm(J, ord=2)), rel=1e-10)
    assert float(torch.linalg.eigvals(W).abs().max()) == pytest.approx(1.5, rel=1e-12)
    Q = recurrent_matrix(5, None, g)
    assert torch.allclose(Q.T @ Q, torch.eye(5, dtype=torch.float64), atol=1e-12)
    assert jacobian_norms(Q, drive, linear=True) == pytest.approx([1.0] * 7, rel=1e-10)


def test_logistic_map_derivative_and_cycle():
    fixed = torch.tensor([1 - 1 / 3.5], dtype=torch.float64)  # the unstable fixed point, f'(x*) = -1.5
    x, d = logistic_orbit(fixed, 10)
    assert float(x) == pytest.approx(float(fixed), abs=1e-9) and float(d) == pytest.approx((-1.5) ** 10, rel=1e-6)
    x0 = torch.tensor([0.2, 0.37, 0.61], dtype=torch.float64, requires_grad=True)
    fn, deriv = logistic_orbit(x0, 6)
    (auto,) = torch.autograd.grad(fn.sum(), x0)
    assert torch.allclose(deriv, auto, rtol=1e-12)
    cycle = attracting_cycle()
    assert len(cycle) == 4 and len(set(cycle.tolist())) == 4
    _, d4 = logistic_orbit(cycle[:1], 4)
    assert abs(float(d4)) < 1  # an attracting cycle: its multiplier is below 1 in size
    phase = cycle_phase(torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64), 400)
    assert phase[0] == -1 and phase[2] == -1 and 0 <= phase[1] < 4  # 0 and 1 go to the fixed point 0


def test_gradient_clipping_rescales_to_the_threshold_and_reports_the_norm_before():
    module = ClippedRNNRegressor(ClipModelConfig(hidden=2), ClipOptimConfig(lr=0.1, clip=1.0), seed=0)
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.1)
    p.grad = torch.tensor([3.0, 4.0])
    assert float(module.clip_gradient_norm(opt, 1.0)) == pytest.approx(5.0)
    assert p.grad.tolist() == pytest.approx([0.6, 0.8])
    p.grad = torch.tensor([3.0, 4.0])
    assert float(module.clip_gradient_norm(opt, 0.0)) == pytest.approx(5.0) and p.grad.tolist() == [3.0, 4.0]


def _fit(module, data, epochs=2):
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    return module


def test_divergence_is_recorded_not_raised():
    data = RecallDataModule(RecallConfig(length=10, train_size=64, test_size=32, batch_size=16), seed=0)
    data.train[0][20, 3, 0] = math.nan  # a poisoned sequence: the loss of its batch is NaN
    module = _fit(ClippedRNNRegressor(ClipModelConfig(hidden=8), ClipOptimConfig(lr=0.01), seed=0), data)
    m = module.summary()
    assert m["diverged"] == 1.0 and math.isnan(m["test_mse"]) and m["test_mse_scored"] == RECALL_GUESS_MSE
    assert m["diverged_step"] < 4 and m["steps"] == m["diverged_step"] + 1  # stopped at the poisoned batch
    assert module.extras()["traces"]["loss"][-1] is None
    json.dumps(module.summary())  # the record stays writable
    clean = RecallDataModule(RecallConfig(length=10, train_size=64, test_size=32, batch_size=16), seed=0)
    ok = _fit(ClippedRNNRegressor(ClipModelConfig(hidden=8), ClipOptimConfig(lr=0.01, clip=1.0), seed=0), clean)
    assert ok.summary()["diverged"] == 0.0 and ok.summary()["steps"] == 8 and math.isfinite(ok.summary()["test_mse"])


def test_resumed_training_matches_an_uninterrupted_run(tmp_path):
    """Weights come from the seed alone and the shuffling continues at the resumed epoch."""

    def make():
        module = ClippedRNNRegressor(ClipModelConfig(hidden=8), ClipOptimConfig(lr=0.05, clip=1.0), seed=0)
        return module, RecallDataModule(RecallConfig(length=10, train_size=64, test_size=32, batch_size=16), seed=0)

    whole, resumed = train_whole_and_resumed(make, stop=2, epochs=3, tmp_path=tmp_path)
    assert resumed.losses == whole.losses and len(whole.losses) == 12
    assert all(torch.equal(p, q) for p, q in zip(whole.parameters(), resumed.parameters(), strict=True))


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_clipping_claims_pair_by_seed():
    exp = get("gradients")
    divergence, loss, learns = exp.claims
    r = results(
        **{
            "no-clip": {"diverged": [1, 1, 1], "test_mse_scored": [1 / 3, 1 / 3, 1 / 3]},
            "clip": {"diverged": [0, 0, 0], "test_mse_scored": [0.01, 0.02, 0.015]},
        }
    )
    # 3 of 3 against 0 of 3 decides the loss, not the yes/no divergence: the exact McNemar p is 2 / 2^3 = 0.25
    # (a t-interval called it "supported", its spread being 0); 6 of 6 against none, p = 2 / 2^6, decides it
    assert loss.check(r).status == "supported" and divergence.check(r).status == "inconclusive"
    assert "3 of 3 runs against 0 of 3; pairs that differ 3 : 0, p = 0.25" in divergence.check(r).statistic
    six = results(**{"no-clip": {"diverged": [1] * 6}, "clip": {"diverged": [0] * 6}})
    assert divergence.check(six).status == "supported" and "p = 0.031" in divergence.check(six).statistic
    same = results(
        **{
            "no-clip": {"diverged": [0, 0, 0], "test_mse_scored": [0.1, 0.2, 0.1]},
            "clip": {"diverged": [0, 0, 0], "test_mse_scored": [0.1, 0.1, 0.2]},
        }
    )
    assert divergence.check(same).status == "inconclusive" and loss.check(same).status == "inconclusive"
    assert exp.claims[0].check(results()).status == "inconclusive"
    # clipping decides "prevents divergence" only where the clipped runs learn: every one below 1/6
    assert learns.check(r).status == "supported"
    flat = results(clip={"test_mse_scored": [0.31, 0.30, 0.32]})  # the T = 100 table until 2026-12-06
    assert learns.check(flat).status == "contradicted" and "holds in 0 of 3 seeds" in learns.check(flat).statistic
    assert learns.check(results(clip={"test_mse_scored": [0.01, 0.02]})).status == "inconclusive"


def test_the_slide_numbers_are_a_check_with_their_error():
    slide = get("gradients").checks[0]
    exact = results(analysis={"scalar_explode": [1.1**50] * 3, "scalar_vanish": [0.9**50] * 3})
    outcome = slide.check(exact)
    assert outcome.holds and outcome.largest_error == 0
    off = results(analysis={"scalar_explode": [1.1**49], "scalar_vanish": [0.9**50]})  # one factor short
    assert not slide.check(off).holds and slide.check(off).largest_error == pytest.approx(1 - 1 / 1.1)


def test_smoke_run_records_the_analysis_and_the_clipping_runs(data_env):
    result = repro("run", "gradients", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    rec = json.loads(open(f"{runs}/gradients/smoke/analysis/seed0/record.json").read())
    m = rec["metrics"]
    assert round(m["scalar_explode"], 1) == 117.4 and round(m["scalar_vanish"], 5) == 0.00515
    assert m["bptt_max_abs_diff"] < 1e-6 and len(rec["curves"]["r0.5"]["tanh"]) == 30
    for variant in ("no-clip", "clip"):
        rec = json.loads(open(f"{runs}/gradients/smoke/{variant}/seed0/record.json").read())
        assert len(rec["traces"]["grad_norm"]) == rec["metrics"]["steps"] > 0
    md = open(f"{runs}/gradients/smoke/report/gradients-smoke.md").read()
    assert "117.4" in md and "Gradient clipping" in md and "gradients-smoke.png" in md
