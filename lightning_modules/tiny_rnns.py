"""Slides 29-30: recurrent networks small enough to set their weights by hand, and to train from scratch.

One hidden unit, linear, with a self-loop; no biases; h_0 = 0:

    h_t = w_self h_{t-1} + sum_i w_in[i] x_t[i],        z_t = w_out h_t.

- ``summing`` (slide 29): one input, every weight 1, a linear output y_t = z_t: the output is the running sum
  of the inputs, so inputs 2, -0.5, 1, 1 give 2, 1.5, 2.5, 3.5.
- ``comparing`` (slide 30): two inputs with weights +1 and -1, so h_t is (total of input 1) - (total of input 2)
  so far, and a logistic output y_t = sigmoid(z_t) with a large w_out: near 1 when input 1's total is larger,
  near 0 when input 2's is.

The hand-set nets are evaluated exactly (float64, on values that are exact in binary). The same architecture
is also trained from a random init on sequences generated from the run seed (targets: the running sum, or
which running total is larger), to see whether gradient descent finds equivalent weights: for summing any
w_self = 1, w_in w_out = 1 computes the same function; for comparing any w_self = 1, w_in2 / w_in1 = -1 with
w_out w_in1 > 0 makes the same decisions (the output scale w_out w_in1 only sets how sure it is).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from datamodules.sequences import TinyRNNConfig
from lightning_modules.base import RecordedModule
from lightning_modules.configs import COMPARING_INPUTS, SUMMING_INPUTS, SUMMING_OUTPUTS
from lightning_modules.nets.tiny_rnn import hand_set, random_init
from lightning_modules.optim import lr_multiplier


def outputs(task: str, z: torch.Tensor) -> torch.Tensor:
    """The output units: linear (summing) or logistic (comparing)."""
    return z if task == "summing" else torch.sigmoid(z)


def task_loss(task: str, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the linear output, or cross-entropy of the logistic one, averaged over every step."""
    if task == "summing":
        return (z - target).pow(2).mean()
    return nn.functional.binary_cross_entropy_with_logits(z, target)


def accuracy(z: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of steps where the logistic output is on the right side of 1/2."""
    return float(((z > 0) == (target > 0.5)).to(torch.float64).mean())


def hand_table(task: str, output_weight: float = 5.0) -> dict[str, list]:
    """The hand-set net on the slide's example: inputs, hidden states and outputs at each step, and whether
    they are exactly what the slide says (summing: the outputs 2, 1.5, 2.5, 3.5; comparing: h is the exact
    running difference of the totals and the output is above 1/2 exactly where input 1's total is larger)."""
    net = hand_set(task, output_weight)
    rows = [[v] for v in SUMMING_INPUTS] if task == "summing" else [list(r) for r in COMPARING_INPUTS]
    x = torch.tensor([rows], dtype=torch.float64)
    with torch.no_grad():
        h, z = net(x)
        y = outputs(task, z)
    if task == "summing":
        exact = torch.equal(y[0], torch.tensor(SUMMING_OUTPUTS, dtype=torch.float64)) and torch.equal(h, z)
    else:
        total1 = total2 = 0.0
        difference, first_larger = [], []
        for a, b in rows:
            total1, total2 = total1 + a, total2 + b
            difference.append(total1 - total2)
            first_larger.append(total1 > total2)
        exact = (
            torch.equal(h[0], torch.tensor(difference, dtype=torch.float64))
            and [bool(v > 0.5) for v in y[0]] == first_larger
        )
    return {"inputs": rows, "hidden": h[0].tolist(), "outputs": y[0].tolist(), "exact": bool(exact)}


class TinyRNNModule(RecordedModule):
    """Trains a randomly initialized TinyRNN on its task; tests it and the hand-set net on the same sequences."""

    # the trained net's test scores (the hand-set net's stay)
    UNDEFINED_WHEN_DIVERGED = tuple(
        f"{p}test_{m}{s}" for p in ("", "log10_") for m in ("loss", "accuracy") for s in ("", "_long")
    )

    def __init__(self, cfg: TinyRNNConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.net = random_init(cfg.task, cfg.init_scale)  # from the global stream, seeded per run
        self.trace: list[dict[str, float]] = []  # the weights every trace_every steps, from step 0
        self.final: dict[str, float] = {}
        self._epoch_losses: list[float] = []

    def on_train_start(self) -> None:
        if not self.history:  # the weights at initialization, as "epoch 0"
            self.history.append({"epoch": 0, "step": 0, "train_loss": math.nan, **self.net.weights(), "seconds": 0.0})
            self.trace.append({"step": 0, **self.net.weights()})

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch_losses = []

    def training_step(self, batch, batch_idx):
        x, target = batch
        _, z = self.net(x)
        loss = task_loss(self.cfg.task, z, target)
        if not self.check_loss(loss):  # divergence is a result: record it and stop stepping
            return None
        self._epoch_losses.append(loss.item())
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.global_step % self.cfg.trace_every == 0:
            self.trace.append({"step": self.global_step, **self.net.weights()})

    def on_train_epoch_end(self) -> None:
        losses = self._epoch_losses
        loss = sum(losses) / len(losses) if losses else math.nan
        self.end_epoch({"step": self.global_step, "train_loss": loss, **self.net.weights()})

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, target = batch
        suffix = "" if dataloader_idx == 0 else "_long"
        hand = hand_set(self.cfg.task, self.cfg.hand_output_weight).to(x.device)
        for name, net in (("", self.net), ("hand_", hand)):
            _, z = net(x)
            self.final[f"{name}test_loss{suffix}"] = float(task_loss(self.cfg.task, z, target))
            if self.cfg.task == "comparing":
                self.final[f"{name}test_accuracy{suffix}"] = accuracy(z, target)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        floor = self.cfg.final_lr_fraction  # cosine from 1 down to this fraction
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_multiplier(step, total, "cosine", floor=floor)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def resume_state(self) -> dict:
        return {"trace": self.trace}

    def load_resume_state(self, state: dict) -> None:
        self.trace = list(state.get("trace", []))

    def summary(self) -> dict[str, float]:
        """Final weights, losses and accuracies; the errors against the hand-set weights in thousandths, and
        the losses also as log10 (a table shows two decimals); the hand-set net's table on the slide's example."""
        w = self.net.weights()
        last = self.history[-1]["train_loss"] if self.history else math.nan
        m = {**w, "train_loss": last, **self.final, "diverged": float(self.diverged), "wall_time": self.train_seconds}
        for key in ("train_loss", "test_loss", "test_loss_long"):
            m[f"log10_{key}"] = math.log10(m[key]) if m[key] > 0 else math.nan  # nan also when the loss is nan
        m["w_self_error_e3"] = 1000 * abs(w["w_self"] - 1)
        if self.cfg.task == "summing":  # the function depends on w_in w_out only: 1 in the hand-set net
            m["gain"] = w["w_in1"] * w["w_out"]
            m["gain_error_e3"] = 1000 * abs(m["gain"] - 1)
        else:  # the decisions depend on w_in2 / w_in1 (-1 by hand) and the sign of the scale w_out w_in1 (> 0)
            m["output_scale"] = w["w_out"] * w["w_in1"]
            m["input_ratio"] = w["w_in2"] / w["w_in1"] if w["w_in1"] != 0 else math.nan
            m["ratio_error_e3"] = 1000 * abs(m["input_ratio"] + 1) if m["output_scale"] > 0 else math.inf
        table = hand_table(self.cfg.task, self.cfg.hand_output_weight)
        m["hand_exact"] = float(table["exact"])
        for t, (h, y) in enumerate(zip(table["hidden"], table["outputs"], strict=True), 1):
            m[f"hand_h{t}"], m[f"hand_y{t}"] = h, y
        return m

    def extras(self) -> dict:
        """The hand-set net's table on the slide's example (inputs, hidden states, outputs), and the weights
        every trace_every training steps."""
        return {"hand_table": hand_table(self.cfg.task, self.cfg.hand_output_weight), "trace": self.trace}
