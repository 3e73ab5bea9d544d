"""Synthetic sequence tasks generated from the run seed, and a data module for runs that only compute.

``RecallDataModule``: the first-value recall task. Each sequence is T values x_t ~ U[-1, 1]; the target,
read from the network's output after the last step, is x_1, the very first value. Remembering it means
carrying information through T - 1 recurrent steps, so its gradient is the product of T - 1 Jacobians:
the setting where gradients vanish or explode (slides 44-48). The best constant guess (0) has mean
squared error Var(x_1) = 1/3.

``TinySequenceDataModule``: sequences of N(0, 1) inputs for the slide 29-30 nets, with targets at every
step: the running sum (one input), or whether input 1's running total is larger than input 2's (two inputs).
Fresh training batches every step; fixed test sets, of the training length and ten times longer.

``ComputeDataModule``: one empty batch, for a module whose "training" is one deterministic computation.
"""

from __future__ import annotations

import torch

from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches, StreamBatches, epoch_of
from datamodules.configs import INPUTS, RecallConfig, TinyRNNConfig


def recall_data(length: int, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences (n, T, 1) of U[-1, 1] values and their targets (n, 1): the first value."""
    x = torch.rand(n, length, 1, generator=generator) * 2 - 1
    return x, x[:, 0].clone()


class RecallDataModule(RecordedDataModule):
    """The first-value recall task: a fixed training set and test set drawn from the run seed."""

    def __init__(self, cfg: RecallConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        g = torch.Generator().manual_seed(10_000 + seed)
        self.train = recall_data(cfg.length, cfg.train_size, g)
        self.test = recall_data(cfg.length, cfg.test_size, g)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        return ResidentBatches(
            *self.train, batch_size=self.cfg.batch_size, shuffle=True, seed=self.seed, epoch_fn=epoch_of(self)
        )

    def test_dataloader(self):
        return ResidentBatches(*self.test, batch_size=len(self.test[0]), shuffle=False)

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


class ComputeDataModule(RecordedDataModule):
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
        return {
            "name": self.name,
            "fingerprint": "computed from the run seed",
            "source": "none",
            "train": 0,
            "val": 0,
            "test": 0,
        }


# ----------------------------------------------------------------------------- running totals (slides 29-30)
TRAIN_STREAM = 4


def make_batch(task: str, n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences of N(0, 1) inputs and the targets at every step: the running sum, or 1.0 where input 1's
    running total is larger than input 2's (else 0.0)."""
    x = torch.randn(n, length, INPUTS[task], generator=generator, dtype=torch.float64)
    totals = x.cumsum(dim=1)
    if task == "summing":
        return x, totals[..., 0]
    return x, (totals[..., 0] > totals[..., 1]).to(torch.float64)


class TinySequenceDataModule(RecordedDataModule):
    """Generated sequences; the test loaders are (test set of seq_len, test set of long_seq_len)."""

    def __init__(self, cfg: TinyRNNConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        g = torch.Generator().manual_seed(seed)  # the test sets: a stream apart from the training batches
        self.test = make_batch(cfg.task, cfg.n_test, cfg.seq_len, g)
        self.long_test = make_batch(cfg.task, cfg.n_test, cfg.long_seq_len, g)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        cfg = self.cfg
        return StreamBatches(
            lambda g, n: make_batch(cfg.task, n, cfg.seq_len, g),
            steps=cfg.steps_per_epoch,
            batch_size=cfg.batch_size,
            seed=self.seed,
            stream=TRAIN_STREAM,
            epoch_fn=epoch_of(self),
        )

    def test_dataloader(self):
        return [ResidentBatches(*data, batch_size=len(data[0]), shuffle=False) for data in (self.test, self.long_test)]

    def data_info(self) -> dict:
        c = self.cfg
        target = "running sum" if c.task == "summing" else "which running total is larger"
        return {
            "name": f"synthetic N(0,1) sequences ({INPUTS[c.task]} input(s)), target: {target}, length {c.seq_len}",
            "fingerprint": "drawn from the run seed",
            "source": "generated (datamodules/sequences.py)",
            "train": c.steps_per_epoch * c.batch_size,  # per epoch, fresh each epoch
            "val": 0,
            "test": c.n_test,
        }
