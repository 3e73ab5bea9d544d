"""Image classification: one LightningModule for every image experiment (augmentation, ResNet
ablation, ensembles...). The network is passed in; this class owns the loss, the metrics, the
optimizer, and the per-epoch history that ends up in the run record.

What an experiment measures on the trained net beyond the errors (the rank of a bottleneck, how many
weights are near zero...) is passed in as ``measures``: functions of the net returning final metrics
(``lightning_modules/measures.py``), and ``extra_measures`` for the record's extras (histograms). What it
measures as training goes on (the weights' norm, saturated units) is passed in as ``epoch_measures``: functions
of the net and a fixed probe batch (the first ``probe_images`` validation images), recorded in every history
row and, before the first step, in a row of its own: epoch 0, the net at initialization.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.base import DeviceMean, RecordedModule
from lightning_modules.optim import OptimConfig, sgd_with_schedule

Measure = Callable[[nn.Module], dict]
EpochMeasure = Callable[[nn.Module, torch.Tensor], dict]  # (net, probe batch) -> history values


class ImageClassifier(RecordedModule):
    """Cross-entropy classifier. Metrics are torchmetrics objects: their state is a (sum, count)
    that is reduced across DDP ranks when computed, so errors are exact however the data is sharded."""

    # measured on the final model (a diverged one predicts one class: 90% error); best_val_error, from before
    # the divergence, stays
    UNDEFINED_WHEN_DIVERGED = (
        "test_error",
        "test_loss",
        "final_val_error",
        "train_error",
        "train_loss",
        "gap",
        "gen_error",
    )

    def __init__(
        self,
        net: nn.Module,
        optim: OptimConfig,
        num_classes: int,
        measures: Sequence[Measure] = (),
        extra_measures: Sequence[Measure] = (),
        epoch_measures: Sequence[EpochMeasure] = (),
        probe_images: int = 1000,
    ):
        super().__init__()
        self.net, self.optim = net, optim
        self.measures, self.extra_measures = tuple(measures), tuple(extra_measures)
        self.epoch_measures, self.probe_images = tuple(epoch_measures), probe_images
        self._probe_batch: torch.Tensor | None = None
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{kind}": (
                    DeviceMean()
                    if kind == "loss"
                    else MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                )
                for split in ("train", "val", "test", "train_eval")
                for kind in ("loss", "acc")
            }
        )
        self.final: dict[str, float] = {}  # test-time metrics
        self._val: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _update(self, split: str, batch) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.metrics[f"{split}_loss"].update(loss.detach(), weight=len(y))
        self.metrics[f"{split}_acc"].update(logits.detach(), y)
        return loss

    def _compute(self, split: str) -> dict[str, float]:
        loss, acc = self.metrics[f"{split}_loss"], self.metrics[f"{split}_acc"]
        out = {f"{split}_loss": float(loss.compute()), f"{split}_error": 1.0 - float(acc.compute())}
        loss.reset()
        acc.reset()
        return out

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = self._update("train", batch)
        if self.syncs_each_step:  # the progress bar reads the value back
            self.log("train/loss_step", loss, prog_bar=True, logger=False)
        if self.optim.l1:  # the metrics above track the data term only
            loss = loss + self.optim.l1 * sum(p.abs().sum() for p in self.net.parameters() if p.dim() > 1)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(outputs, batch, batch_idx)  # the divergence watch
        after_step = getattr(self.net, "after_step", None)  # e.g. the MLP's max-norm projection
        if after_step is not None:
            after_step()

    def validation_step(self, batch, batch_idx):
        self._update("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.metrics["val_loss"].reset()
            self.metrics["val_acc"].reset()
            return
        self._val = self._compute("val")
        self.log("val/error", self._val["val_error"], prog_bar=True, sync_dist=False)

    def on_train_epoch_end(self) -> None:
        # Runs after this epoch's validation: one complete history row, then the checkpoint.
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.end_epoch({**self._compute("train"), **self._val, "lr": lr, **self.measure_epoch()})

    # -- measures along the way: epoch 0 (before any step), then after every epoch ---------------
    def on_train_start(self) -> None:
        if self.epoch_measures and not self.history:  # a resumed run has its epoch 0 already
            row = {"epoch": 0, **self.measure_epoch(), "seconds": 0.0}
            self.history.append(row)
            for logger in self.loggers:
                logger.log_metrics({f"epoch/{k}": v for k, v in row.items() if k != "epoch"}, step=0)

    def measure_epoch(self) -> dict[str, float]:
        """The epoch measures on the current weights, in evaluation mode (no dropout; batch norm's running
        statistics), on a fixed probe batch: the first ``probe_images`` validation images (the same on every
        rank)."""
        if not self.epoch_measures:
            return {}
        if self._probe_batch is None:
            dm = self.trainer.datamodule
            x = dm.val[0][: self.probe_images].to(self.device)
            self._probe_batch = dm.transform(x, train=False)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                return {
                    k: v for measure in self.epoch_measures for k, v in measure(self.net, self._probe_batch).items()
                }
        finally:
            self.net.train(was_training)

    # -- testing: dataloader 0 = test set, 1 = clean training images ----------------------------
    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._update("test" if dataloader_idx == 0 else "train_eval", batch)

    def on_test_epoch_end(self) -> None:
        self.final = {**self._compute("test"), **self._compute("train_eval")}

    def configure_optimizers(self):
        fused = bool(self.compiled) and self.device.type == "cuda"  # one kernel for the whole step
        return sgd_with_schedule(self.parameters(), self.optim, self.trainer.estimated_stepping_batches, fused=fused)

    # -- the run record's final metrics ---------------------------------------------------------
    def summary(self) -> dict[str, float]:
        val = [row["val_error"] for row in self.history if "val_error" in row]
        train = self.final["train_eval_error"]
        out = {
            "test_error": self.final["test_error"],
            "test_loss": self.final["test_loss"],
            "best_val_error": min(val) if val else float("nan"),
            "final_val_error": val[-1] if val else float("nan"),
            "train_error": train,  # clean training images, eval mode: the fit, not the augmented task
            "train_loss": self.final["train_eval_loss"],
            "gap": (val[-1] if val else float("nan")) - train,  # generalization gap: val minus train error
            "gen_error": self.final["test_error"] - train,  # slide 4's generalization error: test minus train
            "params_k": sum(p.numel() for p in self.net.parameters()) / 1000,
            "steps": float(self.trainer.global_step),
            "steps_per_epoch": float(self.trainer.num_training_batches),
            "epochs": float(sum(row["epoch"] >= 1 for row in self.history)),  # not epoch 0, the initialization
            "wall_time": self.train_seconds,
        }
        for measure in self.measures:
            out.update(measure(self.net))
        return out

    def extras(self) -> dict:
        return {k: v for measure in self.extra_measures for k, v in measure(self.net).items()}
