"""Per-block gradient norms of a deep stack, and a classifier that records them during training.

Backpropagation multiplies the gradient by one Jacobian per block. In a plain stack that product
can shrink or grow geometrically with depth; with a skip connection each factor is (I + dF/dx), and
the gradient reaching early blocks stays the same size. ``block_gradient_norms`` measures this on a
fixed batch: the norm of dL/dh for the stem's output and every block's output h, and the norm of the
gradient of each block's weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.classifier import ImageClassifier
from lightning_modules.optim import OptimConfig


def block_gradient_norms(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[float]]:
    """``activation``: ||dL/dh_l|| for the stem output h_0 and each block output h_1..h_L;
    ``weight``: ||dL/dW|| over each block's parameters; ``branch``: ||h_l - S(h_{l-1})|| / ||S(h_{l-1})||
    per block, S the block's shortcut (0 exactly where the block passes its input through).
    L is the mean cross-entropy on (x, y).

    Batch norm uses the batch's statistics (training mode, as in the training step) and its running
    statistics are left as they were; no parameter's ``.grad`` is touched, so this can run between
    training steps without changing the run."""
    was_training = net.training
    saved = [b.detach().clone() for b in net.buffers()]
    net.train()
    try:
        with torch.enable_grad():
            logits, acts = net.forward_with_activations(x)
            loss = F.cross_entropy(logits.float(), y)
            weights = [list(block.parameters()) for block in net.blocks]
            grads = torch.autograd.grad(loss, acts + [p for ps in weights for p in ps])
    finally:
        with torch.no_grad():
            for b, s in zip(net.buffers(), saved, strict=True):
                b.copy_(s)
        net.train(was_training)
    act_grads, weight_grads = grads[: len(acts)], iter(grads[len(acts) :])
    per_block = [[next(weight_grads) for _ in ps] for ps in weights]
    with torch.no_grad():  # how far each block is from passing its input through: 0 when F(x) = 0
        through = [block.shortcut(h) for block, h in zip(net.blocks, acts, strict=False)]
        branch = [float((out - s).norm() / s.norm().clamp_min(1e-30)) for out, s in zip(acts[1:], through, strict=True)]
    return {
        "activation": [float(g.float().norm()) for g in act_grads],
        "weight": [float(torch.stack([g.float().norm() for g in gs]).norm()) for gs in per_block],
        "branch": branch,
    }


def log10_spread(norms: list[float]) -> float:
    """Orders of magnitude between the largest and the smallest norm (0: all equal)."""
    return math.log10(max(norms) / min(norms)) if min(norms) > 0 else math.inf


class GradientProbedClassifier(ImageClassifier):
    """An ImageClassifier that also measures per-block gradient norms on a fixed batch of clean
    training images: before the first step ("at initialization") and every ``probe_every`` epochs.
    The probes are saved in checkpoints (a resumed run keeps them) and in the run record."""

    def __init__(self, net: nn.Module, optim: OptimConfig, num_classes: int, probe_images: int, probe_every: int):
        super().__init__(net, optim, num_classes)
        self.probe_images, self.probe_every = probe_images, probe_every
        self.probes: list[dict] = []  # {"epoch": e, "activation": [...], "weight": [...]}

    def _probe(self, epoch: int) -> None:
        dm = self.trainer.datamodule
        x, y = (t[: self.probe_images].to(self.device) for t in dm.train)
        self.probes.append({"epoch": epoch, **block_gradient_norms(self.net, dm.transform(x, train=False), y)})

    def on_train_start(self) -> None:
        if not self.probes:  # a resumed run has its probe at initialization already
            self._probe(0)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        epoch = self.current_epoch + 1
        if epoch % self.probe_every == 0 or epoch == self.trainer.max_epochs:
            self._probe(epoch)

    def resume_state(self) -> dict:
        return {**super().extras(), "probes": self.probes}

    def load_resume_state(self, state: dict) -> None:
        self.probes = list(state.get("probes", []))

    def summary(self) -> dict[str, float]:
        first, last = self.probes[0]["activation"], self.probes[-1]["activation"]
        return {
            **super().summary(),
            "params_m": sum(p.numel() for p in self.net.parameters()) / 1e6,
            "grad_spread_init": log10_spread(first),
            "grad_spread_end": log10_spread(last),
            # log10 of ||dL/dh_0|| / ||dL/dh_L||: > 0 the gradient grows towards the input, < 0 it vanishes
            "grad_ratio_init": math.log10(first[0] / first[-1]),
            "grad_ratio_end": math.log10(last[0] / last[-1]),
            "branch_init": max(self.probes[0]["branch"]),  # 0: every block starts as the identity
        }

    def extras(self) -> dict:
        """Saved in the run record beside the history."""
        return {**super().extras(), "probes": self.probes}
