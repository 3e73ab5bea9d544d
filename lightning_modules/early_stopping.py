"""Early stopping, decided offline: train to the end, record the test error at every epoch, and apply
stopping rules afterwards to the recorded validation curve.

Stopping for real would throw away the part of the run that shows what early stopping saves; with the
whole curve recorded, every rule (the best-validation epoch, patience P for several P) is read off the
same run and compared with training to the end, on the same seed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import torch
import torch.nn as nn
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.classifier import EpochMeasure, ImageClassifier
from lightning_modules.optim import OptimConfig


def best_epoch(curve: Sequence[float]) -> int:
    """Epoch (numbered from 1) of the lowest value; the first one on ties."""
    return min(range(len(curve)), key=lambda i: (curve[i], i)) + 1


def patience_stop(val: Sequence[float], patience: int) -> tuple[int, int]:
    """The patience rule on a recorded validation curve (epochs numbered from 1).

    Training stops after the epoch at which the validation value has not improved (strictly) on its best
    for ``patience`` epochs in a row, and the weights of the best epoch seen so far are kept (Keras'
    ``EarlyStopping(patience=P, restore_best_weights=True)``). Returns (stop epoch, kept epoch); a rule
    that never fires stops at the last epoch.
    """
    if patience < 1:
        raise ValueError("patience must be >= 1")
    best, kept = math.inf, 0
    for epoch, value in enumerate(val, 1):
        if value < best:
            best, kept = value, epoch
        elif epoch - kept >= patience:
            return epoch, kept
    return len(val), kept


def correlation(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson correlation of two curves (nan when one is constant or too short)."""
    try:
        return statistics.correlation(a, b)
    except statistics.StatisticsError:
        return math.nan


def stopping_metrics(history: list[dict], patiences: Sequence[int]) -> dict[str, float]:
    """What each stopping rule would have given, from the per-epoch history rows (val_* and test_*). A row of
    epoch 0 (the net at initialization, before any step) holds measures only, and is read by
    ``trajectory_metrics``; the rules see epochs 1 to N."""
    init = [row for row in history if row.get("epoch", 1) < 1]
    history = [row for row in history if row.get("epoch", 1) >= 1]
    val = [row["val_error"] for row in history]
    test = [row["test_error"] for row in history]
    val_loss = [row["val_loss"] for row in history]
    test_loss = [row["test_loss"] for row in history]
    at_best_val = best_epoch(val)
    at_best_val_loss = best_epoch(val_loss)
    at_best_test = best_epoch(test)
    out = {
        "best_val_epoch": float(at_best_val),
        "best_val_test_error": test[at_best_val - 1],
        "end_test_error": test[-1],
        "min_test_error": test[at_best_test - 1],  # the oracle on the test set: a bound, not a method
        "best_test_epoch": float(at_best_test),
        # val-test agreement: how much test error choosing on val costs against choosing on test itself,
        # and how alike the two curves are after the first epochs (the shared initial fall dominates otherwise)
        "val_choice_extra_error": test[at_best_val - 1] - test[at_best_test - 1],
        "val_test_corr": correlation(val[len(val) // 5 :], test[len(test) // 5 :]),
        # the same on the loss (the mean cross-entropy), where overfitting shows first
        "best_val_loss_epoch": float(at_best_val_loss),
        "test_loss_at_best_val_loss": test_loss[at_best_val_loss - 1],
        "test_loss_end": test_loss[-1],
    }
    if "val_a_error" in history[0]:
        # Does the validation error rise after its minimum? Reading the minimum and the rise off the same curve
        # would be >= 0 by construction (the minimum is chosen on that noise); so the epoch is chosen on one half
        # of the validation set and the rise is measured on the other.
        half_a = [row["val_a_error"] for row in history]
        half_b = [row["val_b_error"] for row in history]
        at_best_a = best_epoch(half_a)
        out["best_val_a_epoch"] = float(at_best_a)
        out["val_b_at_best_a_error"] = half_b[at_best_a - 1]
        out["val_b_end_error"] = half_b[-1]
    for p in patiences:
        stop, kept = patience_stop(val, p)
        out[f"stop_epoch_p{p}"] = float(stop)
        out[f"kept_epoch_p{p}"] = float(kept)
        out[f"p{p}_test_error"] = test[kept - 1]
        out[f"epochs_saved_p{p}"] = float(len(val) - stop)  # epochs the rule would not have trained
    if init:
        out |= trajectory_metrics(init[0], history, {f"p{p}": patience_stop(val, p)[1] for p in patiences})
    return out


TRACKED = ("weight_norm", "saturated_pct")  # the epoch measures whose course the summary reports


def trajectory_metrics(init: dict, epochs: list[dict], kept: dict[str, int]) -> dict[str, float]:
    """Each tracked measure at initialization (``<m>_init``, the epoch-0 row), at the end (``<m>_final``) and at
    the epoch each stopping rule keeps (``<m>_<rule>``, e.g. ``weight_norm_p10``: the weights early stopping
    returns); ``weight_norm_growth``: final over initial norm."""
    out: dict[str, float] = {}
    for key in TRACKED:
        if key not in init:
            continue
        out[f"{key}_init"], out[f"{key}_final"] = init[key], epochs[-1][key]
        for rule, epoch in kept.items():
            out[f"{key}_{rule}"] = epochs[epoch - 1][key]
    if "weight_norm_init" in out:
        out["weight_norm_growth"] = out["weight_norm_final"] / out["weight_norm_init"]
    return out


class TestTrackedClassifier(ImageClassifier):
    """An ImageClassifier that also measures the test error at every validation, into the history rows
    (``test_error``, ``test_loss``), so that stopping rules can be evaluated on the recorded curves.
    The test set only ever scores a fixed epoch; nothing is chosen on it."""

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        num_classes: int,
        patiences: Sequence[int],
        epoch_measures: Sequence[EpochMeasure] = (),
        probe_images: int = 1000,
    ):
        super().__init__(net, optim, num_classes, epoch_measures=epoch_measures, probe_images=probe_images)
        self.patiences = tuple(patiences)
        # the validation set in two fixed halves (even and odd positions of every batch)
        self.halves = nn.ModuleDict(
            {h: MulticlassAccuracy(num_classes, average="micro", validate_args=False) for h in ("a", "b")}
        )

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        x, y = batch
        with torch.no_grad():
            logits = self(x)
        self.halves["a"].update(logits[0::2], y[0::2])
        self.halves["b"].update(logits[1::2], y[1::2])

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        halves = {f"val_{h}_error": 1.0 - float(m.compute()) for h, m in self.halves.items()}
        for m in self.halves.values():
            m.reset()
        if self.trainer.sanity_checking:
            return
        self._val.update(halves)
        dm = self.trainer.datamodule
        with torch.no_grad():  # the model is in eval mode here, as for validation
            for x, y in dm.test_dataloader()[0]:  # sharded by rank; the metrics reduce across ranks
                x, y = x.to(self.device), y.to(self.device)
                self._update("test", (dm.transform(x, train=False), y))
        self._val.update(self._compute("test"))  # joins this epoch's history row

    def summary(self) -> dict[str, float]:
        return {**super().summary(), **stopping_metrics(self.history, self.patiences)}
