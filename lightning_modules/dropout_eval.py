"""Two ways to predict with a dropout network, and dropout as an adaptive weight decay.

Test time (Srivastava et al. 2014, section 7.5): the exact prediction of a dropout net is the average
over all 2^n masks, which is intractable. The weight-scaling rule runs the net once with every unit
kept and its outgoing weights multiplied by the keep probability; PyTorch's "inverted" dropout scales
kept units by 1/keep while training instead, so its evaluation mode *is* that rule. The Monte-Carlo
alternative averages the softmax outputs of k random masks. ``mc_error_counts`` measures both on the
same images, for every k = 1..samples at the cost of ``samples`` forward passes.

Adaptive weight decay (slide 22): for linear regression with each input dropped independently, the
expected squared loss over masks is the loss of the weight-scaled (test-time) predictor plus a
penalty that weighs each squared weight by the second moment of its input. ``expected_dropout_loss``
enumerates every mask exactly; ``dropout_loss_closed_form`` is that identity.

Backprop (slide 18): training a dropout net is training, for each example, the thinned net its mask leaves,
so backprop goes through the kept units only. ``backprop_rule_gap`` compares the gradient of PyTorch's
dropout (as training uses it) with that of the thinned nets built by removing the dropped units.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.classifier import ImageClassifier
from lightning_modules.optim import OptimConfig


# ----------------------------------------------------------------------------- Monte-Carlo vs weight scaling
def has_dropout(net: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in net.modules())


@torch.no_grad()
def mc_error_counts(net: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int) -> tuple[int, torch.Tensor]:
    """Wrong predictions on (x, y) of the weight-scaling rule (evaluation mode), and of the average of
    the softmax outputs of k random dropout masks, for every k = 1..samples (a tensor of ``samples``
    counts). Only the dropout layers are switched to training mode for the masked passes (batch norm,
    if any, keeps its evaluation behaviour); the net's modes are restored afterwards. The masks come
    from torch's global random stream, which the runner seeds."""
    modes = {m: m.training for m in net.modules()}
    try:
        net.eval()
        ws_wrong = int((net(x).argmax(1) != y).sum())
        for m in net.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.train()
        total = None
        wrong = torch.zeros(samples, dtype=torch.long)
        for k in range(samples):
            probs = F.softmax(net(x).float(), dim=1)
            total = probs if total is None else total + probs  # argmax of the sum = argmax of the mean
            wrong[k] = int((total.argmax(1) != y).sum())
    finally:
        for m, mode in modes.items():
            m.training = mode
    return ws_wrong, wrong


class MonteCarloDropoutClassifier(ImageClassifier):
    """The image classifier, plus, at test time, weight scaling vs Monte-Carlo mask averaging on the
    first ``mc_images`` test images (0: all; the order is fixed; under DDP split between the ranks), and a per-run
    numerical check of the adaptive-weight-decay identity on a small regression seeded by the run seed."""

    UNDEFINED_WHEN_DIVERGED = ImageClassifier.UNDEFINED_WHEN_DIVERGED + (
        "weight_scaling_error",
        "mc_minus_ws_error",
        *(f"mc_k{k}_error" for k in (1, 10, 50, 100)),
    )

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        num_classes: int,
        mc_samples: int,
        mc_images: int,
        seed: int,
        measures: tuple = (),
    ):
        super().__init__(net, optim, num_classes, measures)
        self.mc_samples = mc_samples if has_dropout(net) else 0  # without dropout every mask is the same net
        self.mc_images, self.seed = mc_images, seed
        self.mc: dict = {}

    def on_test_epoch_start(self) -> None:
        self._mc_seen = 0
        # each rank sees its own shard of the test set: split the image budget between the ranks
        self._mc_budget = -(-self.mc_images // self.trainer.world_size) if self.mc_images else 0
        self._ws_wrong = torch.zeros((), dtype=torch.long)
        self._mc_wrong = torch.zeros(self.mc_samples, dtype=torch.long)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        super().test_step(batch, batch_idx, dataloader_idx)
        if dataloader_idx != 0 or not self.mc_samples:
            return
        x, y = batch
        take = len(y) if not self._mc_budget else max(0, min(len(y), self._mc_budget - self._mc_seen))
        if take:
            ws, mc = mc_error_counts(self.net, x[:take], y[:take], self.mc_samples)
            self._ws_wrong += ws
            self._mc_wrong += mc
            self._mc_seen += take

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.mc_samples:
            reduce = self.trainer.strategy.reduce  # sums over ranks (identity on one process)
            seen = int(reduce(torch.tensor(self._mc_seen, device=self.device), reduce_op="sum"))
            ws = int(reduce(self._ws_wrong.to(self.device), reduce_op="sum"))
            mc = reduce(self._mc_wrong.to(self.device), reduce_op="sum").cpu()
            self.mc = {
                "images": seen,
                "k": list(range(1, self.mc_samples + 1)),
                "error": [float(c) / seen for c in mc],
                "weight_scaling_error": ws / seen,
            }

    def summary(self) -> dict[str, float]:
        out = super().summary()
        out.update(identity_check(self.seed))
        out["backprop_rule_gap"] = backprop_rule_gap(self.seed)
        if self.mc:
            err, ws = self.mc["error"], self.mc["weight_scaling_error"]
            out["weight_scaling_error"] = ws
            for k in (1, 10, 50, 100):
                if k <= len(err):
                    out[f"mc_k{k}_error"] = err[k - 1]
            out["mc_minus_ws_error"] = err[-1] - ws  # k = mc_samples (100 unless overridden)
        return out

    def extras(self) -> dict:
        return {**super().extras(), **({"mc": self.mc} if self.mc else {})}


# ----------------------------------------------------------------------------- dropout as adaptive weight decay
def all_masks(d: int, dtype=torch.float64) -> torch.Tensor:
    """Every binary mask of length d, shape (2^d, d)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=d)), dtype=dtype)


def expected_dropout_loss(
    x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, keep: float, inverted: bool
) -> torch.Tensor:
    """E_m[J] by enumerating all 2^d masks, m_j ~ Bernoulli(keep) independently on the inputs x_j:
    J(m) = 1/(2N) sum_n (t_n - y_n(m))^2 with y_n(m) = sum_j m_j w_j x_nj, times 1/keep if ``inverted``."""
    masks = all_masks(x.shape[1], x.dtype)
    prob = (keep**masks * (1 - keep) ** (1 - masks)).prod(dim=1)  # (2^d,)
    scale = 1 / keep if inverted else 1.0
    pred = (x.unsqueeze(0) * masks.unsqueeze(1) * scale) @ w  # (2^d, N)
    losses = 0.5 * ((pred - t) ** 2).mean(dim=1)
    return (prob * losses).sum()


def scaled_weights(w: torch.Tensor, keep: float, inverted: bool) -> torch.Tensor:
    """The weight-scaling rule: the un-scaled mask's weights are multiplied by keep at test time; inverted
    dropout already scaled the kept inputs by 1/keep while training, so its weights are used as they are."""
    return w if inverted else keep * w


def dropout_loss_closed_form(
    x: torch.Tensor, t: torch.Tensor, w: torch.Tensor, keep: float, inverted: bool
) -> torch.Tensor:
    """E_m[J] = 1/(2N) sum_n (t_n - w~.x_n)^2 + 1/2 (1-keep)/keep sum_j E_n[x_j^2] w~_j^2, w~ the test-time
    weights. Derivation: y_n(m) has mean w~.x_n over masks and variance (1-keep)/keep sum_j w~_j^2 x_nj^2
    (independent masks), and E[(t - y)^2] = (t - E y)^2 + Var y. At keep = 1/2 the coefficient is exactly
    1/2, and for centred inputs E_n[x_j^2] = Var[x_j]: the lecture's 1/2 sum_j Var[x_j] w~_j^2."""
    wt = scaled_weights(w, keep, inverted)
    data = 0.5 * ((x @ wt - t) ** 2).mean()
    penalty = 0.5 * (1 - keep) / keep * ((x**2).mean(dim=0) * wt**2).sum()
    return data + penalty


def lecture_form(x: torch.Tensor, t: torch.Tensor, w_test: torch.Tensor) -> torch.Tensor:
    """The slide's form at keep = 1/2: data term + 1/2 sum_j Var[x_j] w~_j^2 (population variance over the
    N examples); equal to E_m[J] when every input is centred (mean 0 over the data)."""
    return 0.5 * ((x @ w_test - t) ** 2).mean() + 0.5 * (x.var(dim=0, correction=0) * w_test**2).sum()


def identity_check(seed: int, n: int = 32, d: int = 8) -> dict[str, float]:
    """E_m[J] with all 2^d masks enumerated vs the lecture form, on a random centred regression problem
    seeded by ``seed``, drop rate 1/2, float64. Reports both sides for inverted dropout and the largest
    absolute gap over both mask conventions (0 up to rounding if the identity holds)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3.0, d, dtype=torch.float64)
    x = x - x.mean(dim=0)  # centred inputs: second moment = variance
    w = torch.randn(d, generator=g, dtype=torch.float64)
    t = x @ torch.randn(d, generator=g, dtype=torch.float64) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    sides = {
        inv: (expected_dropout_loss(x, t, w, 0.5, inv), lecture_form(x, t, scaled_weights(w, 0.5, inv)))
        for inv in (False, True)
    }
    return {
        "wd_expected_loss": float(sides[True][0]),
        "wd_closed_form": float(sides[True][1]),
        "wd_identity_gap": max(float((a - b).abs()) for a, b in sides.values()),
    }


def identity_gap(seed: int) -> float:
    return identity_check(seed)["wd_identity_gap"]


# ----------------------------------------------------------------------------- backprop through the kept units
def backprop_rule_gap(seed: int, n: int = 16, d: int = 8, hidden: int = 12, classes: int = 3) -> float:
    """Slide 18 on a small net seeded by ``seed`` (float64; tanh hidden units, so a unit's output is 0 only where
    dropout dropped it): the largest absolute gap between the weight gradients of the loss through PyTorch's
    dropout (rate 1/2, its mask read from its output) and those of the thinned nets, one per example, each
    built from the kept units alone (W1's kept rows, W2's kept columns, the kept outputs scaled by 1/keep as
    the forward pass does). 0 up to rounding if backprop goes through the kept units only: a unit dropped in
    every example gets no gradient at all."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    w1 = torch.randn(hidden, d, generator=g, dtype=torch.float64).requires_grad_()
    w2 = torch.randn(classes, hidden, generator=g, dtype=torch.float64).requires_grad_()
    keep = 0.5
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dropped = F.dropout(torch.tanh(x @ w1.T), 1 - keep, training=True)
    F.cross_entropy(dropped @ w2.T, y, reduction="sum").backward()
    through_dropout = [w1.grad.clone(), w2.grad.clone()]
    w1.grad, w2.grad = None, None
    kept = dropped.detach() != 0
    if kept.all() or not kept.any():  # nothing dropped (or nothing kept): the rule is not exercised
        return math.inf
    thinned = sum(
        F.cross_entropy(
            ((torch.tanh(x[i] @ w1[kept[i]].T) / keep) @ w2[:, kept[i]].T).unsqueeze(0), y[i : i + 1], reduction="sum"
        )
        for i in range(n)
    )
    thinned.backward()
    return max(float((a - b).abs().max()) for a, b in zip(through_dropout, [w1.grad, w2.grad], strict=True))
