"""Polynomial regression on noisy samples of sin(2 pi x) (datamodules/polynomial.py): the overfitting
picture (Bishop, PRML 1.1).

The fit is exact, not iterative: a polynomial of degree M in u = 2x - 1 (features in [-1, 1], so the
powers stay of order one and the solve is well conditioned) minimizes the lecture's regularized cost

    J_reg(w) = 1/(2N) sum_n (w . phi(x_n) - t_n)^2 + lambda/2 ||w||^2,     phi(x) = (1, u, u^2, ..., u^M),

whose minimizer solves (Phi^T Phi + N lambda I) w = Phi^T t. It is computed in float64, in one training
step with manual optimization, as the least-squares solution of the stacked system
[Phi; sqrt(N lambda) I] w = [t; 0] (SVD-based ``torch.linalg.lstsq``): the same minimizer, without
squaring the condition number of Phi as the normal equations would. Every coefficient is penalized,
the constant term too, as SGD's ``weight_decay`` does in the rest of the suite.

``PairRegression`` fits the same cost, exactly, to two nearly identical inputs (datamodules/pairs.py, slide 10):
y = w1 x1 + w2 x2, no constant term. Since y = (w1 + w2) (x1 + x2) / 2 + (w2 - w1) (x2 - x1) / 2, the weight gap
|w1 - w2| is what multiplies a mismatch x2 - x1 at test time.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from datamodules.configs import PairConfig, PolyConfig
from lightning_modules.base import RecordedModule


def poly_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Rows (1, u, u^2, ..., u^degree) with u = 2x - 1: x in [0, 1] maps onto [-1, 1]."""
    u = 2 * x.to(torch.float64) - 1
    return torch.stack([u**k for k in range(degree + 1)], dim=-1)


def ridge_solve(phi: torch.Tensor, t: torch.Tensor, l2: float) -> torch.Tensor:
    """The exact minimizer of 1/(2N) ||Phi w - t||^2 + l2/2 ||w||^2 (see the module docstring), float64."""
    phi = phi.to(torch.float64)
    n, p = phi.shape
    a = torch.cat([phi, math.sqrt(n * l2) * torch.eye(p, dtype=torch.float64)])
    b = torch.cat([t.to(torch.float64), torch.zeros(p, dtype=torch.float64)])
    return torch.linalg.lstsq(a, b.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)


def ridge_fit(x: torch.Tensor, t: torch.Tensor, degree: int, l2: float) -> torch.Tensor:
    """The penalized least-squares polynomial of degree ``degree`` (coefficients in powers of u = 2x - 1)."""
    return ridge_solve(poly_features(x, degree), t, l2)


def rmse(w: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> float:
    return float((poly_features(x, len(w) - 1) @ w - t).pow(2).mean().sqrt())


class PolynomialRegression(RecordedModule):
    """One training step that sets the coefficients to the exact penalized least-squares solution."""

    def __init__(self, cfg: PolyConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.automatic_optimization = False  # the step is a solve, not a gradient step
        self.w = nn.Parameter(torch.zeros(cfg.degree + 1, dtype=torch.float64), requires_grad=False)
        self.final: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return poly_features(x, self.cfg.degree) @ self.w

    def training_step(self, batch, batch_idx):
        x, t = batch
        with torch.no_grad():
            self.w.copy_(ridge_fit(x, t, self.cfg.degree, self.cfg.l2))
        self._train_rmse = rmse(self.w, x, t)

    def on_train_epoch_end(self) -> None:
        self.end_epoch({"train_rmse": self._train_rmse})

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, t = batch
        self.final["test_rmse" if dataloader_idx == 0 else "train_rmse"] = rmse(self.w, x, t)

    def configure_optimizers(self):
        return None  # nothing to optimize by gradient

    def summary(self) -> dict[str, float]:
        w = self.w.detach()
        return {
            "train_rmse": self.final["train_rmse"],
            "test_rmse": self.final["test_rmse"],
            "w_norm": float(w.norm()),  # ||w||_2
            "w_max": float(w.abs().max()),  # max_j |w_j|
            "degree": float(self.cfg.degree),
            "l2": self.cfg.l2,
            "wall_time": self.train_seconds,
        }

    def extras(self) -> dict:
        """The fitted coefficients (in powers of u = 2x - 1) and the training points, for the plot."""
        x, t = self.trainer.datamodule.data["train"]
        return {"coefficients": self.w.detach().tolist(), "train_points": {"x": x.tolist(), "t": t.tolist()}}


def mse(w: torch.Tensor, inputs: torch.Tensor, t: torch.Tensor) -> float:
    return float((inputs.to(torch.float64) @ w - t).pow(2).mean())


def weight_measures(w: torch.Tensor) -> dict[str, float]:
    """w1, w2; the gap |w1 - w2|; the opposite-sign mass |w1| + |w2| - |w1 + w2| (2 min(|w1|, |w2|) when the
    signs differ, else 0); ||w||_2."""
    w1, w2 = float(w[0]), float(w[1])
    return {
        "w1": w1,
        "w2": w2,
        "weight_gap": abs(w1 - w2),
        "opposite": abs(w1) + abs(w2) - abs(w1 + w2),
        "w_norm": float(w.norm()),
    }


class PairRegression(RecordedModule):
    """y = w1 x1 + w2 x2 on two nearly identical inputs: one training step sets w to the exact (penalized)
    least-squares solution. Test loaders: matched inputs, mismatched inputs, the training set."""

    SPLITS = ("test_mse", "test_mse_mismatched", "train_mse")

    def __init__(self, cfg: PairConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.automatic_optimization = False
        self.w = nn.Parameter(torch.zeros(2, dtype=torch.float64), requires_grad=False)
        self.final: dict[str, float] = {}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.to(torch.float64) @ self.w

    def training_step(self, batch, batch_idx):
        inputs, t = batch
        with torch.no_grad():
            self.w.copy_(ridge_solve(inputs, t, self.cfg.l2))
        self._train_mse = mse(self.w, inputs, t)

    def on_train_epoch_end(self) -> None:
        self.end_epoch({"train_mse": self._train_mse})

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        inputs, t = batch
        self.final[self.SPLITS[dataloader_idx]] = mse(self.w, inputs, t)

    def configure_optimizers(self):
        return None

    def summary(self) -> dict[str, float]:
        return {
            **{k: self.final[k] for k in self.SPLITS},
            **weight_measures(self.w.detach()),
            "l2": self.cfg.l2,
            "wall_time": self.train_seconds,
        }
