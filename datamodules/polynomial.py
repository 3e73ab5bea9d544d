"""Noisy samples of sin(2 pi x): the data of the overfitting picture (Bishop, PRML 1.1).

N training points with x evenly spaced on [0, 1] (Bishop's Fig. 1.2; or drawn from U[0, 1]), targets
t = sin(2 pi x) + Gaussian noise, and a large test set drawn from the same distribution. Each run's seed
draws its own noise (and test set). The whole training set is one batch.
"""

from __future__ import annotations

import math

import torch

from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches
from datamodules.configs import PolyConfig


def true_function(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x)


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


def _whole(data: tuple[torch.Tensor, torch.Tensor]) -> ResidentBatches:
    return ResidentBatches(*data, batch_size=len(data[0]), shuffle=False)


class PolynomialDataModule(RecordedDataModule):
    """The whole training set is one batch; the test loaders are (test set, training set)."""

    def __init__(self, cfg: PolyConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        self.data = sample_data(cfg, seed)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        return _whole(self.data["train"])

    def test_dataloader(self):
        return [_whole(self.data["test"]), _whole(self.data["train"])]

    def data_info(self) -> dict:
        c = self.cfg
        spacing = "evenly spaced" if c.even_x else "x ~ U[0,1]"
        return {
            "name": f"synthetic sin(2 pi x) + N(0, {c.noise_std:g}^2), {c.n_train} training points {spacing}",
            "fingerprint": "noise drawn from the run seed",
            "source": "generated (datamodules/polynomial.py)",
            "train": c.n_train,
            "val": 0,
            "test": c.n_test,
        }
