"""Image classification: one LightningModule for every image experiment (augmentation, ResNet
ablation, ensembles...). The network is passed in; this class owns the loss, the metrics, the
optimizer, and the per-epoch history that ends up in the run record.
"""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.optim import OptimConfig, sgd_with_schedule


class ImageClassifier(L.LightningModule):
    """Cross-entropy classifier. Metrics are torchmetrics objects: their state is a (sum, count)
    that is reduced across DDP ranks when computed, so errors are exact however the data is sharded."""

    def __init__(self, net: nn.Module, optim: OptimConfig, num_classes: int):
        super().__init__()
        self.net, self.optim = net, optim
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{kind}": (
                    MeanMetric()
                    if kind == "loss"
                    else MulticlassAccuracy(num_classes, average="micro", validate_args=False)
                )
                for split in ("train", "val", "test", "train_eval")
                for kind in ("loss", "acc")
            }
        )
        self.history: list[dict[str, float]] = []  # one row per epoch; saved in checkpoints
        self.final: dict[str, float] = {}  # test-time metrics
        self.train_seconds = 0.0  # accumulated over resumes
        self._epoch_start = 0.0
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
    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def training_step(self, batch, batch_idx):
        loss = self._update("train", batch)
        self.log("train/loss_step", loss, prog_bar=True, logger=False)
        if self.optim.l1:  # the metrics above track the data term only
            loss = loss + self.optim.l1 * sum(p.abs().sum() for p in self.net.parameters() if p.dim() > 1)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
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
        row = {
            "epoch": self.current_epoch + 1,
            **self._compute("train"),
            **self._val,
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
        }
        self.train_seconds += time.perf_counter() - self._epoch_start
        row["seconds"] = self.train_seconds
        self.history.append(row)
        for logger in self.loggers:
            logger.log_metrics({f"epoch/{k}": v for k, v in row.items() if k != "epoch"}, step=self.global_step)

    # -- testing: dataloader 0 = test set, 1 = clean training images ----------------------------
    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._update("test" if dataloader_idx == 0 else "train_eval", batch)

    def on_test_epoch_end(self) -> None:
        self.final = {**self._compute("test"), **self._compute("train_eval")}

    def configure_optimizers(self):
        return sgd_with_schedule(self.parameters(), self.optim, self.trainer.estimated_stepping_batches)

    # -- resume state ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["repro"] = {"history": self.history, "train_seconds": self.train_seconds}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("repro", {})
        self.history = list(state.get("history", []))
        self.train_seconds = float(state.get("train_seconds", 0.0))

    # -- the run record's final metrics ---------------------------------------------------------
    def summary(self) -> dict[str, float]:
        val = [row["val_error"] for row in self.history if "val_error" in row]
        train = self.final["train_eval_error"]
        return {
            "test_error": self.final["test_error"],
            "test_loss": self.final["test_loss"],
            "best_val_error": min(val) if val else float("nan"),
            "final_val_error": val[-1] if val else float("nan"),
            "train_error": train,  # clean training images, eval mode: the fit, not the augmented task
            "gap": (val[-1] if val else float("nan")) - train,  # generalization gap: val minus train error
            "epochs": float(len(self.history)),
            "wall_time": self.train_seconds,
        }
