"""Fully connected ReLU networks for MNIST-style inputs: dropout, max-norm, a linear bottleneck.

Defaults are the dropout paper's MNIST net (Srivastava et al. 2014, Table 9): 784-1024-1024-2048-10.
Dropout is PyTorch's "inverted" dropout: kept units are scaled by 1/(1-p) while training, so the
evaluation-mode network is exactly the paper's test-time weight scaling rule.

A linear bottleneck of k units (slide 7) sits right after the input, without bias or nonlinearity: the
first hidden layer then sees W1 (B x), and ``merge_bottleneck`` builds the unbottlenecked net with first
layer W1 B that computes the same function (every bottlenecked net is one; rank(W1 B) <= k).
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn as nn

from lightning_modules.configs import MLPConfig


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
            norm = [] if not cfg.batch_norm else [nn.BatchNorm1d(h) if cfg.batch_norm == "batch" else FixedStatsNorm(h)]
            act = nn.ReLU() if cfg.activation == "relu" else nn.Sigmoid()
            layers += [linear, *norm, act, nn.Dropout(cfg.hidden_dropout)]
            width = h
        self.out = nn.Linear(width, num_classes)
        self.body = nn.Sequential(*layers)
        if cfg.max_norm > 0:  # how often the projection binds (steps, units, clipped steps, clipped units)
            self.register_buffer("max_norm_counters", torch.zeros(4, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))

    @torch.no_grad()
    def pre_activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The inputs of each hidden layer's nonlinearity (after its normalization, if any) on ``x``."""
        out, h = [], x
        for layer in self.body:
            if isinstance(layer, (nn.ReLU, nn.Sigmoid)):
                out.append(h)
            h = layer(h)
        return out

    @torch.no_grad()
    def after_step(self) -> None:
        """Max-norm: project each hidden unit's incoming weight vector (a row) onto the ball of radius c, and
        count how often that changed anything."""
        if self.cfg.max_norm > 0:
            clipped = torch.zeros((), dtype=torch.int64, device=self.max_norm_counters.device)
            units = 0
            for linear in self.hidden_layers:
                w = linear.weight
                norms = w.norm(dim=1, keepdim=True)
                clipped += (norms > self.cfg.max_norm).sum()
                units += w.shape[0]
                w.mul_((self.cfg.max_norm / norms.clamp_min(1e-12)).clamp(max=1.0))
            self.max_norm_counters += torch.stack(
                [torch.ones_like(clipped), clipped.new_tensor(units), (clipped > 0).long(), clipped]
            )

    def max_norm_counts(self) -> tuple[int, int, int, int]:
        """(steps, unit-steps, steps with a unit clipped, unit-steps clipped) since the start of training."""
        if self.cfg.max_norm <= 0:
            return 0, 0, 0, 0
        steps, units, clipped_steps, clipped_units = (int(v) for v in self.max_norm_counters)
        return steps, units, clipped_steps, clipped_units


class FixedStatsNorm(nn.BatchNorm1d):
    """Batch normalization without the batch noise (slide 24: the noise of the batch statistics is what
    regularizes). The same parameters (scale and shift per unit) and the same running statistics as
    ``nn.BatchNorm1d``, but while training it normalizes each batch with the running mean and variance stored
    *before* that batch, as constants; only then does it fold the batch's mean and variance into them (the same
    update and momentum as BatchNorm1d). So an example's output never depends on the other examples of its
    batch, and no gradient flows through the statistics. In evaluation mode it is an ordinary BatchNorm1d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        # copies: the stored statistics are updated in place below, after autograd has saved what it needs
        mean, var = self.running_mean.clone(), self.running_var.clone()
        out = nn.functional.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        with torch.no_grad():  # then the running statistics follow the data, as BatchNorm1d's do
            self.running_mean.lerp_(x.mean(0), self.momentum)
            self.running_var.lerp_(x.var(0, unbiased=True), self.momentum)
            self.num_batches_tracked += 1
        return out


# ----------------------------------------------------------------------------- the bottleneck's linear algebra
def bottleneck_layer(net: MLP) -> nn.Linear | None:
    """The bias-free k-wide linear layer right after the input, or None without a bottleneck."""
    if not net.cfg.bottleneck:
        return None
    first = next(m for m in net.body if isinstance(m, nn.Linear))
    assert first is not net.hidden_layers[0] and first.bias is None
    return first


def first_layer_matrix(net: MLP) -> torch.Tensor:
    """The matrix the first hidden layer's pre-activations apply to the input: W1 B with a bottleneck B,
    else W1 (float64, so the product adds no rounding to speak of)."""
    w1 = net.hidden_layers[0].weight.detach().double()
    b = bottleneck_layer(net)
    return w1 if b is None else w1 @ b.weight.detach().double()


def first_layer_rank(net: MLP) -> int:
    """Numerical rank of the merged first-layer matrix (torch's default tolerance: sigma_max * max(m, n) * eps)."""
    return int(torch.linalg.matrix_rank(first_layer_matrix(net)))


def input_features(net: MLP) -> int:
    """Width of the net's input (784 for MNIST)."""
    first = bottleneck_layer(net) or net.hidden_layers[0]
    return first.in_features


def merge_bottleneck(net: MLP) -> MLP:
    """The unbottlenecked MLP (same hidden widths, float64) that computes exactly the same function:
    its first layer is W1 B, every other layer is copied. The inclusion of slide 7."""
    cfg = dataclasses.replace(net.cfg, bottleneck=0, max_norm=0.0)
    merged = MLP(cfg, in_features=input_features(net), num_classes=net.out.out_features).double()
    with torch.no_grad():
        merged.hidden_layers[0].weight.copy_(first_layer_matrix(net))
        merged.hidden_layers[0].bias.copy_(net.hidden_layers[0].bias)
        for dst, src in zip(merged.hidden_layers[1:], net.hidden_layers[1:], strict=True):
            dst.load_state_dict(src.state_dict())
        merged.out.load_state_dict(net.out.state_dict())
    return merged.train(net.training)


def merge_difference(net: MLP, inputs: int = 256, seed: int = 0) -> float:
    """Largest |output difference| between ``net`` (in float64) and its merged form, relative to the largest
    |output|, on random Gaussian inputs in evaluation mode (the identity holds for every input)."""
    x = torch.randn(inputs, input_features(net), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    original = copy.deepcopy(net).cpu().double().eval()
    merged = merge_bottleneck(net).eval()
    with torch.no_grad():
        a, b = original(x), merged(x)
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-300))
