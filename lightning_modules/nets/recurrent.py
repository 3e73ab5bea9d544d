"""Recurrent regressors: a net reads a sequence and predicts one number after its last step (the adding problem,
first-value recall)."""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_modules.configs import ClipModelConfig, SequenceModelConfig


# ----------------------------------------------------------------------------- 3. Jacobian norms
def recurrent_matrix(n: int, radius: float | None, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian n x n matrix rescaled to spectral radius ``radius``; ``None``: a random orthogonal matrix."""
    g = torch.randn(n, n, generator=generator, dtype=torch.float64)
    if radius is None:
        q, r = torch.linalg.qr(g)
        return q * torch.sign(torch.diagonal(r))  # Haar-distributed
    return radius * g / torch.linalg.eigvals(g).abs().max()


class RecurrentRegressor(nn.Module):
    def __init__(self, cfg: SequenceModelConfig, in_features: int = 2):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        if cfg.cell == "lstm":
            self.rnn = nn.LSTM(in_features, cfg.hidden, batch_first=True)
        elif cfg.cell == "gru":
            self.rnn = nn.GRU(in_features, cfg.hidden, batch_first=True)
        else:
            nonlinearity = "tanh" if cfg.cell == "rnn" else "relu"
            self.rnn = nn.RNN(in_features, cfg.hidden, nonlinearity=nonlinearity, batch_first=True)
        if cfg.cell == "lstm":
            with torch.no_grad():  # b_f = b_ih[f] + b_hh[f] = forget_bias
                n = cfg.hidden
                self.rnn.bias_ih_l0[n : 2 * n] = cfg.forget_bias
                self.rnn.bias_hh_l0[n : 2 * n] = 0.0
        if cfg.cell == "irnn":
            with torch.no_grad():
                self.rnn.weight_hh_l0.copy_(torch.eye(cfg.hidden))
                self.rnn.bias_hh_l0.zero_()
                self.rnn.bias_ih_l0.zero_()
        self.head = nn.Linear(cfg.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


class RecallRNN(nn.Module):
    """A tanh RNN over (B, T, 1) inputs; a linear readout of the last hidden state. Every weight is drawn from
    ``seed`` (PyTorch's default init, then the recurrent matrix rescaled), whatever the global RNG holds."""

    def __init__(self, cfg: ClipModelConfig, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.rnn = nn.RNN(1, cfg.hidden, nonlinearity="tanh", batch_first=True)
            self.readout = nn.Linear(cfg.hidden, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(recurrent_matrix(cfg.hidden, cfg.init_radius, g).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.readout(out[:, -1])
