"""Polynomial regression on noisy samples of sin(2 pi x): the overfitting picture (Bishop, PRML 1.1).

The data: N training points with x evenly spaced on [0, 1] (Bishop's Fig. 1.2; or drawn from U[0, 1]),
targets t = sin(2 pi x) + Gaussian noise, and a large test set drawn from the same distribution. Each
run's seed draws its own noise (and test set).

The fit is exact, not iterative: a polynomial of degree M in u = 2x - 1 (features in [-1, 1], so the
powers stay of order one and the solve is well conditioned) minimizes the lecture's regularized cost

    J_reg(w) = 1/(2N) sum_n (w . phi(x_n) - t_n)^2 + lambda/2 ||w||^2,     phi(x) = (1, u, u^2, ..., u^M),

whose minimizer solves (Phi^T Phi + N lambda I) w = Phi^T t. It is computed in float64, in one training
step with manual optimization, as the least-squares solution of the stacked system
[Phi; sqrt(N lambda) I] w = [t; 0] (SVD-based ``torch.linalg.lstsq``): the same minimizer, without
squaring the condition number of Phi as the normal equations would. Every coefficient is penalized,
the constant term too, as SGD's ``weight_decay`` does in the rest of the suite.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn as nn


@dataclass
class PolyConfig:
    degree: int = 9
    l2: float = 0.0  # lambda of the penalty lambda/2 ||w||^2 (0: plain least squares)
    n_train: int = 10
    n_test: int = 1000
    noise_std: float = 0.3
    even_x: bool = True  # training x evenly spaced on [0, 1] (Bishop); False: drawn from U[0, 1]

    def validate(self) -> None:
        if self.degree < 0 or self.l2 < 0:
            raise ValueError("degree and l2 must be >= 0")
        if self.n_train < 1 or self.n_test < 1 or self.noise_std < 0:
            raise ValueError("need n_train >= 1, n_test >= 1, noise_std >= 0")


def true_function(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x)


def poly_features(x: torch.Tensor, degree: int) -> torch.Tensor:
    """Rows (1, u, u^2, ..., u^degree) with u = 2x - 1: x in [0, 1] maps onto [-1, 1]."""
    u = 2 * x.to(torch.float64) - 1
    return torch.stack([u**k for k in range(degree + 1)], dim=-1)


def ridge_fit(x: torch.Tensor, t: torch.Tensor, degree: int, l2: float) -> torch.Tensor:
    """The exact minimizer of 1/(2N) ||Phi w - t||^2 + l2/2 ||w||^2 (see the module docstring)."""
    phi = poly_features(x, degree)
    n, p = phi.shape
    a = torch.cat([phi, math.sqrt(n * l2) * torch.eye(p, dtype=torch.float64)])
    b = torch.cat([t.to(torch.float64), torch.zeros(p, dtype=torch.float64)])
    return torch.linalg.lstsq(a, b.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)


def rmse(w: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> float:
    return float((poly_features(x, len(w) - 1) @ w - t).pow(2).mean().sqrt())


def sample_data(cfg: PolyConfig, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Training and test sets of (x, t), float64, drawn from the run's seed."""
    g = torch.Generator().manual_seed(seed)
    if cfg.even_x:
        x = torch.linspace(0, 1, cfg.n_train, dtype=torch.float64)
    else:
        x = torch.rand(cfg.n_train, generator=g, dtype=torch.float64)
    t = true_function(x) + cfg.noise_std * torch.randn(cfg.n_train, generator=g, dtype=torch.float64)
    x_test = torch.rand(cfg.n_test, generator=g, dtype=torch.float64)
    t_test = true_function(x_test) + cfg.noise_std * torch.randn(cfg.n_test, generator=g, dtype=torch.float64)
    return {"train": (x, t), "test": (x_test, t_test)}


class OneBatch:
    """A loader that yields a single (x, t) batch: the whole data set."""

    def __init__(self, x: torch.Tensor, t: torch.Tensor):
        self.batch = (x, t)

    def __len__(self) -> int:
        return 1

    def __iter__(self):
        yield self.batch


class PolynomialDataModule(L.LightningDataModule):
    """The whole training set is one batch; the test loaders are (test set, training set)."""

    def __init__(self, cfg: PolyConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        self.data = sample_data(cfg, seed)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        return OneBatch(*self.data["train"])

    def test_dataloader(self):
        return [OneBatch(*self.data["test"]), OneBatch(*self.data["train"])]

    def data_info(self) -> dict:
        c = self.cfg
        spacing = "evenly spaced" if c.even_x else "x ~ U[0,1]"
        return {
            "name": f"synthetic sin(2 pi x) + N(0, {c.noise_std:g}^2), {c.n_train} training points {spacing}",
            "fingerprint": "noise drawn from the run seed",
            "source": "generated (lightning_modules/regression.py)",
            "train": c.n_train,
            "val": 0,
            "test": c.n_test,
        }


class PolynomialRegression(L.LightningModule):
    """One training step that sets the coefficients to the exact penalized least-squares solution."""

    def __init__(self, cfg: PolyConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.automatic_optimization = False  # the step is a solve, not a gradient step
        self.w = nn.Parameter(torch.zeros(cfg.degree + 1, dtype=torch.float64), requires_grad=False)
        self.history: list[dict[str, float]] = []
        self.final: dict[str, float] = {}
        self.train_seconds = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return poly_features(x, self.cfg.degree) @ self.w

    def training_step(self, batch, batch_idx):
        start = time.perf_counter()
        x, t = batch
        with torch.no_grad():
            self.w.copy_(ridge_fit(x, t, self.cfg.degree, self.cfg.l2))
        self.train_seconds += time.perf_counter() - start
        self.history.append({"epoch": self.current_epoch + 1, "train_rmse": rmse(self.w, x, t)})

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, t = batch
        self.final["test_rmse" if dataloader_idx == 0 else "train_rmse"] = rmse(self.w, x, t)

    def configure_optimizers(self):
        return None  # nothing to optimize by gradient

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["repro"] = {"history": self.history, "train_seconds": self.train_seconds}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("repro", {})
        self.history = list(state.get("history", []))
        self.train_seconds = float(state.get("train_seconds", 0.0))

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
