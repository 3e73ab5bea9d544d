"""The adding problem (Le, Jaitly & Hinton 2015's variant of Hochreiter & Schmidhuber 1997): a long-range
memory task for recurrent networks.

Each sequence has T steps; step t is the pair (value_t, marker_t) with value_t ~ U[0, 1] and marker_t in
{0, 1}. Exactly two steps are marked. Placement rule: the first marker is uniform over the first half,
positions 0 .. T//2 - 1, the second uniform over the second half, positions T//2 .. T - 1 (as in Arjovsky
et al. 2016's version of Le et al.'s task). The target is the sum of the two marked values, read after
the last step: to predict it the network must carry the first marked value across at least one step and
up to T - 1 of them.

The target is a sum of two independent U[0, 1] values: its mean is 1 and its variance 2 * 1/12 = 1/6, so
the best constant guess (1) has mean squared error 1/6 (ADDING_GUESS_MSE). A network that ignores the
markers cannot do better.

Data comes from the run seed: fresh training batches every step (epoch e draws from its own stream, so a
resumed run sees the same batches an uninterrupted one would; under DDP each rank draws its own share of a
step's batch) and a fixed test set from a separate stream.
"""

from __future__ import annotations

import torch

from base.seeds import mix_seed
from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches, StreamBatches, epoch_of
from datamodules.configs import AddingConfig

TEST_STREAM, TRAIN_STREAM = 5, 6  # stream ids apart from the other data modules'


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


class AddingDataModule(RecordedDataModule):
    """Fresh training batches every step (each rank draws its own share); a fixed test set (``test_x``,
    ``test_y``) from its own stream."""

    shards = True

    def __init__(self, cfg: AddingConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        g = torch.Generator().manual_seed(mix_seed(seed, TEST_STREAM))
        self.test_x, self.test_y = adding_batch(cfg.test_size, cfg.length, g)

    def prepare_data(self) -> None:  # generated, nothing to find or download
        pass

    def train_dataloader(self):
        rank, _ = self.rank_world()
        c = self.cfg
        return StreamBatches(
            lambda g, n: adding_batch(n, c.length, g),
            steps=c.steps_per_epoch,
            batch_size=self.per_rank(c.batch_size),
            seed=self.seed,
            stream=TRAIN_STREAM,
            epoch_fn=epoch_of(self),
            rank=rank,
        )

    def test_dataloader(self):
        rank, world = self.rank_world()
        return ResidentBatches(
            self.test_x, self.test_y, batch_size=self.cfg.eval_batch_size, shuffle=False, rank=rank, world=world
        )

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
