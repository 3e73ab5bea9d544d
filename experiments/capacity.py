"""Slides 3-5: capacity, training set size and the generalization gap.

"Training error and test error as functions of the number of training examples and of the number of
parameters: more data closes the gap between them; more parameters fit the training set better. The
gap between test and training error is the generalization error that the rest of the lecture fights."

A one-hidden-layer MLP (784-w-10) on MNIST, trained with plain SGD (no weight decay, no dropout), in
two sweeps: the training set size n at a fixed width, and the width w at a fixed n. Every run gets
the same number of optimizer steps (``budget.steps``), not the same number of epochs: with a fixed
epoch count a 500-image run would take 20 times fewer steps than a 10,000-image one, and would be
under-trained rather than over-fitted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datamodules.configs import ImageDataConfig
from engine.claims import falls_along, higher, lower
from engine.spec import TABLE_SEEDS, Claim, Experiment, Profile, Table, Variant
from experiments.common import SMOKE_DATA, MLPRunConfig
from experiments.figures.capacity import plot
from lightning_modules.configs import MLPConfig, OptimConfig

MNIST_TRAIN_IMAGES = 60_000  # the MNIST training set, before the validation split


# ----------------------------------------------------------------------------- config
@dataclass
class BudgetConfig:
    # > 0: every run trains for this many optimizer steps (rounded up to whole epochs): train.max_epochs is
    # derived from it, the training set size and the batch size. 0: train.max_epochs as set.
    steps: int = 10_000

    def validate(self) -> None:
        if self.steps < 0:
            raise ValueError("budget.steps must be >= 0")


@dataclass
class CapacityConfig(MLPRunConfig):
    """Defaults are the full profile: 784-256-10, batch 128, 10k validation images, 10,000 steps."""

    data: ImageDataConfig = field(
        default_factory=lambda: ImageDataConfig(
            dataset="mnist", val_size=10_000, train_size=2000, train_eval_size=10_000, batch_size=128
        )
    )
    model: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=(256,)))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, weight_decay=0.0, schedule="cosine"))
    budget: BudgetConfig = field(default_factory=BudgetConfig)


def training_images(data: ImageDataConfig) -> int:
    """How many MNIST images the training split holds (what ``ImageDataModule.setup`` will select)."""
    pool = MNIST_TRAIN_IMAGES - data.val_size
    return min(data.train_size, pool) if data.train_size else pool


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps in one epoch of ``ResidentBatches``: full batches only (the remainder of the shuffled
    epoch is dropped), or one short batch when the whole set is smaller than a batch."""
    return max(1, images // batch_size)


def epochs_for(steps: int, images: int, batch_size: int) -> int:
    """The fewest whole epochs that take at least ``steps`` optimizer steps."""
    return max(1, math.ceil(steps / steps_per_epoch(images, batch_size)))


@dataclass(frozen=True)
class StepBudgetExperiment(Experiment):
    """An experiment whose runs all take the same number of optimizer steps: after the usual overrides,
    ``train.max_epochs`` is derived from ``budget.steps`` (unless the command line sets it itself)."""

    def resolve(self, variant: str, profile: str, sets: Mapping[str, str] | None = None) -> Any:
        cfg = super().resolve(variant, profile, sets)
        if cfg.budget.steps and "train.max_epochs" not in (sets or {}):
            cfg.train.max_epochs = epochs_for(cfg.budget.steps, training_images(cfg.data), cfg.data.batch_size)
        return cfg


# ----------------------------------------------------------------------------- the run
def build(cfg: CapacityConfig, seed: int):
    from datamodules.images import ImageDataModule
    from experiments.common import build_mlp
    from lightning_modules.classifier import ImageClassifier

    return ImageClassifier(build_mlp(cfg), cfg.optim, num_classes=10), ImageDataModule(cfg.data, seed=seed)


def mlp_params(width: int, inputs: int = 784, classes: int = 10) -> int:
    """Weights and biases of a 784-w-10 MLP."""
    return inputs * width + width + width * classes + classes


SIZES = (500, 1000, 2000, 5000, 10_000, 0)  # 0: every training image (50,000 after the 10k validation split)
WIDTHS = (8, 32, 128, 512, 2048)


def size_name(n: int) -> str:
    return f"n-{n}" if n else "n-all"


VARIANTS = tuple(
    Variant(
        size_name(n),
        f"{n:,} training images" if n else "every training image (50,000)",
        {"data.train_size": n},
    )
    for n in SIZES
) + tuple(Variant(f"width-{w}", f"784-{w}-10: {mlp_params(w):,} parameters", {"model.hidden": (w,)}) for w in WIDTHS)
SIZE_VARIANTS = tuple(size_name(n) for n in SIZES)
WIDTH_VARIANTS = tuple(f"width-{w}" for w in WIDTHS)

PROFILES = (
    Profile(
        "smoke",
        "784-32-10, 256 training images for the width variants, 20 steps of batch 64: checks the plumbing only",
        seeds=1,
        overrides={
            "model.hidden": (32,),
            **SMOKE_DATA,
            "budget.steps": 20,
            "train.log_every_n_steps": 1,
        },
        variants=("n-500", "width-8", "width-128"),
    ),
    Profile(
        "quick",
        "n sweep: 784-256-10 on 500, 2,000, 5,000 and 10,000 images; width sweep: 784-w-10 on 2,000 images. Every run "
        "takes 1,000 SGD steps of batch 64 (momentum 0.9, lr 0.05, cosine, no weight decay); 1,000 "
        "validation images, the full 10,000-image test set, training error on (up to) 10,000 clean "
        "training images",
        seeds=5,
        first_seed=TABLE_SEEDS,
        overrides={
            "model.hidden": (256,),
            "data.train_size": 2000,
            "data.val_size": 1000,
            "data.test_size": 0,
            "data.train_eval_size": 10_000,
            "data.batch_size": 64,
            "data.eval_batch_size": 1000,
            "budget.steps": 1000,
            "train.log_every_n_steps": 50,
            "train.threads": 1,
        },
        variants=("n-500", "n-2000", "n-5000", "n-10000", "width-8", "width-32", "width-128", "width-512"),
        cpu_jobs=2,
        power="5 seeds, about 3 min (40 runs of 4-5 s of training, two at a time). At 3 seeds (the committed runs "
        "before 2026-11-28) the n-sweep claims were decided with room (gap +9.8 pts, CI +-0.8) and the U curve's "
        "right arm was not: width-512 minus width-128 test error -0.36 pts (per seed ---, sd about 0.2, 95% CI "
        "-0.84 to +0.12); 5 seeds narrow that interval to about +-0.25 pts, which decides an effect of that size. "
        "The width claim reads the training loss (its log10), since every width >= 32 has 0% training error.",
    ),
    Profile(
        "full",
        "n sweep: 784-256-10 on 500 images to all 50,000; width sweep: 784-w-10 (w up to 2,048) on 2,000 "
        "images; every run 10,000 SGD steps of batch 128; 10k validation images, full test set; for a GPU",
        seeds=3,
        first_seed=TABLE_SEEDS,  # a table: seeds no pilot used
        overrides={},
    ),
)


# ----------------------------------------------------------------------------- claims
# Each claim compares the two ends of a sweep (the smallest and the largest n, or width, of the profile).
SMALL_N, LARGE_N = "n-500", "n-10000"
NARROW, WIDE = "width-8", "width-512"

CLAIMS = (
    Claim(
        "4-5",
        "The generalization gap (test - train error) shrinks as the training set grows",
        lower("gen_error", LARGE_N, than=SMALL_N),
    ),
    Claim("4", "Test error falls as the training set grows (fixed net)", lower("test_error", LARGE_N, than=SMALL_N)),
    Claim(
        "4",
        "Training error rises as the training set grows: more examples are harder to fit",
        higher("train_error", LARGE_N, than=SMALL_N),
    ),
    # Every width >= 32 fits the 2,000 training images to 0% error, so training error cannot rank them; the
    # training loss (cross-entropy on the clean training set) can, and its values span orders of magnitude: log10.
    Claim(
        "4",
        "More parameters fit the training set better: each wider net (8, 32, 128, 512 units) reaches a lower "
        "training loss than the next narrower one (fixed training set and steps)",
        falls_along("train_loss", WIDTH_VARIANTS[:4], transform="log10"),
    ),
    Claim(
        "4",
        "Test error vs parameters, the U curve's right arm: the widest net tests worse than the next narrower "
        "one (a measurement either way: over-parameterized nets trained by SGD often do not)",
        higher("test_error", WIDE, than="width-128"),
    ),
)

METRICS = {
    "train_error": "train error (%)",
    "test_error": "test error (%)",
    "train_loss": "train loss",
    "gen_error": "test - train (pts)",
    "params_k": "params (k)",
    "epochs": "epochs",
    "wall_time": "train time (s)",
}


EXPERIMENT = StepBudgetExperiment(
    name="capacity",
    title="Training set size, parameters and the generalization gap",
    slides="3-5",
    claim="Test error exceeds training error by a gap (the generalization error) that shrinks as the training "
    "set grows; more parameters fit the training set better",
    config=CapacityConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Training set size (fixed net)",
            SIZE_VARIANTS,
            tuple(METRICS),
            "Same number of optimizer steps for every n (so more epochs for smaller sets). Training error: "
            "clean training images in evaluation mode, after the last step.",
        ),
        Table(
            "Width of the hidden layer (fixed training set)",
            WIDTH_VARIANTS,
            tuple(METRICS),
            "784-w-10 MLPs: 795 w + 10 parameters.",
        ),
    ),
    plot=functools.partial(plot, sizes=SIZE_VARIANTS, widths=WIDTH_VARIANTS),
)
