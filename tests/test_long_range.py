"""The long-range experiment: adding-problem data, the IRNN init, the slide-51 exercise (exact), the solved
logic, divergence handling, the claims, and a smoke run end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from datamodules.adding import AddingConfig, AddingDataModule, adding_batch
from datamodules.configs import ADDING_GUESS_MSE
from engine.registry import get
from engine.spec import Results
from lightning_modules.sequence_regressor import (
    RecurrentRegressor,
    SequenceModelConfig,
    SequenceOptimConfig,
    SequenceRegressor,
    cell_state_jacobian,
    forced_cell,
    lstm_as_cell,
    lstm_step,
    steps_to_solve,
)
from tests.conftest import repro


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("length", [2, 7, 50])
def test_two_markers_one_per_half_and_the_target_is_their_sum(length):
    x, y = adding_batch(500, length, torch.Generator().manual_seed(0))
    assert x.shape == (500, length, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    half = length // 2
    assert torch.equal(markers[:, :half].sum(1), torch.ones(500))  # exactly one marker in the first half
    assert torch.equal(markers[:, half:].sum(1), torch.ones(500))  # and one in the second
    assert set(markers.unique().tolist()) <= {0.0, 1.0} and torch.equal(markers.sum(1), torch.full((500,), 2.0))
    assert torch.allclose(y, (values * markers).sum(1))
    assert values.min() >= 0 and values.max() < 1


def test_constant_guess_has_mse_one_sixth():
    _, y = adding_batch(400_000, 10, torch.Generator().manual_seed(1))
    mse = float((y - 1).pow(2).mean())
    # standard error of the mean of (y - 1)^2 is about 0.2 / sqrt(4e5) = 3e-4
    assert mse == pytest.approx(1 / 6, abs=2e-3)
    assert float(y.mean()) == pytest.approx(1.0, abs=3e-3)  # 1 is the best constant
    assert ADDING_GUESS_MSE == 1 / 6


def test_streams_are_seeded_fresh_per_epoch_and_the_test_set_is_separate():
    cfg = AddingConfig(length=12, batch_size=4, steps_per_epoch=3, test_size=10)
    a, b = AddingDataModule(cfg, seed=3), AddingDataModule(cfg, seed=3)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(AddingDataModule(cfg, seed=4).test_x, a.test_x)
    a.trainer = b.trainer = SimpleNamespace(current_epoch=0, global_rank=0, world_size=1)
    loader = a.train_dataloader()
    first = list(loader)
    a.trainer.current_epoch = 1  # the loader reads the trainer's epoch (it survives a resume) as each pass starts
    second = list(loader)
    assert len(first) == 3 and first[0][0].shape == (4, 12, 2)
    assert not torch.equal(first[0][0], second[0][0])  # fresh batches each epoch
    b.trainer.current_epoch = 0
    assert torch.equal(first[0][0], list(b.train_dataloader())[0][0])  # same seed and epoch: same batch
    two = SimpleNamespace(current_epoch=0, global_rank=1, world_size=2)  # rank 1 of 2: its own half of a step
    c = AddingDataModule(AddingConfig(length=12, batch_size=4, steps_per_epoch=3, test_size=10), seed=3)
    c.trainer = two
    shard = list(c.train_dataloader())
    assert shard[0][0].shape == (2, 12, 2) and not torch.equal(shard[0][0], first[0][0][:2])
    assert not any(torch.equal(batch[0], a.test_x[:4]) for batch in first)
    assert sum(len(y) for _, y in a.test_dataloader()) == 10


# ----------------------------------------------------------------------------- models
def test_irnn_starts_from_the_identity_with_zero_biases():
    net = RecurrentRegressor(SequenceModelConfig(cell="irnn", hidden=6))
    assert torch.equal(net.rnn.weight_hh_l0, torch.eye(6))
    assert torch.equal(net.rnn.bias_hh_l0, torch.zeros(6)) and torch.equal(net.rnn.bias_ih_l0, torch.zeros(6))
    assert net.rnn.nonlinearity == "relu"
    assert RecurrentRegressor(SequenceModelConfig(cell="rnn", hidden=6)).rnn.nonlinearity == "tanh"
    # with zero input weights too, the IRNN's hidden state is carried unchanged: relu(I h) = h for h >= 0
    with torch.no_grad():
        net.rnn.weight_ih_l0.zero_()
    h0 = torch.rand(1, 1, 6)
    out, _ = net.rnn(torch.rand(1, 30, 2), h0)
    assert torch.equal(out[0, -1], h0[0, 0])
    assert net(torch.rand(5, 8, 2)).shape == (5,)


def test_the_gru_is_torchs_and_an_update_gate_at_one_carries_its_state_unchanged():
    net = RecurrentRegressor(SequenceModelConfig(cell="gru", hidden=6))
    assert isinstance(net.rnn, torch.nn.GRU) and net(torch.rand(5, 8, 2)).shape == (5,)
    # PyTorch's gate order r, z, n: z = 1 makes h_t = h_{t-1} whatever the input (float64: sigmoid(1000) = 1)
    net = net.double()
    with torch.no_grad():
        net.rnn.bias_ih_l0[6:12] = 1000.0
    h0 = torch.rand(1, 1, 6, dtype=torch.float64)
    out, _ = net.rnn(torch.rand(1, 30, 2, dtype=torch.float64), h0)
    # to rounding: the kernel computes n + z * (h - n)
    assert torch.allclose(out[0, -1], h0[0, 0], rtol=0, atol=1e-12)
    with torch.no_grad():
        net.rnn.bias_ih_l0[6:12] = 0.0  # as initialized: the state moves
    assert (net.rnn(torch.rand(1, 30, 2, dtype=torch.float64), h0)[0][0, -1] - h0[0, 0]).abs().max() > 1e-3


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_the_irnn_trains_at_its_own_stable_learning_rate_and_the_other_cells_at_the_suites(profile):
    exp = get("long-range")
    lrs = {v: exp.resolve(v, profile).optim.lr for v in ("rnn-100", "irnn-100", "lstm-100", "irnn-400")}
    assert lrs == {"rnn-100": 1e-2, "irnn-100": 1e-3, "lstm-100": 1e-2, "irnn-400": 1e-3}
    assert "lr 0.001" in exp.variant("irnn-100").description and "lr" not in exp.variant("rnn-100").description


# ----------------------------------------------------------------------------- slide 51
def cell64(hidden=5, seed=0):
    torch.manual_seed(seed)
    return torch.nn.LSTMCell(2, hidden).to(torch.float64)


def test_the_hand_written_step_is_torchs_lstm_cell():
    cell = cell64()
    x, h, c = (
        torch.rand(3, 2, dtype=torch.float64),
        torch.randn(3, 5, dtype=torch.float64),
        torch.randn(3, 5, dtype=torch.float64),
    )
    h1, c1, _ = lstm_step(cell, x, h, c)
    h_ref, c_ref = cell(x, (h, c))
    assert torch.allclose(h1, h_ref, atol=1e-12) and torch.allclose(c1, c_ref, atol=1e-12)
    lstm = torch.nn.LSTM(2, 5)
    as_cell = lstm_as_cell(lstm)
    out, (_, c_lstm) = lstm(x[:1].float().unsqueeze(0))
    h_cell, c_cell = as_cell(x[:1], (torch.zeros(1, 5, dtype=torch.float64),) * 2)
    assert torch.allclose(h_cell.float(), out[0], atol=1e-6) and torch.allclose(c_cell.float(), c_lstm[0], atol=1e-6)


@pytest.mark.parametrize("steps", [2, 3, 25])
def test_forget_one_input_zero_passes_the_cell_gradient_back_unchanged(steps):
    """c_t = f c_{t-1} + i g with f = 1 and i = 0 exactly: c_t = c_{t-1}, and every other path from c_1 to
    c_T goes through a gate derivative y (1 - y) = 0 or is multiplied by i = 0, so dc_T/dc_1 = I exactly."""
    cell = forced_cell(cell64())
    xs = torch.rand(steps, 2, dtype=torch.float64)
    h, c0 = torch.zeros(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    c = c0
    cells = []
    for x in xs:
        h, c, (i, f, g, o) = lstm_step(cell, x, h, c)
        assert bool((f == 1).all() and (i == 0).all())  # exactly, not nearly
        cells.append(c)
    assert all(torch.equal(c_t, c0) for c_t in cells)  # the memory holds its content unchanged
    jac = cell_state_jacobian(cell, xs)
    assert torch.equal(jac, torch.eye(5, dtype=torch.float64))
    # and a loss's gradient at c_1 is exactly its gradient at c_T
    c1 = torch.randn(5, dtype=torch.float64, requires_grad=True)
    h, c = o * torch.tanh(c1), c1
    for x in xs[1:]:
        h, c, _ = lstm_step(cell, x, h, c)
    w = torch.randn(5, dtype=torch.float64)
    (w * c).sum().backward()
    assert torch.equal(c1.grad, w)


def test_without_the_forced_gates_the_cell_gradient_is_not_the_identity():
    cell, xs = cell64(), torch.rand(25, 2, dtype=torch.float64)
    jac = cell_state_jacobian(cell, xs)
    assert (jac - torch.eye(5, dtype=torch.float64)).abs().max() > 0.1
    # forget gate at 1 but the input gate left free: the path through h and g makes it differ from I
    half = forced_cell(cell)
    with torch.no_grad():
        half.bias_ih[:5] = cell.bias_ih[:5]
    assert not torch.equal(cell_state_jacobian(half, xs), torch.eye(5, dtype=torch.float64))


# ----------------------------------------------------------------------------- solved logic
def test_steps_to_solve_is_the_first_evaluation_below_the_threshold():
    curve = [(0, 0.17), (100, 0.05), (200, 0.0166), (300, 0.01), (400, 0.03), (500, 0.005)]
    assert steps_to_solve(curve, 1 / 60) == 200.0  # 0.0166 < 0.01667
    assert steps_to_solve(curve, 0.0166) == 300.0  # equal is not below
    assert math.isnan(steps_to_solve(curve, 0.001))
    assert math.isnan(steps_to_solve([(0, math.nan)], 1.0))


class Listed(list):
    """A loader over a fixed list of batches (Lightning would read a plain list as one loader per batch)."""

    def __iter__(self):
        return iter(list(super().__iter__()))


class NaNInputs(AddingDataModule):
    def train_dataloader(self):
        x, y = self.test_x[:4].clone(), self.test_y[:4]
        x[0, 0, 0] = math.nan
        return Listed([(self.test_x[:4], self.test_y[:4]), (x, y), (self.test_x[:4], self.test_y[:4])])


def test_divergence_is_recorded_and_stops_training_without_an_exception():
    torch.manual_seed(0)
    module = SequenceRegressor(SequenceModelConfig(cell="rnn", hidden=4), SequenceOptimConfig(), 1 / 60)
    dm = NaNInputs(AddingConfig(length=6, test_size=8, eval_batch_size=8), seed=0)
    trainer = L.Trainer(
        max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, datamodule=dm)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    trainer.test(module, datamodule=dm, verbose=False)
    s = module.record_metrics()
    assert s["diverged"] == 1.0 and module.diverged_at == 2.0 and s["steps"] == 1.0  # one step, then the NaN
    assert all(torch.isfinite(v).all() for v in before.values())  # the NaN step was skipped
    # no test score from a diverged run (an exploded model's MSE can be 1e21); the curve before it stays
    assert math.isnan(s["test_mse"]) and math.isnan(s["mse_pct_of_guess"]) and s["solved_pct"] == 0.0
    assert math.isfinite(s["min_test_mse"]) and s["wall_time"] > 0


# ----------------------------------------------------------------------------- claims
def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_use_the_longest_length_and_paired_seeds():
    exp = get("long-range")
    lower, solved, irnn, gru = exp.claims
    (carry,) = exp.checks
    r = results(
        **{
            "rnn-50": {"test_mse": [0.17, 0.16, 0.17], "solved_pct": [0, 0, 0]},
            "lstm-50": {"test_mse": [0.17, 0.17, 0.16], "solved_pct": [0, 0, 0]},  # noqa: E501
            "rnn-100": {"test_mse": [0.166, 0.167, 0.165], "solved_pct": [0, 0, 0]},
            "lstm-100": {"test_mse": [0.004, 0.006, 0.010], "solved_pct": [100, 100, 100]},
            "lstm-200": {"test_mse": [0.2, 0.2, 0.2], "solved_pct": [0, 0, 0]},  # no rnn-200: not used
        }
    )
    assert lower.check(r).status == "supported" and "T = 100" in lower.check(r).statistic
    assert solved.check(r).status == "supported"
    assert irnn.check(r).status == "inconclusive" and gru.check(r).status == "inconclusive"  # no IRNN, GRU runs
    r.values["gru-100"] = {"test_mse": {0: 0.01, 1: 0.02, 2: 0.015}, "solved_pct": {0: 100.0, 1: 0.0, 2: 100.0}}
    assert gru.check(r).status == "supported" and "T = 100" in gru.check(r).statistic
    r.values["gru-100"]["test_mse"] = {0: 0.17, 1: 0.18, 2: 0.19}  # no better than the tanh RNN's
    assert gru.check(r).status != "supported"
    r.values["irnn-100"] = {"test_mse": {0: 0.01, 1: 4e21, 2: 0.02}, "diverged": {0: 0.0, 1: 1.0, 2: 0.0}}
    verdict = irnn.check(r)  # a diverged run's MSE is no score: no mean of 1e21 in the table, and no verdict
    assert verdict.status == "inconclusive" and "irnn 1 of 3" in verdict.statistic and "e+" not in verdict.statistic
    r.values["irnn-100"]["diverged"][1], r.values["irnn-100"]["test_mse"][1] = 0.0, 0.015
    assert irnn.check(r).status == "supported"  # every run stable: the paired comparison decides
    r.values["irnn-100"] = {"diverged": {0: 1.0, 1: 1.0, 2: 1.0}}  # as recorded since bc8a51f: no test MSE at all
    assert "runs diverged (irnn 3 of 3)" in irnn.check(r).statistic and irnn.check(r).status == "inconclusive"
    r.values["rnn-100"]["solved_pct"] = {0: 100, 1: 100, 2: 100}
    assert solved.check(r).status == "contradicted"
    ok = results(**{"lstm-50": {"forced_carry_deviation": [0.0, 0.0]}, "lstm-100": {"forced_carry_deviation": [0.0]}})
    assert carry.check(ok).holds
    bad = results(**{"lstm-50": {"forced_carry_deviation": [0.0, 1e-18]}})
    assert not carry.check(bad).holds and carry.check(bad).largest_error == 1e-18
    assert carry.check(results()).holds is None


# ----------------------------------------------------------------------------- end to end
def test_smoke_run_records_metrics_and_writes_the_report(data_env):
    result = repro("run", "long-range", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant in ("rnn-50", "irnn-50", "lstm-50"):
        rec = json.loads(open(f"{runs}/long-range/smoke/{variant}/seed0/record.json").read())
        m, hist = rec["metrics"], rec["history"]
        assert [h["step"] for h in hist] == [0, 5, 10]  # before training, then every 5 steps
        assert m["test_mse"] == pytest.approx(hist[-1]["test_mse"], rel=1e-5)
        assert m["solved_pct"] == 100.0 * (m["test_mse"] < 1 / 60) and m["diverged"] == 0.0
        assert m["mse_pct_of_guess"] == pytest.approx(600 * m["test_mse"])
        assert ("forced_carry_deviation" in m) == (variant == "lstm-50")
    assert rec["metrics"]["forced_carry_deviation"] == 0.0
    md = open(f"{runs}/long-range/smoke/report/long-range-smoke.md").read()
    assert "adding problem" in md and "long-range-smoke.png" in md and "dc_T/dc_1 = I exactly" in md
