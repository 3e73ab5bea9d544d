"""Synthetic sequence tasks generated from the run seed, and a data module for runs that only compute.

``RecallDataModule``: the first-value recall task. Each sequence is T values x_t ~ U[-1, 1]; the target,
read from the network's output after the last step, is x_1, the very first value. Remembering it means
carrying information through T - 1 recurrent steps, so its gradient is the product of T - 1 Jacobians:
the setting where gradients vanish or explode (slides 44-48). The best constant guess (0) has mean
squared error Var(x_1) = 1/3.

``ComputeDataModule``: one empty batch, for a module whose "training" is one deterministic computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch

CONSTANT_GUESS_MSE = 1 / 3  # Var(U[-1, 1]): the MSE of predicting 0, the best constant


@dataclass
class RecallConfig:
    length: int = 100  # T: time steps per sequence
    train_size: int = 2048  # sequences in the fixed training set
    test_size: int = 1024
    batch_size: int = 32

    def validate(self) -> None:
        if self.length < 1 or self.train_size < 1 or self.test_size < 1 or self.batch_size < 1:
            raise ValueError("length, train_size, test_size and batch_size must be >= 1")


def recall_data(length: int, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences (n, T, 1) of U[-1, 1] values and their targets (n, 1): the first value."""
    x = torch.rand(n, length, 1, generator=generator) * 2 - 1
    return x, x[:, 0].clone()


class ShuffledBatches:
    """Batches of a fixed tensor data set, reshuffled every pass from (seed, pass number)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, shuffle: bool):
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.passes = 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + self.passes))
        else:
            order = torch.arange(len(self.x))
        self.passes += 1
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]


class RecallDataModule(L.LightningDataModule):
    """The first-value recall task: a fixed training set and test set drawn from the run seed."""

    def __init__(self, cfg: RecallConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        g = torch.Generator().manual_seed(10_000 + seed)
        self.train = recall_data(cfg.length, cfg.train_size, g)
        self.test = recall_data(cfg.length, cfg.test_size, g)
        self._train_loader = ShuffledBatches(*self.train, cfg.batch_size, seed, shuffle=True)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        # a resumed run continues the shuffling stream at its epoch (Lightning restores it before asking for data)
        self._train_loader.passes = self.trainer.current_epoch if self.trainer is not None else 0
        return self._train_loader

    def test_dataloader(self):
        return ShuffledBatches(*self.test, len(self.test[0]), self.seed, shuffle=False)

    def data_info(self) -> dict:
        c = self.cfg
        return {
            "name": f"first-value recall, T={c.length}, x_t ~ U[-1,1], {c.train_size} train sequences",
            "fingerprint": "drawn from the run seed",
            "source": "generated (datamodules/sequences.py)",
            "train": c.train_size,
            "val": 0,
            "test": c.test_size,
        }


class ComputeDataModule(L.LightningDataModule):
    """One empty batch per epoch (train and test): the module computes everything itself."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def prepare_data(self) -> None:
        pass

    def train_dataloader(self):
        return [torch.zeros(1)]

    def test_dataloader(self):
        return [torch.zeros(1)]

    def data_info(self) -> dict:
        return {"name": self.name, "fingerprint": "computed from the run seed", "source": "none", "train": 0,
                "val": 0, "test": 0}  # fmt: skip
