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

from dataclasses import dataclass

import torch

from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches, StreamBatches, epoch_of

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
        return ResidentBatches(*self.train, batch_size=self.cfg.batch_size, shuffle=True, seed=self.seed,
                               epoch_fn=epoch_of(self))  # fmt: skip

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
        return {"name": self.name, "fingerprint": "computed from the run seed", "source": "none", "train": 0,
                "val": 0, "test": 0}  # fmt: skip


# ----------------------------------------------------------------------------- running totals (slides 29-30)
TRAIN_STREAM = 4
TASKS = ("summing", "comparing")
INPUTS = {"summing": 1, "comparing": 2}


@dataclass
class TinyRNNConfig:
    task: str = "summing"  # summing | comparing
    seq_len: int = 10  # training and test sequences
    long_seq_len: int = 100  # a second test set, 10x longer than training: does the learned rule extrapolate?
    batch_size: int = 32
    steps_per_epoch: int = 100  # fresh sequences every step, drawn from the run seed and the epoch
    n_test: int = 1000
    lr: float = 0.01  # Adam; cosine decay to final_lr_fraction * lr over the run
    final_lr_fraction: float = 0.01
    init_scale: float = 1.0  # each trained weight starts ~ U(-init_scale, init_scale)
    hand_output_weight: float = 5.0  # the comparing net's large output weight (summing: 1)
    trace_every: int = 10  # training steps between the weight snapshots the plot draws

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}")
        if (
            min(self.seq_len, self.long_seq_len, self.batch_size, self.steps_per_epoch, self.n_test, self.trace_every)
            < 1
        ):
            raise ValueError("lengths, sizes and steps must be >= 1")
        if self.lr <= 0 or not 0 < self.final_lr_fraction <= 1 or self.init_scale <= 0:
            raise ValueError("need lr > 0, 0 < final_lr_fraction <= 1, init_scale > 0")


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
