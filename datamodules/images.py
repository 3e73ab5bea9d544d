"""Image classification data held in memory as uint8 tensors and served as whole batches.

The data set lives as one uint8 tensor (moved to the GPU when training on one); a batch is a slice
of it; augmentation runs batched on the device in ``on_after_batch_transfer`` and only while the
trainer is training. No per-image Python work, no worker processes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch

from datamodules import augment as aug
from datamodules.catalog import ImageSet, load_cifar10, load_mnist
from experiments.spec import ReproError

LOADERS: dict[str, Callable[[], ImageSet]] = {"cifar10": load_cifar10, "mnist": load_mnist}


@dataclass
class ImageDataConfig:
    dataset: str = "cifar10"  # cifar10 | mnist
    val_size: int = 5000  # held out from the training set (fixed split_seed) for model selection
    train_size: int = 0  # 0: every remaining training image; else a fixed subset of this many
    test_size: int = 0  # 0: the whole test set; else a fixed subset
    # Clean (unaugmented) training error is measured on up to this many of the training images (all of a smaller
    # train_size subset); more than the training images left after val_size is an error, as for the sizes above.
    train_eval_size: int = 5000
    batch_size: int = 128
    eval_batch_size: int = 1000
    augment: tuple[str, ...] = ()  # any of: flip, translate, rotate, noise
    pad: int = 4  # translate: pixels of zero padding before the random crop
    rotate_degrees: float = 15.0
    noise_std: float = 0.1
    split_seed: int = 0  # the train/val split and subsets; independent of the run seed

    def validate(self) -> None:
        if self.dataset not in LOADERS:
            raise ValueError(f"dataset must be one of {', '.join(LOADERS)}")
        unknown = set(self.augment) - set(aug.NAMES)
        if unknown:
            raise ValueError(f"unknown augmentation {sorted(unknown)[0]!r}; known: {', '.join(aug.NAMES)}")
        for name in ("val_size", "train_size", "test_size", "train_eval_size", "pad"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")


def check_sizes(cfg: ImageDataConfig, images: ImageSet) -> None:
    """Every subset size must fit the data: asking for more images than there are is refused, not capped."""
    n_train, n_test = len(images.train_x), len(images.test_x)
    if cfg.val_size >= n_train:
        raise ReproError(
            f"data.val_size={cfg.val_size:,} leaves no training images: {images.name} has {n_train:,} "
            "(the validation images are held out of them)"
        )
    left = n_train - cfg.val_size
    for key in ("train_size", "train_eval_size"):
        if getattr(cfg, key) > left:
            raise ReproError(
                f"data.{key}={getattr(cfg, key):,} is more than the {left:,} training images {images.name} has "
                f"after holding out data.val_size={cfg.val_size:,} for validation"
                + (" (0 takes them all)" if key == "train_size" else "")
            )
    if cfg.test_size > n_test:
        raise ReproError(
            f"data.test_size={cfg.test_size:,} is more than the {n_test:,} test images {images.name} has "
            "(0 takes them all)"
        )


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, epoch, rank, stream...), stable across platforms."""
    return zlib.crc32(repr(parts).encode()) * 2654435761 % (2**63 - 1)


class ResidentBatches:
    """Iterate over (x, y) batches sliced from in-memory tensors, sharded by rank.

    Shuffled batches use a permutation drawn from (seed, epoch), so the order of every epoch is
    reproducible after a resume. For training, each rank gets the same number of full batches
    (the remainder of the shuffled epoch is dropped, as ``drop_last`` would); for evaluation every
    example is seen exactly once across ranks.
    """

    def __init__(self, x, y, batch_size, *, shuffle, seed=0, epoch_fn=lambda: 0, rank=0, world=1, on_epoch=None):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.seed, self.epoch_fn, self.rank, self.world, self.on_epoch = seed, epoch_fn, rank, world, on_epoch

    def _count(self) -> int:
        """Examples this rank sees per epoch."""
        n = len(self.x)
        if not self.shuffle:
            return len(range(self.rank, n, self.world))
        per_rank = n // self.world
        return per_rank // self.batch_size * self.batch_size or per_rank

    def _indices(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.rank, len(self.x), self.world)
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch_fn(), 1))
        return torch.randperm(len(self.x), generator=g)[self.rank :: self.world][: self._count()]

    def __len__(self) -> int:
        return -(-self._count() // self.batch_size)

    def __iter__(self):
        if self.on_epoch is not None:
            self.on_epoch(self.epoch_fn())
        idx = self._indices().to(self.x.device)
        for start in range(0, len(idx), self.batch_size):
            i = idx[start : start + self.batch_size]
            yield self.x[i], self.y[i]


class ImageDataModule(L.LightningDataModule):
    """CIFAR-10 or MNIST: train/val split, optional subsets, batched on-device augmentation."""

    def __init__(self, cfg: ImageDataConfig, seed: int = 0, channels_last: bool = False):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed, self.channels_last = cfg, seed, channels_last
        self.info: dict | None = None  # name, fingerprint, source, classes of the data set
        self._gen: torch.Generator | None = None
        self._epoch = 0

    # -- data -----------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        LOADERS[self.cfg.dataset]()  # find / download / decode into the cache once, on rank 0

    def setup(self, stage: str | None = None) -> None:
        if self.info is not None:
            return
        cfg = self.cfg
        images = LOADERS[cfg.dataset]()
        self.info = {
            "name": images.name,
            "fingerprint": images.fingerprint,
            "source": images.source,
            "classes": images.classes,
        }
        check_sizes(cfg, images)
        g = torch.Generator().manual_seed(cfg.split_seed)
        perm = torch.randperm(len(images.train_x), generator=g)
        val_idx, train_idx = perm[: cfg.val_size], perm[cfg.val_size :]
        if cfg.train_size:
            train_idx = train_idx[: cfg.train_size]
        test_idx = torch.randperm(len(images.test_x), generator=g)[: cfg.test_size or None]
        eval_idx = train_idx[: cfg.train_eval_size]
        # Indexing copies: only these subsets stay in memory, not the whole (memory-mapped) data set.
        self.train = (images.train_x[train_idx], images.train_y[train_idx])
        self.val = (images.train_x[val_idx], images.train_y[val_idx])
        self.test = (images.test_x[test_idx], images.test_y[test_idx])
        self.train_eval = (images.train_x[eval_idx], images.train_y[eval_idx])
        # Normalisation statistics from the training images only.
        pixels = self.train[0].float().div(255)
        self.mean = pixels.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        self.std = pixels.std(dim=(0, 2, 3)).view(1, -1, 1, 1)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if device.type == "cuda":  # keep the whole (small) data set resident on the GPU
            for name in ("train", "val", "test", "train_eval"):
                setattr(self, name, tuple(t.to(device) for t in getattr(self, name)))
            self.mean, self.std = self.mean.to(device), self.std.to(device)

    @property
    def num_classes(self) -> int:
        return len(self.info["classes"]) if self.info else 10

    @property
    def in_channels(self) -> int:
        return 1 if self.cfg.dataset == "mnist" else 3

    def _rank_world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _loader(self, data, batch_size, shuffle):
        rank, world = self._rank_world()
        epoch_fn = (lambda: self.trainer.current_epoch) if self.trainer is not None else (lambda: 0)
        return ResidentBatches(
            *data,
            batch_size,
            shuffle=shuffle,
            seed=self.seed,
            epoch_fn=epoch_fn,
            rank=rank,
            world=world,
            on_epoch=self._start_epoch if shuffle else None,
        )

    def train_dataloader(self):
        return self._loader(self.train, self.cfg.batch_size, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val, self.cfg.eval_batch_size, shuffle=False)

    def test_dataloader(self):
        """Two loaders: the test set, and clean training images (for the training error)."""
        return [
            self._loader(self.test, self.cfg.eval_batch_size, shuffle=False),
            self._loader(self.train_eval, self.cfg.eval_batch_size, shuffle=False),
        ]

    # -- augmentation ---------------------------------------------------------------------------
    def _start_epoch(self, epoch: int) -> None:
        self._epoch, self._gen = epoch, None  # a fresh augmentation stream per (seed, epoch, rank)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        training = self.trainer is not None and self.trainer.training
        x = self.transform(x, train=training)
        return x, y

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 batch -> normalised float batch; augmented only when ``train``."""
        cfg = self.cfg
        if train and cfg.augment:
            if self._gen is None or self._gen.device != x.device:
                rank, _ = self._rank_world()
                self._gen = torch.Generator(device=x.device).manual_seed(mix_seed(self.seed, self._epoch, rank, 2))
            x = aug.augment(x, cfg.augment, self._gen, cfg.pad, cfg.rotate_degrees, cfg.noise_std)
        else:
            x = x.float().div_(255)
        x = x.sub_(self.mean).div_(self.std)  # in place: several times faster than (x - mean) / std here
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def data_info(self) -> dict:
        """Provenance for the run record: which data, which copy, how much of it."""
        return {
            **{k: v for k, v in self.info.items() if k != "classes"},
            "train": len(self.train[0]),
            "val": len(self.val[0]),
            "test": len(self.test[0]),
            "train_eval": len(self.train_eval[0]),
        }
