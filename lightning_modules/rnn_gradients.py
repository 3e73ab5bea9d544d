"""Backprop through time, and why RNN gradients vanish or explode (slides 40-48).

Two modules:

``GradientAnalysis``: deterministic computations, done in one training step (manual optimization) and
recorded as metrics and extras:
1. the scalar linear RNN h_t = w h_{t-1} + x_t: dh_T/dh_0 = w^T, taken by autograd through T steps
   (the slide's 117.4 and 0.00515 are 1.1^50 and 0.9^50: 50 factors of w);
2. the slide-42 backprop-through-time equations, written out by hand for a small tanh RNN, compared
   with autograd in float64;
3. the norm of the Jacobian dh_T/dh_1 = prod_{t=2..T} diag(1 - h_t^2) W against T, for tanh RNNs whose
   recurrent matrix W has spectral radius 0.5 ... 1.5 (random Gaussian, rescaled) or is orthogonal,
   and for the same RNNs without the tanh (dh_T/dh_1 = W^(T-1));
4. the iterated function f(x) = 3.5 x (1 - x): f^n and its derivative (f^n)'(x) = prod_k f'(x_k) over
   a grid of starting points, and which cycle point of the attracting 4-cycle each start ends on.

``ClippedRNNRegressor``: a vanilla tanh RNN trained by plain SGD on a long first-value recall task
(``datamodules/sequences.py``), with or without gradient-norm clipping (Pascanu et al. 2013: if
||g|| > c, g <- c g / ||g||). A non-finite loss or gradient norm is recorded as divergence (the step
number), the run stops updating, and the record says so: it never raises.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn as nn

from datamodules.configs import RECALL_GUESS_MSE
from lightning_modules.base import RecordedModule
from lightning_modules.configs import AnalysisConfig, ClipModelConfig, ClipOptimConfig, radius_key
from lightning_modules.nets.recurrent import RecallRNN, recurrent_matrix

LOGISTIC_R = 3.5


# ----------------------------------------------------------------------------- 1. scalar linear RNN
def scalar_linear_jacobian(w: float, steps: int) -> float:
    """dh_steps/dh_0 for h_t = w h_{t-1} + x_t, by autograd through ``steps`` steps (float64)."""
    h0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    xs = torch.linspace(-1, 1, steps, dtype=torch.float64)  # inputs do not change the derivative
    h = h0
    for x in xs:
        h = w * h + x
    (grad,) = torch.autograd.grad(h, h0)
    return float(grad)


# ----------------------------------------------------------------------------- 2. BPTT by hand
@dataclass
class TanhRNN:
    """Parameters of z_t = U x_t + W h_{t-1} + b, h_t = tanh(z_t), r_t = V h_t + c, y_t = tanh(r_t)."""

    U: torch.Tensor  # (n, m)
    W: torch.Tensor  # (n, n)
    b: torch.Tensor  # (n,)
    V: torch.Tensor  # (k, n)
    c: torch.Tensor  # (k,)

    @staticmethod
    def random(m: int, n: int, k: int, generator: torch.Generator, dtype=torch.float64) -> TanhRNN:
        def g(*shape, scale=1.0):
            return scale * torch.randn(*shape, generator=generator, dtype=dtype)

        return TanhRNN(
            g(n, m, scale=m**-0.5), g(n, n, scale=n**-0.5), g(n, scale=0.1), g(k, n, scale=n**-0.5), g(k, scale=0.1)
        )

    def names(self) -> tuple[str, ...]:
        return ("U", "W", "b", "V", "c")


def rnn_forward(p: TanhRNN, xs: torch.Tensor, h0: torch.Tensor):
    """The slide-42 forward pass over one sequence xs (T, m): lists of h_t (t = 0..T) and y_t (t = 1..T)."""
    hs, ys = [h0], []
    for x in xs:
        h = torch.tanh(p.U @ x + p.W @ hs[-1] + p.b)
        hs.append(h)
        ys.append(torch.tanh(p.V @ h + p.c))
    return hs, ys


def rnn_loss(p: TanhRNN, xs: torch.Tensor, targets: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """L = sum_t 1/2 ||y_t - target_t||^2."""
    _, ys = rnn_forward(p, xs, h0)
    return sum(0.5 * (y - t).pow(2).sum() for y, t in zip(ys, targets, strict=True))


def bptt_by_hand(p: TanhRNN, xs: torch.Tensor, targets: torch.Tensor, h0: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradients of ``rnn_loss`` from the slide-42 equations, with no autograd (bars are dL/d.):

    ybar_t = y_t - target_t                     rbar_t = ybar_t * tanh'(r_t) = ybar_t (1 - y_t^2)
    hbar_t = V^T rbar_t + W^T zbar_{t+1}        zbar_t = hbar_t (1 - h_t^2)          (zbar_{T+1} = 0)
    Ubar = sum_t zbar_t x_t^T    Wbar = sum_t zbar_t h_{t-1}^T    bbar = sum_t zbar_t
    Vbar = sum_t rbar_t h_t^T    cbar = sum_t rbar_t              h0bar = W^T zbar_1
    """
    with torch.no_grad():
        hs, ys = rnn_forward(p, xs, h0)
        grads = {name: torch.zeros_like(getattr(p, name)) for name in p.names()}
        zbar_next = torch.zeros_like(h0)
        for t in range(len(xs), 0, -1):  # t = T .. 1; hs[t] is h_t, ys[t - 1] is y_t
            y, h, h_prev = ys[t - 1], hs[t], hs[t - 1]
            rbar = (y - targets[t - 1]) * (1 - y**2)
            hbar = p.V.T @ rbar + p.W.T @ zbar_next
            zbar = hbar * (1 - h**2)
            grads["U"] += torch.outer(zbar, xs[t - 1])
            grads["W"] += torch.outer(zbar, h_prev)
            grads["b"] += zbar
            grads["V"] += torch.outer(rbar, h)
            grads["c"] += rbar
            zbar_next = zbar
        grads["h0"] = p.W.T @ zbar_next
    return grads


def bptt_vs_autograd(p: TanhRNN, xs: torch.Tensor, targets: torch.Tensor, h0: torch.Tensor) -> float:
    """Largest absolute difference between the hand-derived gradients and autograd's."""
    leaves = TanhRNN(*(getattr(p, n).detach().clone().requires_grad_(True) for n in p.names()))
    h0_leaf = h0.detach().clone().requires_grad_(True)
    inputs = [getattr(leaves, n) for n in p.names()] + [h0_leaf]
    auto = torch.autograd.grad(rnn_loss(leaves, xs, targets, h0_leaf), inputs)
    hand = bptt_by_hand(p, xs, targets, h0)
    return max(float((hand[n] - a).abs().max()) for n, a in zip((*p.names(), "h0"), auto, strict=True))


def jacobian_norms(W: torch.Tensor, drive: torch.Tensor, linear: bool = False) -> list[float]:
    """||dh_T/dh_1||_2 for T = 1 .. len(drive) + 1 along h_t = tanh(W h_{t-1} + drive_t), h_1 = tanh(drive_0)
    (drive_t = U x_t + b, one row per step). dh_T/dh_1 = prod_{t=2..T} diag(1 - h_t^2) W, accumulated
    one factor at a time; ``linear``: without the tanh, so the product is exactly W^(T-1)."""
    n = W.shape[0]
    h = drive[0] if linear else torch.tanh(drive[0])
    J = torch.eye(n, dtype=W.dtype)
    norms = [1.0]
    for d in drive[1:]:
        if linear:
            h = W @ h + d
            J = W @ J
        else:
            h = torch.tanh(W @ h + d)
            J = (1 - h**2)[:, None] * (W @ J)
        norms.append(float(torch.linalg.matrix_norm(J, ord=2)))
    return norms


# ----------------------------------------------------------------------------- 4. the iterated function
def logistic_orbit(x0: torch.Tensor, steps: int, r: float = LOGISTIC_R) -> tuple[torch.Tensor, torch.Tensor]:
    """f^steps(x0) and (f^steps)'(x0) = prod_{k<steps} f'(x_k), f(x) = r x (1 - x), f'(x) = r (1 - 2x)."""
    x, d = x0.to(torch.float64), torch.ones_like(x0, dtype=torch.float64)
    for _ in range(steps):
        d = d * r * (1 - 2 * x)
        x = r * x * (1 - x)
    return x, d


def attracting_cycle(r: float = LOGISTIC_R, period: int = 4) -> torch.Tensor:
    """The points of the attracting cycle, sorted (for r = 3.5: a 4-cycle)."""
    x, _ = logistic_orbit(torch.tensor([0.5]), 2000, r)
    points = [float(x)]
    for _ in range(period - 1):
        x, _ = logistic_orbit(x, 1, r)
        points.append(float(x))
    return torch.tensor(sorted(points), dtype=torch.float64)


def cycle_phase(x0: torch.Tensor, steps: int, r: float = LOGISTIC_R) -> torch.Tensor:
    """Which point of the attracting cycle f^steps(x0) has reached (0..3; -1 if it is not near any:
    the fixed point 0 that x0 = 0 and x0 = 1 go to). ``steps`` should be a multiple of the period."""
    cycle = attracting_cycle(r)
    x, _ = logistic_orbit(x0, steps, r)
    dist = (x[:, None] - cycle[None, :]).abs()
    phase = dist.argmin(dim=1)
    phase[dist.min(dim=1).values > 1e-6] = -1
    return phase


class GradientAnalysis(RecordedModule):
    """Computes parts 1-4 (module docstring) in its one training step, from the run seed."""

    def __init__(self, cfg: AnalysisConfig, seed: int):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        self.automatic_optimization = False
        self.results: dict[str, float] = {}
        self.curves: dict = {}

    def training_step(self, batch, batch_idx):
        if self.results:  # computed already (the computation is one step; later epochs have nothing to do)
            return
        c, g = self.cfg, torch.Generator().manual_seed(self.seed)
        res, curves = self.results, self.curves
        # 1. the slide's numbers: T factors of w, and T - 1 for comparison
        for w, name in ((1.1, "explode"), (0.9, "vanish")):
            res[f"scalar_{name}"] = scalar_linear_jacobian(w, c.scalar_steps)
            res[f"scalar_{name}_t_minus_1"] = scalar_linear_jacobian(w, c.scalar_steps - 1)
        res["scalar_vanish_x1e5"] = 1e5 * res["scalar_vanish"]  # 515.4: readable in a table with 2 decimals
        # 2. BPTT by hand vs autograd, float64, a random RNN and sequence
        m, n, k = c.bptt_sizes
        p = TanhRNN.random(m, n, k, g)
        xs = torch.randn(c.bptt_steps, m, generator=g, dtype=torch.float64)
        targets = torch.rand(c.bptt_steps, k, generator=g, dtype=torch.float64) * 2 - 1
        res["bptt_max_abs_diff"] = bptt_vs_autograd(
            p, xs, targets, 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
        )
        # 3. ||dh_T/dh_1|| against T, tanh and linear, one W per radius, the same input drive for all
        drive = c.input_std * torch.randn(c.max_steps, c.hidden, generator=g, dtype=torch.float64)
        for radius in (*c.radii, None):
            W = recurrent_matrix(c.hidden, radius, g)
            key = radius_key(radius)
            tanh_norms, linear_norms = jacobian_norms(W, drive), jacobian_norms(W, drive, linear=True)
            curves[key] = {"tanh": tanh_norms, "linear": linear_norms}
            res[f"jac_{key}"] = math.log10(tanh_norms[-1])  # log10 ||dh_T/dh_1|| at T = max_steps
            res[f"jac_max_{key}"] = math.log10(max(tanh_norms[1:]))  # the largest over T = 2 .. max_steps
            res[f"jac_linear_{key}"] = math.log10(linear_norms[-1])
        # 4. the iterated function: derivative of f^n over a grid of starts, and the attracting cycle reached
        x0 = torch.linspace(0, 1, c.logistic_points, dtype=torch.float64)
        _, deriv = logistic_orbit(x0, c.logistic_steps)
        phase = cycle_phase(x0, 400)
        mag = deriv.abs()
        boundary = self._near_boundary(phase, cells=2)
        res["logistic_frac_small"] = float((mag < c.small).double().mean())
        res["logistic_log10_max"] = math.log10(float(mag.max()))
        res["logistic_log10_median"] = math.log10(float(mag.median()))
        res["logistic_frac_boundary"] = float(boundary.double().mean())
        # of the 1% of starts with the largest |(f^n)'|, the share within 2 grid cells of a basin boundary
        top = mag.argsort(descending=True)[: max(1, len(mag) // 100)]
        res["logistic_top_at_boundary"] = float(boundary[top].double().mean())
        stride = max(1, c.logistic_points // 2000)  # a thinned copy of the curves for the plot
        xs_plot = x0[::stride]
        curves["logistic"] = {
            "x0": xs_plot.tolist(),
            "iterates": {str(s): logistic_orbit(xs_plot, s)[0].tolist() for s in (1, 2, 4, 8, c.logistic_steps)},
            "log10_abs_derivative": mag[::stride].clamp_min(1e-300).log10().tolist(),
            "phase": phase[::stride].tolist(),
            "steps": c.logistic_steps,
        }

    def on_train_epoch_end(self) -> None:
        self.end_epoch({})

    @staticmethod
    def _near_boundary(phase: torch.Tensor, cells: int) -> torch.Tensor:
        """Grid points within ``cells`` points of a change of cycle phase (or on the non-converging set)."""
        change = torch.zeros(len(phase), dtype=torch.bool)
        edges = (phase[1:] != phase[:-1]).nonzero().flatten()
        for shift in range(-cells + 1, cells + 1):
            change[(edges + shift).clamp(0, len(phase) - 1)] = True
        return change | (phase < 0)

    def test_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return None

    def resume_state(self) -> dict:
        return {"results": self.results, "curves": self.curves}

    def load_resume_state(self, state: dict) -> None:
        self.results, self.curves = dict(state.get("results", {})), dict(state.get("curves", {}))

    def summary(self) -> dict[str, float]:
        return {**self.results, "wall_time": self.train_seconds}

    def extras(self) -> dict:
        return {"curves": self.curves}


class ClippedRNNRegressor(RecordedModule):
    """Plain SGD on mean squared error, one gradient-norm reading per step; records divergence, never raises."""

    def __init__(self, model: ClipModelConfig, optim: ClipOptimConfig, seed: int):
        super().__init__()
        optim.validate()
        self.optim_cfg = optim
        self.net = RecallRNN(model, seed)
        # manual: a step whose loss or gradient norm is not finite (or whose loss exploded) is recorded and
        # skipped, and training stops
        self.automatic_optimization = False
        self.grad_norms: list[float] = []  # before clipping, one per step
        self.losses: list[float] = []  # training batch loss, one per step
        self.final: dict[str, float] = {}

    def forward(self, x):
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._first_step = len(self.losses)

    def training_step(self, batch, batch_idx):
        if self.diverged:
            return
        x, y = batch
        opt = self.optimizers()
        loss = nn.functional.mse_loss(self(x), y)
        if not self.check_loss(loss, force=True):
            self.losses.append(float(loss.detach()))
            self.grad_norms.append(math.nan)
            return
        opt.zero_grad()
        self.manual_backward(loss)
        norm = float(self.clip_gradient_norm(opt, self.optim_cfg.clip))
        self.losses.append(float(loss.detach()))
        self.grad_norms.append(norm)
        if self.check_loss(norm, limit=math.inf):
            opt.step()

    def on_train_epoch_end(self) -> None:
        epoch = [v for v in self.losses[self._first_step :] if math.isfinite(v)]
        self.end_epoch({"train_loss": statistics.fmean(epoch) if epoch else math.nan, "diverged": float(self.diverged)})

    def test_step(self, batch, batch_idx):
        x, y = batch
        with torch.no_grad():
            mse = float(nn.functional.mse_loss(self(x), y))
        self.final["test_mse"] = mse if math.isfinite(mse) and not self.diverged else math.nan

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.optim_cfg.lr, momentum=0.0)

    def resume_state(self) -> dict:
        return {"grad_norms": self.grad_norms, "losses": self.losses}

    def load_resume_state(self, state: dict) -> None:
        self.grad_norms, self.losses = list(state.get("grad_norms", [])), list(state.get("losses", []))

    def summary(self) -> dict[str, float]:
        finite = [g for g in self.grad_norms if math.isfinite(g)]
        diverged = self.diverged
        test = self.final.get("test_mse", math.nan)
        clip = self.optim_cfg.clip
        return {
            "diverged": float(diverged),
            "diverged_step": self.diverged_at - 1 if diverged else math.nan,
            "test_mse": test,  # nan for a diverged run
            # a diverged run scored as the constant guess (a lenient score for a net whose weights are NaN)
            "test_mse_scored": RECALL_GUESS_MSE if diverged else test,
            "final_train_loss": statistics.fmean(self.losses[-20:]) if self.losses and not diverged else math.nan,
            "max_grad_norm": max(finite) if finite else math.nan,
            "median_grad_norm": statistics.median(finite) if finite else math.nan,
            "log10_max_grad_norm": math.log10(max(finite)) if finite else math.nan,
            "log10_median_grad_norm": math.log10(statistics.median(finite)) if finite else math.nan,
            "clipped_pct": 100 * sum(g > clip for g in finite) / len(finite) if clip > 0 and finite else 0.0,
            "steps": float(len(self.losses)),
            "wall_time": self.train_seconds,
        }

    def extras(self) -> dict:
        """Per-step gradient norms (before clipping) and training losses, for the plot (non-finite as None)."""

        def plain(values):
            return [v if math.isfinite(v) else None for v in values]

        return {"traces": {"grad_norm": plain(self.grad_norms), "loss": plain(self.losses)}}
