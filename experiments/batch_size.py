"""Slide 24: the mini-batch size as a regularizer.

In the lecture's words, paraphrased: the noise of stochastic gradient descent helps generalization, and
there is some evidence that larger mini-batches (less noise in each step) fit the training set as well but
generalize worse (Keskar et al. 2017, "On large-batch training for deep learning: generalization gap and
sharp minima").

The same MLP, the same number of epochs and the same schedule on the same MNIST subset, with mini-batches
of 32 and of 1024 images. A bigger batch takes fewer steps per epoch (32x fewer here), so the learning rate
must change with it for a fair comparison: the usual rule is linear scaling (Goyal et al. 2017: lr
proportional to the batch size, with a warm-up), stated per variant below. A third variant keeps the small
batch's learning rate, to show what the scaling is for.
"""

from __future__ import annotations

from experiments.claims import higher, not_higher
from experiments.common import MLPRunConfig
from experiments.spec import Claim, Experiment, Profile, Table, Variant

# The learning rate of the reference batch; every variant's lr follows from its batch size by a stated rule.
BASE_LR, BASE_BATCH = 0.05, 256
SMALL, LARGE = 32, 1024


def linear_scaled_lr(batch_size: int, base_lr: float = BASE_LR, base_batch: int = BASE_BATCH) -> float:
    """Goyal et al.'s linear scaling rule: k times the batch, k times the learning rate."""
    return base_lr * batch_size / base_batch


def build(cfg: MLPRunConfig, seed: int):
    from datamodules.images import ImageDataModule
    from experiments.common import build_mlp
    from lightning_modules.classifier import ImageClassifier

    module = ImageClassifier(build_mlp(cfg), cfg.optim, num_classes=10)
    return module, ImageDataModule(cfg.data, seed=seed, channels_last=False)


VARIANTS = (
    Variant(
        f"batch-{SMALL}",
        f"mini-batches of {SMALL}, lr {linear_scaled_lr(SMALL):g} ({BASE_LR:g} per {BASE_BATCH} images, scaled "
        "linearly to the batch size)",
        {"data.batch_size": SMALL, "optim.lr": linear_scaled_lr(SMALL)},
    ),
    Variant(
        f"batch-{LARGE}",
        f"mini-batches of {LARGE}, lr {linear_scaled_lr(LARGE):g} (the same linear scaling rule: "
        f"{LARGE // SMALL}x the batch, {LARGE // SMALL}x the lr)",
        {"data.batch_size": LARGE, "optim.lr": linear_scaled_lr(LARGE)},
    ),
    Variant(
        f"batch-{LARGE}-same-lr",
        f"mini-batches of {LARGE} at the small batch's lr {linear_scaled_lr(SMALL):g} (no scaling: "
        f"{LARGE // SMALL}x fewer steps of the same size)",
        {"data.batch_size": LARGE, "optim.lr": linear_scaled_lr(SMALL)},
    ),
)

COMMON = {  # every variant: the same net, data, epochs and schedule; only the batch size and the lr differ
    "model.hidden": (512, 512),
    "optim.schedule": "cosine",
    "optim.warmup": 0.05,  # linear warm-up over the first 5% of training, for every variant (Goyal et al.)
    "optim.weight_decay": 0.0,
    "data.eval_batch_size": 1024,
}

PROFILES = (
    Profile(
        "smoke",
        "a 64-64 MLP on 256 images, 2 epochs; batch 1024 is then one batch of all 256 images: plumbing only",
        seeds=1,
        overrides={
            **COMMON,
            "model.hidden": (64, 64),
            "data.train_size": 256,
            "data.val_size": 128,
            "data.test_size": 256,
            "data.train_eval_size": 256,
            "data.eval_batch_size": 256,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=(f"batch-{SMALL}", f"batch-{LARGE}"),
    ),
    Profile(
        "quick",
        f"784-512-512-10 MLP, 40 epochs on a fixed 4,096-image MNIST subset (a multiple of both batch sizes, so "
        f"no image is dropped: {4096 // SMALL} and {4096 // LARGE} steps per epoch), cosine lr with 5% warm-up, no "
        "weight decay; training error on all 4,096 training images, test error on 5,000 test images",
        seeds=3,
        overrides={
            **COMMON,
            "data.train_size": 4096,
            "data.val_size": 1000,
            "data.test_size": 5000,
            "data.train_eval_size": 4096,
            "train.max_epochs": 40,
            "train.log_every_n_steps": 10,
            "train.threads": 1,
        },
        cpu_jobs=2,
    ),
    Profile(
        "full",
        "784-1024-1024-10 MLP, 100 epochs on MNIST (50,000 train / 10,000 val), cosine lr with 5% warm-up, no "
        "weight decay; full test set; for a GPU",
        seeds=5,
        overrides={**COMMON, "model.hidden": (1024, 1024), "data.train_eval_size": 10000, "train.max_epochs": 100},
    ),
)


# ----------------------------------------------------------------------------- claims
FITS_MARGIN = 0.005  # "fits as well": training error at most half a percentage point higher

CLAIMS = (
    Claim(
        "24",
        f"With the lr scaled linearly, the larger batch ({LARGE} vs {SMALL}, same epochs) fits the training set at "
        f"least as well (training error not higher by more than {FITS_MARGIN * 100:g} pts)",
        not_higher("train_error", f"batch-{LARGE}", than=f"batch-{SMALL}", margin=FITS_MARGIN),
    ),
    Claim(
        "24",
        f"... but tests worse: higher test error with batch {LARGE} than with {SMALL}",
        higher("test_error", f"batch-{LARGE}", than=f"batch-{SMALL}"),
    ),
    Claim(
        "24",
        "... and its generalization gap (test minus training error) is larger",
        higher("gen_error", f"batch-{LARGE}", than=f"batch-{SMALL}"),
    ),
    Claim(
        "24",
        f"Without lr scaling, the same epochs at batch {LARGE} are {LARGE // SMALL}x fewer steps of the same size: "
        "the large batch underfits (higher training error)",
        higher("train_error", f"batch-{LARGE}-same-lr", than=f"batch-{SMALL}"),
    ),
)

METRICS = {
    "train_error": "train error (%)",
    "test_error": "test error (%)",
    "gen_error": "test - train (pts)",
    "best_val_error": "best val error (%)",
    "train_loss": "train loss (nats)",
    "test_loss": "test loss (nats)",
    "steps_per_epoch": "steps / epoch",
    "steps": "steps",
    "epochs": "epochs",
    "wall_time": "train time (s)",
}

EXPERIMENT = Experiment(
    name="batch-size",
    title="Small vs large mini-batches",
    slides="24",
    claim="The noise of small mini-batches regularizes: a larger batch can fit the training set as well but "
    "generalize worse",
    config=MLPRunConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            f"Mini-batches of {SMALL} vs {LARGE}: same net, data, epochs and schedule",
            tuple(v.name for v in VARIANTS),
            tuple(METRICS),
            "Training error: clean training images in evaluation mode after the last epoch (all of them in the "
            "quick profile). Steps: optimizer updates in the whole run; the same epochs at a larger batch are "
            "fewer, larger steps. Learning rates are stated per variant below.",
            pairs=((f"batch-{SMALL}", f"batch-{LARGE}"), (f"batch-{SMALL}", f"batch-{LARGE}-same-lr")),
        ),
    ),
)
