"""Two nearly identical inputs (slide 10, "why small weights"): x1 = x and x2 = x + eps z, x and z ~ N(0, 1), so
x2 - x1 has std eps; the target is t = x1 + x2 + Gaussian noise. The data fix w1 + w2 well but say almost
nothing about w1 - w2, which only multiplies the small difference x2 - x1.

Each run's seed draws its training set and two test sets that share their x, z and noise and differ only in
how closely the inputs match: ``matched`` (x2 - x1 = eps z, as in training) and ``mismatched`` (x2 - x1 =
mismatch * eps z), with the targets t = x1 + x2 + noise of those inputs. The whole training set is one batch.
"""

from __future__ import annotations

import torch

from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches
from datamodules.configs import PairConfig


def pair_inputs(x: torch.Tensor, z: torch.Tensor, eps: float) -> torch.Tensor:
    """Rows (x1, x2) = (x, x + eps z)."""
    return torch.stack([x, x + eps * z], dim=-1)


def sample_pairs(cfg: PairConfig, seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(inputs [n, 2], targets [n]) of the training set and of the matched and mismatched test sets, float64."""
    g = torch.Generator().manual_seed(seed)

    def draw(n: int) -> tuple[torch.Tensor, ...]:
        return tuple(torch.randn(n, generator=g, dtype=torch.float64) for _ in range(3))  # x, z, noise

    def labelled(x, z, noise, eps):
        inputs = pair_inputs(x, z, eps)
        return inputs, inputs.sum(-1) + cfg.noise_std * noise

    x, z, noise = draw(cfg.n_train)
    xt, zt, noise_t = draw(cfg.n_test)
    return {
        "train": labelled(x, z, noise, cfg.eps),
        "matched": labelled(xt, zt, noise_t, cfg.eps),
        "mismatched": labelled(xt, zt, noise_t, cfg.mismatch * cfg.eps),
    }


def _whole(data: tuple[torch.Tensor, torch.Tensor]) -> ResidentBatches:
    return ResidentBatches(*data, batch_size=len(data[0]), shuffle=False)


class PairedInputsDataModule(RecordedDataModule):
    """The whole training set is one batch; the test loaders are (matched, mismatched, training set)."""

    def __init__(self, cfg: PairConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        self.data = sample_pairs(cfg, seed)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        return _whole(self.data["train"])

    def test_dataloader(self):
        return [_whole(self.data[k]) for k in ("matched", "mismatched", "train")]

    def data_info(self) -> dict:
        c = self.cfg
        return {
            "name": f"synthetic pairs x2 = x1 + {c.eps:g} z, t = x1 + x2 + N(0, {c.noise_std:g}^2), "
            f"{c.n_train} training points; test x2 - x1 std {c.eps:g} and {c.mismatch * c.eps:g}",
            "fingerprint": "drawn from the run seed",
            "source": "generated (datamodules/pairs.py)",
            "train": c.n_train,
            "val": 0,
            "test": c.n_test,
        }
