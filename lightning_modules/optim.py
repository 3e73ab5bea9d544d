"""SGD with a per-step learning-rate schedule, shared by every module in the suite."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"  # step: /10 at each milestone | cosine | constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for "step"
    warmup: float = 0.0  # fraction of training with a linear warm-up from 0
    l1: float = 0.0  # L1 penalty l1 * sum |w| on weight matrices and kernels (not biases), added to the loss

    def validate(self) -> None:
        if self.schedule not in ("step", "cosine", "constant"):
            raise ValueError("schedule must be step, cosine or constant")
        if self.lr <= 0 or self.weight_decay < 0 or self.l1 < 0 or not 0 <= self.momentum < 1:
            raise ValueError("need lr > 0, weight_decay >= 0, l1 >= 0, 0 <= momentum < 1")
        if not 0 <= self.warmup < 1 or any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("warmup and milestones are fractions of training in [0, 1)")


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` of ``total``."""
    t = step / max(total, 1)
    if cfg.warmup and t < cfg.warmup:
        return t / cfg.warmup
    if cfg.schedule == "step":
        return 0.1 ** sum(t >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return 1.0


def sgd_with_schedule(params, cfg: OptimConfig, total_steps: int):
    """Lightning's configure_optimizers answer: SGD plus a per-step LambdaLR."""
    opt = torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
