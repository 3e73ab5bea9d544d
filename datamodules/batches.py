"""The suite's two batch iterators, and their one sharding rule.

- ``ResidentBatches``: slices of tensors held in memory (an image set, a fixed test set, a whole training set
  as one batch). Shuffled, it reads a permutation drawn from (seed, epoch, stream); every rank takes its
  own interleaved share of that permutation.
- ``StreamBatches``: fresh batches every step, drawn from a generator seeded by (seed, stream, epoch, rank):
  synthetic tasks with unlimited data. Every rank draws its own batches from its own stream.

In both, ``batch_size`` is one rank's share of the global batch (``RecordedDataModule.per_rank``), so a step
means the same number of examples whatever the world size. A resumed run reads the same batches as an
uninterrupted one, since every draw is keyed by the epoch rather than by how many epochs this process saw.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from base.seeds import mix_seed


class ResidentBatches:
    """Iterate over batches sliced from in-memory tensors (same first dimension), sharded by rank.

    For training (``shuffle``) each rank gets the same number of full batches: the remainder of the shuffled
    epoch is dropped, as ``drop_last`` would, unless the set is smaller than one batch. For evaluation every
    example is seen exactly once across ranks. ``on_epoch(epoch)`` runs as each pass starts.
    """

    def __init__(
        self,
        *tensors,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        epoch_fn=lambda: 0,
        rank: int = 0,
        world: int = 1,
        on_epoch: Callable[[int], None] | None = None,
        stream: int = 1,
    ):
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle
        self.seed, self.epoch_fn, self.rank, self.world, self.on_epoch = seed, epoch_fn, rank, world, on_epoch
        self.stream = stream

    def _count(self) -> int:
        """Examples this rank sees per epoch."""
        n = len(self.tensors[0])
        if not self.shuffle:
            return len(range(self.rank, n, self.world))
        per_rank = n // self.world
        return per_rank // self.batch_size * self.batch_size or per_rank

    def _indices(self) -> torch.Tensor:
        n = len(self.tensors[0])
        if not self.shuffle:
            return torch.arange(self.rank, n, self.world)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch_fn(), self.stream))
        return torch.randperm(n, generator=g)[self.rank :: self.world][: self._count()]

    def __len__(self) -> int:
        return -(-self._count() // self.batch_size)

    def __iter__(self):
        if self.on_epoch is not None:
            self.on_epoch(self.epoch_fn())
        idx = self._indices().to(self.tensors[0].device)
        whole = not self.shuffle and self.world == 1 and self.batch_size >= len(idx)
        for start in range(0, len(idx), self.batch_size):
            i = idx[start : start + self.batch_size]
            yield tuple(t if whole else t[i] for t in self.tensors)  # one whole batch: the tensors themselves


class StreamBatches:
    """``steps`` fresh batches per epoch: ``draw(rng, n)`` with an rng seeded by (seed, stream, epoch, rank).

    ``rng`` is a ``torch.Generator`` unless ``make_rng`` builds another kind (e.g. ``random.Random`` for a
    generator written in Python)."""

    def __init__(
        self,
        draw: Callable,
        *,
        steps: int,
        batch_size: int,
        seed: int,
        stream: int,
        epoch_fn=lambda: 0,
        rank: int = 0,
        make_rng: Callable[[int], object] | None = None,
    ):
        self.draw, self.steps, self.batch_size, self.seed, self.stream = draw, steps, batch_size, seed, stream
        self.epoch_fn, self.rank = epoch_fn, rank
        self.make_rng = make_rng or (lambda s: torch.Generator().manual_seed(s))

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        rng = self.make_rng(mix_seed(self.seed, self.stream, self.epoch_fn(), self.rank))
        for _ in range(self.steps):
            yield self.draw(rng, self.batch_size)


def epoch_of(datamodule) -> Callable[[], int]:
    """The trainer's epoch (it survives a resume from a checkpoint); 0 outside a trainer."""
    return lambda: datamodule.trainer.current_epoch if datamodule.trainer is not None else 0
