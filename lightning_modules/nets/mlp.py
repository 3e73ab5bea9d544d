"""Fully connected ReLU networks for MNIST-style inputs: dropout, max-norm, a linear bottleneck.

Defaults are the dropout paper's MNIST net (Srivastava et al. 2014, Table 9): 784-1024-1024-2048-10.
Dropout is PyTorch's "inverted" dropout: kept units are scaled by 1/(1-p) while training, so the
evaluation-mode network is exactly the paper's test-time weight scaling rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class MLPConfig:
    hidden: tuple[int, ...] = (1024, 1024, 2048)
    input_dropout: float = 0.0  # the paper's MNIST nets: 0.2
    hidden_dropout: float = 0.0  # the paper's MNIST nets: 0.5
    max_norm: float = 0.0  # > 0: after every step, each hidden unit's incoming weights get norm <= max_norm
    bottleneck: int = 0  # > 0: a linear layer of this width (no bias, no nonlinearity) right after the input

    def validate(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("hidden must list one or more layer widths >= 1")
        if not (0 <= self.input_dropout < 1 and 0 <= self.hidden_dropout < 1):
            raise ValueError("dropout rates must be in [0, 1)")
        if self.max_norm < 0 or self.bottleneck < 0:
            raise ValueError("max_norm and bottleneck must be >= 0")


class MLP(nn.Module):
    def __init__(self, cfg: MLPConfig, in_features: int = 784, num_classes: int = 10):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(cfg.input_dropout)]
        width = in_features
        if cfg.bottleneck:
            layers.append(nn.Linear(width, cfg.bottleneck, bias=False))
            width = cfg.bottleneck
        self.hidden_layers = nn.ModuleList()
        for h in cfg.hidden:
            linear = nn.Linear(width, h)
            self.hidden_layers.append(linear)
            layers += [linear, nn.ReLU(), nn.Dropout(cfg.hidden_dropout)]
            width = h
        self.out = nn.Linear(width, num_classes)
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))

    @torch.no_grad()
    def after_step(self) -> None:
        """Max-norm: project each hidden unit's incoming weight vector (a row) onto the ball of radius c."""
        if self.cfg.max_norm > 0:
            for linear in self.hidden_layers:
                w = linear.weight
                w.mul_((self.cfg.max_norm / w.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0))
