"""The contract between the runner and every LightningModule of the suite.

A module subclasses ``RecordedModule`` and provides:
- ``summary()``: the run's final metrics (a flat dict of numbers), called once after testing;
- optionally ``extras()``: anything else the record keeps for the plots (curves, samples, histograms);
- optionally ``resume_state()`` / ``load_resume_state()``: state of its own that a resumed run needs.
It calls ``end_epoch(row)`` once per training epoch (after validation) with that epoch's history row, and may
call ``check_loss(loss)`` / ``mark_diverged()`` when it optimizes by hand. ``compile_net(mode)`` compiles its
network, ``self.net``, in place (``train.compile``).

In return the base class keeps the per-epoch ``history`` and the training wall time across resumes (both go
into the checkpoint), logs each row to the run's loggers, and watches for divergence: a non-finite or
exploding training loss stops the run at once, and the record says ``diverged = 1``. The scores a diverged
model cannot give (its test error, its final losses: ``UNDEFINED_WHEN_DIVERGED``) are NaN in the record, so
that a table's mean of a metric is over the runs that measured it; what stays defined (how far it got, when it
diverged, its speed) is kept.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
from torchmetrics import MeanMetric

from base.errors import ReproError

# A loss above this is an explosion, not learning: every loss in the suite (cross-entropy over at most a few
# hundred classes, MSEs of targets of order one) starts below 10.
EXPLODED = 1e6
# On a GPU, reading the loss back waits for the device; the check runs every this many steps there.
GPU_CHECK_EVERY = 25


def exploded(value: float, limit: float = EXPLODED) -> bool:
    return not math.isfinite(value) or abs(value) > limit


class DeviceMean(MeanMetric):
    """torchmetrics' weighted mean, the same states and sums, without its NaN check: that check reads every update
    back to the host (on a GPU the CPU then waits for each step to finish) and drops NaN values. Here a NaN makes
    the epoch's mean NaN, which ``end_epoch`` reads as divergence in the epoch it happened."""

    def __init__(self, **kwargs) -> None:
        super().__init__(nan_strategy="disable", **kwargs)

    def update(self, value: torch.Tensor | float, weight: torch.Tensor | float = 1.0) -> None:
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        weight = torch.broadcast_to(torch.as_tensor(weight, dtype=self.dtype, device=self.device), value.shape)
        self.mean_value += (value * weight).sum()
        self.weight += weight.sum()


class RecordedModule(L.LightningModule):
    # the summary's scores that a diverged run records as NaN: measured on the exploded model, they are numbers
    # (an error of 90%, an MSE of 1e21) but no result of training
    UNDEFINED_WHEN_DIVERGED: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, float]] = []  # one row per epoch; saved in checkpoints
        self.train_seconds = 0.0  # wall time of the training epochs (validation included), over resumes
        self.diverged_at = math.nan  # the optimizer step at which the loss blew up (nan: it did not)
        self._epoch_start = 0.0
        self.compiled = ""  # the torch.compile mode of the network ("": eager)

    # -- what a subclass provides -----------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        raise NotImplementedError

    def extras(self) -> dict:
        return {}

    def resume_state(self) -> dict:
        return {}

    def load_resume_state(self, state: dict) -> None:
        pass

    # -- speed ------------------------------------------------------------------------------------
    def compile_net(self, mode: str) -> None:
        """Compile the network, ``self.net``, in place (``nn.Module.compile``: its parameters, buffers and
        state-dict keys stay as they are, so checkpoints move between eager and compiled runs). Shapes are
        static: the training batches have one size, evaluation batches another, and each is compiled once."""
        net = getattr(self, "net", None)
        if not isinstance(net, torch.nn.Module):
            raise ReproError(f"{type(self).__name__} has no network that train.compile can compile")
        net.compile(mode=None if mode == "default" else mode, dynamic=False)
        self.compiled = mode

    @property
    def syncs_each_step(self) -> bool:
        """Whether per-step reads of device values (the loss check, the progress bar's loss) are allowed: not on
        an accelerator in a compiled run, where they would stall the device queue; there the epoch's mean loss
        is checked at the end of the epoch (``end_epoch``)."""
        return not self.compiled or self.device.type == "cpu"

    # -- divergence -------------------------------------------------------------------------------
    @property
    def diverged(self) -> bool:
        return not math.isnan(self.diverged_at)

    def mark_diverged(self) -> None:
        """Record the step and stop training: divergence is a result to record, not a crash."""
        if not self.diverged:
            self.diverged_at = float(self.global_step + 1)
        if self._trainer is not None:
            self.trainer.should_stop = True

    def check_loss(self, loss: torch.Tensor | float, force: bool = False, limit: float = EXPLODED) -> bool:
        """Whether ``loss`` is still a number (finite, at most ``limit``; a gradient norm passes math.inf);
        marks the run diverged when it is not. On a GPU only every ``GPU_CHECK_EVERY`` steps (or when
        ``force``), since reading it back waits for the device."""
        if isinstance(loss, torch.Tensor):
            if loss.device.type != "cpu" and not force and (self.compiled or self.global_step % GPU_CHECK_EVERY):
                return True
            loss = float(loss.detach())
        if exploded(loss, limit):
            self.mark_diverged()
            return False
        return True

    def clip_gradient_norm(self, optimizer, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm of ``optimizer``'s parameters to ``max_norm`` (0: no clipping) and return
        the norm before clipping, as a tensor (reading it back would wait for a GPU). For manual optimization:
        the gradients here are the true ones under 32-bit and bf16-mixed precision; fp16 with a loss scale is
        refused when training starts (``on_fit_start``)."""
        opt = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps the torch one
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)

    def on_fit_start(self) -> None:
        # Under fp16 mixed precision the gradients a manual training step sees are multiplied by the loss scale,
        # and an overflow of that scale (a skipped step, routine in fp16) would read as divergence. The modules
        # that optimize by hand clip and check gradients themselves, so they train in 32-bit or bf16-mixed.
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if not self.automatic_optimization and scaler is not None:
            raise ReproError(
                f"{type(self).__name__} clips and checks its gradients by hand, which a loss scale (fp16 "
                "mixed precision) would falsify: use --precision bf16-mixed or 32"
            )

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self.check_loss(loss)

    # -- epochs -----------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def end_epoch(self, row: dict) -> None:
        """Append this epoch's history row (epoch number and seconds added), log it, and check its losses."""
        self.train_seconds += time.perf_counter() - self._epoch_start
        row = {"epoch": self.current_epoch + 1, **row, "seconds": self.train_seconds}
        self.history.append(row)
        for logger in self.loggers:
            logger.log_metrics({f"epoch/{k}": v for k, v in row.items() if k != "epoch"}, step=self.global_step)
        if any(exploded(v) for k, v in row.items() if k.startswith("train_") and k.endswith(("loss", "mse"))):
            self.mark_diverged()

    # -- the record -------------------------------------------------------------------------------
    def record_metrics(self) -> dict[str, float]:
        """The record's final metrics: the subclass's summary, with the divergence flag every table shows; a
        diverged run's undefined scores are NaN."""
        metrics = self.summary()
        metrics["diverged"] = float(self.diverged or bool(metrics.get("diverged")))
        if metrics["diverged"]:
            metrics.update({k: math.nan for k in self.UNDEFINED_WHEN_DIVERGED if k in metrics})
        return metrics

    # -- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["repro"] = {
            "history": self.history,
            "train_seconds": self.train_seconds,
            "diverged_at": self.diverged_at,
            **self.resume_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("repro", {})
        self.history = list(state.get("history", []))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.diverged_at = float(state.get("diverged_at", math.nan))
        self.load_resume_state(state)
