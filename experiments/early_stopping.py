"""Slides 13-15: early stopping.

The slides, paraphrased: training error keeps falling, but at some point the validation error starts to rise again: the
network is overfitting. Stop training at the point of lowest validation error. The validation curve is
noisy, so in practice stop once it has not improved for a while (a patience rule) and keep the best
weights seen.

An MLP is trained for a long time, at a constant learning rate and without weight decay, on a small
MNIST subset, well past its best validation error. On clean MNIST labels the net soon fits every training
image and its validation *error* then barely moves (the validation *loss* rises); with 20% of the training
labels replaced by wrong ones, memorizing them takes many epochs and the validation error clearly turns up,
the textbook picture of the slide. Both are run. Nothing is stopped for real: the train, validation and
test errors are recorded at every epoch, and the stopping rules are applied afterwards to the recorded
validation curve (``lightning_modules/early_stopping.py``), so every rule and "train to the end" are
compared on the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from experiments.claims import higher, lower
from experiments.common import SMOKE_DATA, MLPRunConfig
from experiments.figures.early_stopping import plot
from experiments.spec import Claim, Experiment, Profile, Table, Variant

MAIN_PATIENCE = 10  # the rule the claim is decided with; the others are reported beside it


@dataclass
class StoppingConfig:
    patiences: tuple[int, ...] = (5, MAIN_PATIENCE, 20)  # epochs without a new best validation error

    def validate(self) -> None:
        if MAIN_PATIENCE not in self.patiences or any(p < 1 for p in self.patiences):
            raise ValueError(f"patiences must be >= 1 and include {MAIN_PATIENCE}")


@dataclass
class LabelNoiseConfig:
    fraction: float = 0.0  # of the training labels replaced by a different class (never val or test labels)

    def validate(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError("labels.fraction must be in [0, 1]")


@dataclass
class EarlyStoppingConfig(MLPRunConfig):
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    labels: LabelNoiseConfig = field(default_factory=LabelNoiseConfig)


def build(cfg: EarlyStoppingConfig, seed: int):
    from datamodules.images import NoisyLabelDataModule
    from experiments.common import build_mlp
    from lightning_modules.early_stopping import TestTrackedClassifier

    module = TestTrackedClassifier(build_mlp(cfg), cfg.optim, 10, cfg.stopping.patiences)
    return module, NoisyLabelDataModule(cfg.data, cfg.labels.fraction, seed=seed)


VARIANTS = (
    Variant(
        "mlp",
        "784-512-512-10 ReLU MLP, SGD (momentum 0.9) at a constant learning rate, no weight decay, no dropout: "
        "nothing but the number of epochs limits how far it fits the training set",
        {},
    ),
    Variant(
        "mlp-noisy",
        "the same net and training, with 20% of the training labels replaced by a wrong class (fixed set)",
        {"labels.fraction": 0.2},
    ),
)

SMALL_DATA = {
    "model.hidden": (512, 512),
    "optim.schedule": "constant",
    "optim.lr": 0.01,
    "optim.weight_decay": 0.0,
    "data.train_size": 2000,
    "data.val_size": 2000,
    "data.test_size": 5000,
    "data.train_eval_size": 2000,
    "data.batch_size": 32,
    "data.eval_batch_size": 1000,
}

PROFILES = (
    Profile(
        "smoke",
        "a 64-64 MLP on 256 images for 6 epochs, with patiences 1, 2 and 3 computed beside the claims' "
        f"{MAIN_PATIENCE}: checks the plumbing only",
        seeds=1,
        overrides={
            "model.hidden": (64, 64),
            **SMOKE_DATA,
            "stopping.patiences": (1, 2, 3, MAIN_PATIENCE),
            "train.max_epochs": 6,
            "train.log_every_n_steps": 1,
        },
    ),
    Profile(
        "quick",
        "784-512-512-10 MLP trained 40 epochs on a fixed 2,000-image MNIST subset (batch 32, SGD momentum 0.9 at a "
        "constant lr 0.01, no weight decay); 2,000 validation and 5,000 test images, both scored after every epoch",
        seeds=3,
        overrides={**SMALL_DATA, "train.max_epochs": 40, "train.log_every_n_steps": 10, "train.threads": 1},
        cpu_jobs=2,
    ),
    Profile(
        "full",
        "784-512-512-10 MLP trained 150 epochs on a fixed 5,000-image MNIST subset (batch 32, SGD momentum 0.9 at "
        "a constant lr 0.01, no weight decay); 10,000 validation images and the full test set after every epoch",
        seeds=5,
        overrides={
            **SMALL_DATA,
            "data.train_size": 5000,
            "data.val_size": 10000,
            "data.test_size": 0,
            "data.train_eval_size": 5000,
            "train.max_epochs": 150,
        },
    ),
)


# ----------------------------------------------------------------------------- claims
LABELS = {"mlp": "clean labels", "mlp-noisy": "20% wrong training labels"}


def _claims(variant: str) -> tuple[Claim, ...]:
    where = f" ({LABELS[variant]})"
    return (
        Claim(
            "13",
            "Trained long enough, the validation error rises again after its minimum" + where + ": measured on one "
            "half of the validation set, at the end against the epoch the other half found lowest",
            higher("val_b_end_error", variant, than=variant, than_metric="val_b_at_best_a_error"),
        ),
        Claim(
            "13-14",
            f"Early stopping (patience {MAIN_PATIENCE} on the validation error, best weights kept) gives lower "
            "test error than training to the end" + where,
            lower(f"p{MAIN_PATIENCE}_test_error", variant, than=variant, than_metric="end_test_error"),
        ),
        Claim(
            "13",
            "Stopping at the best validation error gives lower test error than training to the end" + where,
            lower("best_val_test_error", variant, than=variant, than_metric="end_test_error"),
        ),
        Claim(
            "13",
            "Stopping at the lowest validation cross-entropy gives lower test cross-entropy than the end" + where,
            lower("test_loss_at_best_val_loss", variant, than=variant, than_metric="test_loss_end", unit=" nats"),
        ),
    )


CLAIMS = _claims("mlp-noisy") + _claims("mlp")

METRICS = {
    "train_error": "train error (%)",
    "best_val_error": "best val error (%)",
    "final_val_error": "final val error (%)",
    "end_test_error": "test error at end (%)",
    "best_val_test_error": "test error at best val (%)",
    "min_test_error": "lowest test error, any epoch (%)",
    "best_val_epoch": "best-val epoch",
    "best_test_epoch": "best-test epoch",
    "val_choice_extra_error": "cost of choosing on val (pts)",
    "val_test_corr": "val-test correlation",
    "best_val_loss_epoch": "lowest val-loss epoch",
    "test_loss_at_best_val_loss": "test loss there",
    "test_loss_end": "test loss at end",
    "epochs": "epochs",
    "wall_time": "train time (s)",
}
for _p in (5, MAIN_PATIENCE, 20):
    METRICS |= {
        f"stop_epoch_p{_p}": f"P={_p}: stop epoch",
        f"kept_epoch_p{_p}": f"P={_p}: kept epoch",
        f"p{_p}_test_error": f"P={_p}: test error (%)",
    }


EXPERIMENT = Experiment(
    name="early-stopping",
    title="Early stopping",
    slides="13-15",
    claim="Validation error falls and then rises as training goes on; stopping where it is lowest (with a "
    "patience rule, since the curve is noisy) gives lower test error than training to the end",
    config=EarlyStoppingConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Test error: early stopping vs training to the end",
            ("mlp-noisy", "mlp"),
            (
                "train_error",
                "best_val_error",
                "final_val_error",
                "end_test_error",
                "best_val_test_error",
                *(f"p{p}_test_error" for p in (5, MAIN_PATIENCE, 20)),
                "min_test_error",
            ),
            "All from the same runs: the stopping rules are applied after training to the recorded validation curve "
            "(evaluated after every epoch). A patience-P rule stops once the validation error has not reached a new "
            "minimum for P epochs, and keeps the weights of its best epoch. The lowest test error over all epochs "
            "is an oracle bound, not a method.",
        ),
        Table(
            "Where each rule stops, and how well validation tracks test",
            ("mlp-noisy", "mlp"),
            (
                "best_val_epoch",
                *(k for p in (5, MAIN_PATIENCE, 20) for k in (f"stop_epoch_p{p}", f"kept_epoch_p{p}")),
                "best_test_epoch",
                "val_choice_extra_error",
                "val_test_corr",
                "best_val_loss_epoch",
                "test_loss_at_best_val_loss",
                "test_loss_end",
                "epochs",
                "wall_time",
            ),
            "Cost of choosing on val: test error at the best-val epoch minus the lowest test error over epochs. "
            "Val-test correlation: Pearson correlation of the two error curves over the last 80% of the epochs. "
            "A rule that never fires stops at the last epoch.",
        ),
    ),
    plot=plot,
)
