"""The contract between the runner and every DataModule of the suite, and the one way batches are sharded.

A DataModule subclasses ``RecordedDataModule`` and provides ``data_info()`` (what the run record says about
its data: name, fingerprint, source, sizes). ``data.batch_size`` means one thing whatever ``--devices`` is:
the examples of one optimizer step, summed over every rank. A DataModule whose batches are split across
ranks (``shards = True``) takes ``per_rank(batch_size)`` examples a step on each; one that cannot shard
leaves ``shards`` False and the runner refuses to start it on more than one process.
"""

from __future__ import annotations

import lightning as L

from base.errors import ReproError


class RecordedDataModule(L.LightningDataModule):
    shards = False  # whether batches are split across DDP ranks (else: one process only)

    def data_info(self) -> dict:
        raise NotImplementedError

    def rank_world(self) -> tuple[int, int]:
        """(rank, world size) of this process: (0, 1) outside a trainer."""
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def per_rank(self, batch_size: int) -> int:
        """One rank's share of a global batch; the batch must split evenly, so every step means the same."""
        _, world = self.rank_world()
        if batch_size % world:
            raise ReproError(f"data.batch_size {batch_size} does not split evenly over {world} processes")
        return batch_size // world
