"""A recurrent network that reads a sequence and predicts one number after its last step (the adding
problem), and the slide-51 exercise on the LSTM memory cell.

Cells (one layer, ``hidden`` units, a linear read-out of the last hidden state):
- ``rnn``: h_t = tanh(W x_t + U h_{t-1} + b), PyTorch's default init.
- ``irnn``: the same with ReLU, U initialized to the identity and both biases to 0 (Le, Jaitly & Hinton
  2015); the input weights keep PyTorch's default init.
- ``lstm``: the LSTM (PyTorch's gate order i, f, g, o), forget-gate bias initialized to ``forget_bias``:
      i, f, o = sigmoid(.), g = tanh(.)  of  W x_t + U h_{t-1} + b
      c_t = f * c_{t-1} + i * g,          h_t = o * tanh(c_t).
- ``gru``: the GRU (Cho et al. 2014), PyTorch's default init: gated like the LSTM, with no separate memory cell:
      r, z = sigmoid(.), n = tanh(W_n x_t + r * (U_n h_{t-1} + b)),   h_t = (1 - z) * n + z * h_{t-1}.

Training: Adam on the mean squared error, fresh batches every step, gradient norm clipped. A non-finite
loss or gradient (divergence) is recorded, never raised: the step is skipped and training stops, so the
parameters stay those of the last finite step. After every epoch (``steps_per_epoch`` batches) the test
MSE is measured on the fixed test set: the curve gives the steps to solve (the first evaluation below
the threshold). Nothing is selected on the test set: the final model is the last one.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from datamodules.configs import ADDING_GUESS_MSE
from lightning_modules.base import RecordedModule
from lightning_modules.configs import SequenceModelConfig, SequenceOptimConfig
from lightning_modules.nets.recurrent import RecurrentRegressor

FORCE = 1000.0  # a gate pre-activation this large makes sigmoid exactly 1 (or 0 for -FORCE) in float64


def steps_to_solve(curve: list[tuple[int, float]], threshold: float) -> float:
    """The training step of the first evaluation whose MSE is below ``threshold``; nan if none is."""
    for step, mse in curve:
        if mse < threshold:
            return float(step)
    return math.nan


# ----------------------------------------------------------------------------- the slide-51 exercise
def lstm_step(cell: nn.LSTMCell, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """One LSTM step written out (the slide's equations); returns h_t, c_t and the gates (i, f, g, o)."""
    pre = F.linear(x, cell.weight_ih, cell.bias_ih) + F.linear(h, cell.weight_hh, cell.bias_hh)
    a_i, a_f, a_g, a_o = pre.chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c_next = f * c + i * g
    return o * torch.tanh(c_next), c_next, (i, f, g, o)


def forced_cell(cell: nn.LSTMCell) -> nn.LSTMCell:
    """A copy whose forget gate is exactly 1 and input gate exactly 0 (bias +-FORCE on those gates), as
    long as the rest of their pre-activations stays far below FORCE in size (checked by the caller)."""
    forced = copy.deepcopy(cell)
    n = cell.hidden_size
    with torch.no_grad():
        forced.bias_ih[:n] = -FORCE  # input gate: sigmoid(-1000) = 0 exactly (exp(1000) overflows to inf)
        forced.bias_ih[n : 2 * n] = FORCE  # forget gate: sigmoid(1000) = 1 exactly
    return forced


def cell_state_jacobian(cell: nn.LSTMCell, xs: torch.Tensor) -> torch.Tensor:
    """dc_T/dc_1 (hidden x hidden) of ``cell`` run over the steps ``xs`` (T, in) from a zero state.

    c_1 is the cell state after the first step; h_1 = o_1 * tanh(c_1) is computed from it, so the
    Jacobian is the total derivative: the direct path c_1 -> c_2 -> ... -> c_T (a product of diag(f_t))
    and every path through the hidden states and the gates. With f_t = 1 and i_t = 0 exactly, every gate
    derivative is 0 (sigmoid's backward is y (1 - y)) and i_t multiplies the path through g_t, so only
    the direct path is left and dc_T/dc_1 = I exactly."""
    zeros = xs.new_zeros(cell.hidden_size)
    _, c1, (_, _, _, o1) = lstm_step(cell, xs[0], zeros, zeros)

    def carry(c: torch.Tensor) -> torch.Tensor:
        h = o1 * torch.tanh(c)
        for x in xs[1:]:
            h, c, _ = lstm_step(cell, x, h, c)
        return c

    return torch.autograd.functional.jacobian(carry, c1.detach())


def lstm_as_cell(lstm: nn.LSTM, dtype=torch.float64) -> nn.LSTMCell:
    """The one-layer ``lstm`` as an LSTMCell (same weights, same gate order), in ``dtype``."""
    cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size).to(dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(lstm, f"{name}_l0"))
    return cell


# ----------------------------------------------------------------------------- the LightningModule
class SequenceRegressor(RecordedModule):
    """Trains a RecurrentRegressor on MSE; evaluates the test MSE after every epoch (and before step 1)."""

    # the last finite step's parameters can still be an exploded model (a test MSE of 1e21); the curve before the
    # divergence (min_test_mse, steps_to_solve) stays
    UNDEFINED_WHEN_DIVERGED = ("test_mse", "mse_pct_of_guess")

    def __init__(self, model: SequenceModelConfig, optim: SequenceOptimConfig, solved_below: float):
        super().__init__()
        optim.validate()
        self.net = RecurrentRegressor(model)
        self.optim, self.solved_below = optim, solved_below
        # manual: a step whose loss or gradient is not finite is skipped, then training stops, so the parameters
        # stay those of the last finite step
        self.automatic_optimization = False
        self.final: dict[str, float] = {}
        self._epoch_losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def test_mse(self) -> float:
        """MSE on the data module's fixed test set (the network's eval mode; nothing in it depends on it)."""
        dm = self.trainer.datamodule
        total, b = 0.0, dm.cfg.eval_batch_size
        for i in range(0, len(dm.test_y), b):  # the whole test set on every rank: it is small
            x, y = dm.test_x[i : i + b].to(self.device), dm.test_y[i : i + b].to(self.device)
            total += float(F.mse_loss(self.net(x), y, reduction="sum"))
        return total / len(dm.test_y)

    def on_train_start(self) -> None:
        if not self.history:  # the curve starts at step 0, before any training
            self.history.append({"epoch": 0, "step": 0, "test_mse": self.test_mse(), "seconds": 0.0})

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch_losses = []

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = F.mse_loss(self.net(x), y)
        if not self.check_loss(loss, force=True):
            return None
        opt.zero_grad()
        self.manual_backward(loss)
        if not self.check_loss(self.clip_gradient_norm(opt, self.optim.clip), force=True, limit=math.inf):
            return None
        opt.step()
        self._epoch_losses.append(float(loss))
        self.log("train/mse_step", loss, prog_bar=True, logger=False)

    def on_train_epoch_end(self) -> None:
        losses = self._epoch_losses
        self.end_epoch(
            {
                "step": self.global_step,
                "train_mse": sum(losses) / len(losses) if losses else math.nan,
                "test_mse": self.test_mse(),
            }
        )

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        self._test_sums = getattr(self, "_test_sums", [0.0, 0])
        self._test_sums[0] += float(F.mse_loss(self.net(x), y, reduction="sum"))
        self._test_sums[1] += len(y)

    def on_test_epoch_end(self) -> None:
        sums = torch.tensor(self._test_sums, dtype=torch.float64, device=self.device)
        total, n = self.trainer.strategy.reduce(sums, reduce_op="sum").tolist()  # over the ranks' shards
        self.final = {"test_mse": total / n}
        self._test_sums = [0.0, 0]

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.optim.lr)

    def carry_check(self) -> dict[str, float]:
        """LSTM only: the slide-51 exercise on this trained cell, in float64 over one test sequence.
        forced_carry_deviation: max |dc_T/dc_1 - I| with the forget gate forced to 1 and the input gate to 0
        (exactly 0 expected); carry_gain: the spectral norm of dc_T/dc_1 of the trained cell as it is."""
        if self.net.cfg.cell != "lstm":
            return {}
        cell = lstm_as_cell(self.net.rnn)
        xs = self.trainer.datamodule.test_x[0].to(torch.float64)
        forced = forced_cell(cell)
        eye = torch.eye(cell.hidden_size, dtype=torch.float64)
        return {
            "forced_carry_deviation": float((cell_state_jacobian(forced, xs) - eye).abs().max()),
            "carry_gain": float(torch.linalg.matrix_norm(cell_state_jacobian(cell, xs), ord=2)),
        }

    def summary(self) -> dict[str, float]:
        test = self.final["test_mse"]
        curve = [(row["step"], row["test_mse"]) for row in self.history]
        return {
            "test_mse": test,
            "solved_pct": 100.0 * (test < self.solved_below),  # 0 or 100 per run (0 for a nan model)
            "steps_to_solve": steps_to_solve(curve, self.solved_below),
            "min_test_mse": min((mse for _, mse in curve if not math.isnan(mse)), default=math.nan),
            # as a percentage of the constant guess's 1/6 (what the tables show: 2 decimals stay readable)
            "mse_pct_of_guess": 100 * test / ADDING_GUESS_MSE,
            "steps": float(self.global_step),
            **self.carry_check(),
            "wall_time": self.train_seconds,
        }
