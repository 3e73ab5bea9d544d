"""The suite's one learning-rate schedule, and SGD with it."""

from __future__ import annotations

import math

import torch

from lightning_modules.configs import OptimConfig


def lr_multiplier(
    step: int, total: int, schedule: str, warmup_steps: int = 0, floor: float = 0.0, milestones=()
) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (from 0) of ``total``: a linear warm-up
    over the first ``warmup_steps`` steps, then ``constant``; ``step``, x0.1 at each of ``milestones``
    (fractions of the steps after the warm-up); or ``cosine`` from 1 down to ``floor`` at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
    if schedule == "step":
        return 0.1 ** sum(t >= m for m in milestones)
    if schedule == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {schedule!r}")


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """The schedule of an OptimConfig (its warm-up is a fraction of the run)."""
    return lr_multiplier(step, total, cfg.schedule, round(cfg.warmup * total), milestones=cfg.milestones)


def sgd_with_schedule(params, cfg: OptimConfig, total_steps: int, fused: bool = False):
    """Lightning's configure_optimizers answer: SGD plus a per-step LambdaLR (``fused``: the GPU kernel that
    updates every parameter at once; the same arithmetic as the default, in another order of operations)."""
    opt = torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov,
        weight_decay=cfg.weight_decay,
        fused=fused or None,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(cfg, step, total_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
