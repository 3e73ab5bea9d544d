"""SGD with a per-step learning-rate schedule, shared by every module in the suite."""

from __future__ import annotations

import math

import torch

from lightning_modules.configs import OptimConfig


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
