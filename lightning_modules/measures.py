"""What experiments measure on a net beyond its errors: functions of the net returning final metrics (or, for
``weight_histogram``, the record's extras), which ``ImageClassifier(..., measures=(...))`` calls once, after
testing; and per-epoch measures of the net and a fixed probe batch (``weight_norm``, ``saturation``), which
``ImageClassifier(..., epoch_measures=(...))`` records in the history at initialization and after every epoch."""

from __future__ import annotations

import torch
import torch.nn as nn

from lightning_modules.nets.mlp import MLP, first_layer_rank, merge_difference

NEAR_ZERO = (1e-3, 1e-2)  # |w| thresholds for "near zero"
HIST_EDGES = [k / 10 for k in range(-70, 11)]  # log10 |w| bins from 1e-7 to 10 (smaller values: first bin)


def weight_magnitudes(net: nn.Module) -> torch.Tensor:
    """|w| of every entry of every weight matrix or kernel (not the biases: the L1 penalty skips them too)."""
    return torch.cat([p.detach().flatten() for p in net.parameters() if p.dim() > 1]).abs()


def sparsity(net: nn.Module) -> dict[str, float]:
    """How many weights ended near zero (percent below each of NEAR_ZERO), their norm and mean magnitude."""
    w = weight_magnitudes(net)
    near = {f"pct_below_{t:.0e}".replace("e-0", "e-"): 100 * float((w < t).double().mean()) for t in NEAR_ZERO}
    return {**near, "weight_norm": float(w.norm()), "weight_mean_abs": float(w.mean())}


# Slide 15: a logistic unit is nearly linear while its input z is small. Its slope s(z)(1 - s(z)) is 0.25 at z = 0
# and 0.105 at |z| = 2 (0.045 at 3): past |z| = 2 the unit passes on less than half the gain it has at 0 and bends
# visibly (s(2) = 0.881 against the tangent's 1.0), so |z| > 2 counts as outside the near-linear range.
LINEAR_RANGE = 2.0


def weight_norm(net: nn.Module, probe: torch.Tensor | None = None) -> dict[str, float]:
    """The L2 norm of all weights: every entry of every weight matrix or kernel, not the biases (a bias shifts a
    unit's input, it does not scale it, and the L1 penalty of ``weight_magnitudes`` skips them too). ``probe`` is
    unused: the signature of an epoch measure."""
    return {"weight_norm": float(weight_magnitudes(net).double().norm())}


def share_outside(pre_activations: list[torch.Tensor], bound: float = LINEAR_RANGE) -> float:
    """The fraction of all pre-activation values (every unit of every hidden layer, every example, pooled) with
    |z| > ``bound``."""
    z = torch.cat([p.detach().flatten() for p in pre_activations])
    return float((z.abs() > bound).double().mean())


def saturation(net: MLP, probe: torch.Tensor) -> dict[str, float]:
    """The percentage of the hidden units' pre-activations on ``probe`` outside the logistic's near-linear range
    (|z| > LINEAR_RANGE)."""
    return {"saturated_pct": 100.0 * share_outside(net.pre_activations(probe))}


def weight_histogram(net: nn.Module) -> dict:
    """Histogram of log10 |w| over the weight matrices, for the plot."""
    logs = weight_magnitudes(net).clamp_min(10 ** HIST_EDGES[0]).log10()
    counts = torch.histogram(logs.double().cpu(), torch.tensor(HIST_EDGES, dtype=torch.float64)).hist
    return {"weight_histogram": {"log10_edges": HIST_EDGES, "counts": [int(c) for c in counts]}}


def bottleneck(net: MLP) -> dict[str, float]:
    """The rank of the merged first layer W1 B, and how far the merged, unbottlenecked net's outputs are from
    the net's own (relative; float64 rounding only, the inclusion of slide 7)."""
    return {"first_layer_rank": float(first_layer_rank(net)), "merge_diff": merge_difference(net)}


def max_norm_binding(net: MLP) -> dict[str, float]:
    """How often the max-norm projection changed weights: the percentage of optimizer steps at which at least
    one hidden unit's incoming weights were longer than c, and of (unit, step) pairs that were. A constraint
    that never binds is the unconstrained net."""
    steps, units, clipped_steps, clipped_units = net.max_norm_counts()
    return {
        "max_norm_steps_pct": 100.0 * clipped_steps / steps if steps else 0.0,
        "max_norm_units_pct": 100.0 * clipped_units / units if units else 0.0,
    }
