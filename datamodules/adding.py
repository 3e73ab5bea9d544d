"""The adding problem (Le, Jaitly & Hinton 2015's variant of Hochreiter & Schmidhuber 1997): a long-range
memory task for recurrent networks.

Each sequence has T steps; step t is the pair (value_t, marker_t) with value_t ~ U[0, 1] and marker_t in
{0, 1}. Exactly two steps are marked. Placement rule: the first marker is uniform over the first half,
positions 0 .. T//2 - 1, the second uniform over the second half, positions T//2 .. T - 1 (as in Arjovsky
et al. 2016's version of Le et al.'s task). The target is the sum of the two marked values, read after
the last step: to predict it the network must carry the first marked value across at least one step and
up to T - 1 of them.

The target is a sum of two independent U[0, 1] values: its mean is 1 and its variance 2 * 1/12 = 1/6, so
the best constant guess (1) has mean squared error 1/6 (CONSTANT_GUESS_MSE). A network that ignores the
markers cannot do better.

Data comes from the run seed: fresh training batches every step (epoch e draws from its own stream, so a
resumed run sees the same batches an uninterrupted one would) and a fixed test set from a separate stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch

CONSTANT_GUESS_MSE = 1 / 6  # Var(x1 + x2) for x1, x2 ~ U[0, 1]: the MSE of predicting the mean, 1

TEST_STREAM, TRAIN_STREAM = 0, 1


@dataclass
class AddingConfig:
    length: int = 100  # T, steps per sequence
    batch_size: int = 50
    steps_per_epoch: int = 100  # training batches between two evaluations on the test set
    test_size: int = 2000
    eval_batch_size: int = 1000

    def validate(self) -> None:
        if self.length < 2:
            raise ValueError("length must be >= 2 (one marker in each half)")
        if min(self.batch_size, self.steps_per_epoch, self.test_size, self.eval_batch_size) < 1:
            raise ValueError("batch_size, steps_per_epoch, test_size and eval_batch_size must be >= 1")


def stream_seed(*ids: int) -> int:
    """A torch seed for the stream named by ``ids`` (run seed, stream, epoch...): distinct ids give
    independent streams (numpy's SeedSequence hashing), unlike seed + offset schemes that can collide."""
    return int(np.random.SeedSequence(list(ids)).generate_state(1, dtype=np.uint64)[0] >> 1)


def adding_batch(n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences: inputs (n, length, 2) of (value, marker) and targets (n,) = sum of the marked values."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    rows = torch.arange(n)
    markers = torch.zeros(n, length)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=-1), target


class Batches:
    """A loader over a fixed list of (x, y) batches (a plain list would read as one loader per batch)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class FreshBatches:
    """``steps`` new training batches per epoch, drawn from the stream (seed, TRAIN_STREAM, epoch)."""

    def __init__(self, cfg: AddingConfig, seed: int, epoch_of):
        self.cfg, self.seed, self.epoch_of = cfg, seed, epoch_of

    def __len__(self) -> int:
        return self.cfg.steps_per_epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(stream_seed(self.seed, TRAIN_STREAM, self.epoch_of()))
        for _ in range(self.cfg.steps_per_epoch):
            yield adding_batch(self.cfg.batch_size, self.cfg.length, g)


class AddingDataModule(L.LightningDataModule):
    """Fresh training batches every step; a fixed test set (``test_x``, ``test_y``) from its own stream.
    Single-process only: the training stream is not sharded across ranks."""

    def __init__(self, cfg: AddingConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        g = torch.Generator().manual_seed(stream_seed(seed, TEST_STREAM))
        self.test_x, self.test_y = adding_batch(cfg.test_size, cfg.length, g)
        self._epochs_started = 0

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def _epoch(self) -> int:
        trainer = self.trainer
        if trainer is not None:  # the trainer's epoch counter survives a resume from a checkpoint
            return trainer.current_epoch
        self._epochs_started += 1
        return self._epochs_started - 1

    def train_dataloader(self):
        return FreshBatches(self.cfg, self.seed, self._epoch)

    def test_dataloader(self):
        n, b = self.cfg.test_size, self.cfg.eval_batch_size
        return Batches([(self.test_x[i : i + b], self.test_y[i : i + b]) for i in range(0, n, b)])

    def data_info(self) -> dict:
        c = self.cfg
        return {
            "name": f"adding problem (Le et al. 2015 variant), T={c.length}, fresh batches of {c.batch_size}",
            "fingerprint": "generated from the run seed",
            "source": "generated (datamodules/adding.py)",
            "train": c.batch_size * c.steps_per_epoch,  # per epoch, never repeated
            "val": 0,
            "test": c.test_size,
        }
