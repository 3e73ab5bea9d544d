"""One linear hidden unit with a self-loop (slides 29-30): the net, set by hand or drawn at random."""

from __future__ import annotations

import torch
import torch.nn as nn

from datamodules.configs import INPUTS


class TinyRNN(nn.Module):
    """One linear hidden unit with a self-loop, no biases (see the module docstring); float64."""

    def __init__(self, w_self: float, w_in: list[float], w_out: float):
        super().__init__()
        self.w_self = nn.Parameter(torch.tensor(float(w_self), dtype=torch.float64))
        self.w_in = nn.Parameter(torch.tensor([float(w) for w in w_in], dtype=torch.float64))
        self.w_out = nn.Parameter(torch.tensor(float(w_out), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (batch, time, inputs) -> hidden states h and output pre-activations z, each (batch, time)."""
        h = x.new_zeros(x.shape[0])
        hidden = []
        for t in range(x.shape[1]):
            h = self.w_self * h + x[:, t] @ self.w_in
            hidden.append(h)
        h_all = torch.stack(hidden, dim=1)
        return h_all, self.w_out * h_all

    def weights(self) -> dict[str, float]:
        w = {"w_self": self.w_self.item(), "w_out": self.w_out.item()}
        return w | {f"w_in{i + 1}": v for i, v in enumerate(self.w_in.tolist())}


def hand_set(task: str, output_weight: float = 5.0) -> TinyRNN:
    """The slide's net: self-loop 1, input weights 1 (summing) or +1, -1 (comparing), output 1 or large."""
    if task == "summing":
        return TinyRNN(1.0, [1.0], 1.0)
    return TinyRNN(1.0, [1.0, -1.0], output_weight)


def random_init(task: str, scale: float, generator: torch.Generator | None = None) -> TinyRNN:
    w = (2 * torch.rand(2 + INPUTS[task], generator=generator, dtype=torch.float64) - 1) * scale
    return TinyRNN(float(w[0]), w[1:-1].tolist(), float(w[-1]))
