"""Image classification data held in memory as uint8 tensors and served as whole batches.

The data set lives as one uint8 tensor (moved to the GPU when training on one); a batch is a slice
of it; augmentation runs batched on the device in ``on_after_batch_transfer`` and only while the
trainer is training. No per-image Python work, no worker processes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from base.errors import ReproError
from base.seeds import mix_seed
from datamodules import augment as aug
from datamodules.base import RecordedDataModule
from datamodules.batches import ResidentBatches, epoch_of
from datamodules.catalog import ImageSet, load_cifar10, load_mnist
from datamodules.configs import ImageDataConfig

LOADERS: dict[str, Callable[[], ImageSet]] = {"cifar10": load_cifar10, "mnist": load_mnist}


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


class ImageDataModule(RecordedDataModule):
    """CIFAR-10 or MNIST: train/val split, optional subsets, batched on-device augmentation."""

    shards = True

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

    def _loader(self, data, batch_size, shuffle):
        rank, world = self.rank_world()
        return ResidentBatches(
            *data,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=self.seed,
            epoch_fn=epoch_of(self),
            rank=rank,
            world=world,
            on_epoch=self._start_epoch if shuffle else None,
        )

    def train_dataloader(self):
        return self._loader(self.train, self.per_rank(self.cfg.batch_size), shuffle=True)

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
                rank, _ = self.rank_world()
                self._gen = torch.Generator(device=x.device).manual_seed(mix_seed(self.seed, self._epoch, rank, 2))
            x = aug.augment(
                x,
                cfg.augment,
                self._gen,
                cfg.pad,
                cfg.rotate_degrees,
                cfg.noise_std,
                elastic_alpha=cfg.elastic_alpha,
                elastic_sigma=cfg.elastic_sigma,
                pixel_flip_prob=cfg.pixel_flip_prob,
            )
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


# ----------------------------------------------------------------------------- wrong labels (early stopping)
def corrupt_labels(y: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """A copy of ``y`` with exactly round(fraction * len(y)) labels, chosen at random, each replaced by a
    uniformly drawn *different* class; deterministic in ``seed``."""
    g = torch.Generator().manual_seed(seed)
    y = y.clone()
    which = torch.randperm(len(y), generator=g)[: round(fraction * len(y))].to(y.device)
    shift = torch.randint(1, num_classes, (len(which),), generator=g).to(y.device)
    y[which] = (y[which] + shift) % num_classes
    return y


class NoisyLabelDataModule(ImageDataModule):
    """The image data module with a fixed fraction of the training labels wrong: the same images and the same
    wrong labels for every run seed (drawn from ``split_seed``, like the subsets). The clean training error is
    measured against the labels the net was trained on, so it shows how far the noise is memorized."""

    def __init__(self, cfg: ImageDataConfig, noise: float, seed: int = 0):
        super().__init__(cfg, seed=seed, channels_last=False)
        self.noise = noise

    def setup(self, stage: str | None = None) -> None:
        fresh = self.info is None
        super().setup(stage)
        if fresh and self.noise:
            x, y = self.train
            y = corrupt_labels(y, self.noise, 10, self.cfg.split_seed + 1)
            self.train = (x, y)
            n = len(self.train_eval[0])  # the training-error images are the first n training images
            self.train_eval = (x[:n], y[:n])


# ----------------------------------------------------------------------------- data: batches with indices
class IndexedImageDataModule(ImageDataModule):
    """An ImageDataModule whose training batches are (x, y, i), i the examples' positions in the training
    set (bagging weights are per example); validation and test batches are (x, y) as usual.

    ``member_orders`` N > 0: N networks trained together each get their own minibatch order, and a training batch
    is (x, y, i) with a leading member axis: (N, B, ...), (N, B), (N, B). Member k's batch is the loader's batch
    with every position j replaced by sigma_k(j), sigma_k a permutation of the training set drawn from (seed,
    epoch, k): the loader's order is uniformly random and so is each sigma_k, so the members' orders are
    independent uniform permutations, one per member and epoch."""

    def __init__(self, cfg, seed: int = 0, channels_last: bool = False, member_orders: int = 0):
        super().__init__(cfg, seed=seed, channels_last=channels_last)
        self.member_orders = member_orders
        self._orders: tuple[int, torch.Tensor] | None = None  # (epoch, (N, n) permutations)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.train_index = torch.arange(len(self.train[1]), device=self.train[1].device)

    def train_dataloader(self):
        # The shared loader slices (images, positions); the labels are looked up after the transfer.
        return self._loader((self.train[0], self.train_index), self.per_rank(self.cfg.batch_size), shuffle=True)

    def member_permutations(self, epoch: int) -> torch.Tensor:
        """(N, n): member k's permutation of the n training positions in ``epoch``."""
        if self._orders is None or self._orders[0] != epoch:
            n = len(self.train[1])
            perms = [
                torch.randperm(n, generator=torch.Generator().manual_seed(mix_seed(self.seed, epoch, k, 4)))
                for k in range(self.member_orders)  # stream 4: apart from shuffling (1), augment (2), bagging (3)
            ]
            self._orders = (epoch, torch.stack(perms))
        return self._orders[1]

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        training = self.trainer is not None and self.trainer.training
        if training and self.member_orders:
            _, positions = batch
            index = self.member_permutations(self._epoch).to(positions.device)[:, positions]  # (N, B)
            x = self.transform(self.train[0][index.flatten()], train=True)
            return x.view(*index.shape, *x.shape[1:]), self.train[1][index], index
        x, second = super().on_after_batch_transfer(batch, dataloader_idx)
        if training:
            return x, self.train[1][second], second
        return x, second
