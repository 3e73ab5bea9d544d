"""Lightning callbacks and plugins of every run: the resume checkpoint, the RNG state it carries, and the
run's identity written into it."""

from __future__ import annotations

import csv
import io
import os
import random
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, Checkpoint

from base.errors import ReproError
from base.files import temp_path, write_atomic


class LastCheckpoint(Checkpoint):
    """Save ``last.ckpt`` at the end of every training epoch. Lightning calls Checkpoint callbacks after the
    module's own epoch-end hook, so the epoch's history row is in the checkpoint too. The checkpoint carries
    the run's identity (config.yaml's text: config, world size, precision), and a resume from a checkpoint of
    another run is refused. Beside it: ``progress`` (epochs done, for the --jobs progress bar) and
    ``history.csv`` (the per-epoch rows so far, rewritten whole from the history the checkpoint carries, so a
    resumed run's file still holds every epoch)."""

    def __init__(self, path: Path, identity: str):
        self.path, self.identity = path, identity

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)  # full state, through AtomicCheckpointIO
            if trainer.is_global_zero:
                folder = self.path.parent.parent
                write_atomic(folder / "progress", f"{trainer.current_epoch + 1}/{trainer.max_epochs}")
                write_atomic(folder / "history.csv", history_csv(pl_module.history))

    def state_dict(self):
        return {"identity": self.identity}

    def load_state_dict(self, state):
        if state.get("identity") != self.identity:
            raise ReproError(identity_mismatch(self.path, state.get("identity"), self.identity))


def history_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def identity_mismatch(path: Path, theirs: str | None, ours: str) -> str:
    import yaml

    from engine.identity import first_difference

    if theirs is None:
        diff = "it records no identity"
    else:
        diff = first_difference(yaml.safe_load(theirs) or {}, yaml.safe_load(ours) or {})
    return f"{path} belongs to another run ({diff}); delete it to start this run afresh"


def checkpoint_identity(path: Path) -> str | None:
    """The identity a checkpoint was made with (None if it records none); raises if it cannot be read."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in state.get("callbacks", {}).items():
        if key.startswith("LastCheckpoint") and isinstance(value, dict):
            return value.get("identity")
    return None


class StopAfterEpoch(Callback):
    """Stop training once this epoch is saved, when ``requested()`` says so (a signal arrived). Checkpoint
    callbacks run after every other callback's epoch-end hook, so the epoch's checkpoint is written first.

    Under DDP every rank must stop at the same epoch, or the others wait for it forever: the ranks agree at each
    epoch's end (stop if any rank was signalled), and ``stopped`` says that this rank stopped for a signal, its
    own or another rank's."""

    def __init__(self, requested):
        self.requested = requested
        self.stopped = False

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.strategy.reduce_boolean_decision(bool(self.requested()), all=False):
            self.stopped = True
            trainer.should_stop = True


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file, then rename: a kill -9 mid-save leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = temp_path(path)
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        except BaseException:  # a full disk, a file size limit: the last good checkpoint stays, no half file
            tmp.unlink(missing_ok=True)
            raise


class RngState(Callback):
    """Carry the global RNG states in checkpoints, so ops that draw from them (dropout...) resume exactly
    where an uninterrupted run would be. (Shuffling and augmentation have their own per-epoch streams.)"""

    def state_dict(self):
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)  # torch.load-safe
        state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
