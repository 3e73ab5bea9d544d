"""Learning to Execute (slides 38-39): LSTMs that read a program and write what it prints.

Two networks (``lightning_modules/nets/program_nets.py``), both trained with teacher forcing on the answer's
characters (the end mark included):

- ``ProgramReader``, the paper's model: ONE stack of LSTMs reads the program one character at a time, then
  the GO mark, then predicts the answer one character at a time, each prediction reading the previous true
  answer character. Character embedding, 2 LSTM layers of 400 units, a linear softmax head.
- ``EncoderDecoder`` (slide 37): an encoder LSTM stack reads the program; its final state (h and c of every
  layer) starts a decoder LSTM stack with separate weights, which reads GO and the answer so far.

Both expose ``read(batch) -> (logits of the first answer character, state)`` and ``step(char, state)`` for
greedy decoding. Every weight starts uniform in [-0.08, 0.08]. The loss is the cross-entropy summed over
the answer characters and divided by the batch size (the original code's scaling, which its SGD learning
rate of 0.5 goes with); the global gradient norm is clipped at 5.

Accuracy, exactly as the paper: the share of answer characters (end mark included) predicted right under
teacher forcing. Also reported, which the paper does not: the share of whole answers right under greedy
decoding (each step reads the model's own previous character, stopping at the end mark), what the model
really computes.

Training ends as in the original code: when the learning rate, multiplied by 0.8 at every stall once the
curriculum is at its target (``datamodules/execute.py`` gives the rule and its source lines), falls below
``stop_lr`` (1e-3 from 0.5: 28 decays), however many steps that takes. ``train.max_epochs`` and
``train.max_minutes`` are only safety caps: the record's ``ended_by_lr_rule`` metric is 1 when the rule ended
the run, 0 when a cap did (``provenance.stopped_by_time`` then says whether it was the time cap).

Deviation from the original code, on purpose: each program is read from a zero state (the original ran one
long stream of programs with the state carried across them and truncated BPTT every 50 characters; the paper
describes programs read one at a time).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from datamodules.execute import Curriculum, ProgramDataConfig, batched
from datamodules.programs import scramble_table
from lightning_modules.base import RecordedModule
from lightning_modules.configs import ExecuteModelConfig, ExecuteOptimConfig
from lightning_modules.nets.program_nets import answer_text, build_execute_net, exact_answers, greedy_decode


# ----------------------------------------------------------------------------- the LightningModule
class ProgramExecutor(RecordedModule):
    """Teacher-forced training on generated programs, an evaluation and a curriculum step every epoch."""

    def __init__(
        self, model: ExecuteModelConfig, optim: ExecuteOptimConfig, data: ProgramDataConfig, curriculum: Curriculum
    ):
        super().__init__()
        self.cfg, self.optim, self.data_cfg, self.curriculum = model, optim, data, curriculum
        self.net = build_execute_net(model)
        # manual: the learning rate decays by the curriculum's stall rule, not by a scheduler, and the step's
        # statistics stay on the device
        self.automatic_optimization = False
        self.final: dict[str, float] = {}
        self.examples: list[dict] = []
        self.steps = 0
        self.train_chars = 0  # characters read (inputs, GO, answers) in training steps
        self.step_seconds = 0.0  # training epochs' wall time, drawing the batches included; evaluations not
        self.reached_target_epoch = 0  # the epoch after which the level first equalled the target
        self.ended_by_lr_rule = False  # the lr fell below stop_lr (else a cap, or a divergence, ended training)
        self._epoch = torch.zeros(len(self._STATS), dtype=torch.float64)  # this epoch's sums of _STATS
        self._epoch_steps = 0

    def _loss(self, batch: dict):
        """Summed cross-entropy over the answer characters, and how many were predicted right, of how many:
        all three as tensors on the model's device (reading them would make the CPU wait for the GPU)."""
        logits, labels = self.net(batch)
        flat = labels.reshape(-1)
        loss_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), flat, reduction="sum")
        mask = flat != -100
        correct = (logits.reshape(-1, logits.shape[-1]).argmax(-1) == flat) & mask
        return loss_sum, correct.sum(), mask.sum()

    # -- training -------------------------------------------------------------------------------
    # A training step never waits for the GPU: its statistics are summed on the device and read once per
    # epoch, so the CPU draws the next batch while the GPU still computes this one. A non-finite gradient
    # norm is noticed every PEEK_EVERY steps and at the epoch's end: the run is then marked diverged.
    PEEK_EVERY = 25
    _STATS = ("loss", "correct", "chars", "norm", "clipped", "read")  # read: characters read (input, GO, answer)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._epoch = torch.zeros(len(self._STATS), dtype=torch.float64, device=self.device)
        self._epoch_steps = 0

    def training_step(self, batch, batch_idx):
        if self.diverged:
            return None
        loss_sum, correct, count = self._loss(batch)
        loss = loss_sum / batch["seq"].shape[0]  # summed over each answer, averaged over the batch
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        limit = self.optim.clip_norm or math.inf
        norm = self.clip_gradient_norm(opt, self.optim.clip_norm)
        opt.step()  # a non-finite norm spoils the weights, but the run is then over (see below)
        read = (batch["seq"] != 0).sum()
        self._epoch += torch.stack([t.double() for t in (loss_sum.detach(), correct, count, norm, norm > limit, read)])
        self._epoch_steps += 1
        self.steps += 1
        if self._epoch_steps % self.PEEK_EVERY == 0:  # the one wait for the GPU in PEEK_EVERY steps
            self._check_finite()
            self.log("train/loss_step", float(loss), prog_bar=True, logger=False)
        return None

    def _check_finite(self) -> bool:
        """A non-finite gradient norm (or an exploded loss) this epoch: the run is marked diverged and stops."""
        stats = dict(zip(self._STATS, self._epoch.tolist(), strict=True))
        if not self.diverged and self.check_loss(stats["norm"], limit=math.inf):
            self.check_loss(stats["loss"] / max(1.0, stats["chars"]))  # the mean loss per answer character
        return not self.diverged

    @torch.no_grad()
    def evaluate(self, examples, greedy: bool = True) -> dict[str, float]:
        """Teacher-forced character accuracy and loss and, optionally, greedy whole-answer accuracy."""
        was_training = self.net.training
        self.net.eval()
        loss = correct = count = exact = 0
        for batch in batched(self.data_cfg, examples):
            batch = {k: v.to(self.device) for k, v in batch.items()}
            s, c, n = self._loss(batch)
            loss, correct, count = loss + float(s), correct + int(c), count + int(n)
            if greedy:
                exact += int(exact_answers(greedy_decode(self.net, batch, batch["tgt"].shape[1]), batch["tgt"]).sum())
        self.net.train(was_training)
        out = {"acc": correct / count, "loss": loss / count}
        if greedy:
            out["exact"] = exact / len(examples)
        return out

    def on_train_epoch_end(self) -> None:
        # Runs before the checkpoint callback: the history row and the curriculum's new level are saved.
        if self.diverged or not self._epoch_steps:
            return
        finite = self._check_finite()  # waits for the epoch's last step: the time below is the GPU's too
        self.step_seconds += time.perf_counter() - self._epoch_start
        if not finite:
            return
        # every rank's sums (DDP), so that all ranks take the same curriculum step
        e = dict(zip(self._STATS, self.trainer.strategy.reduce(self._epoch, reduce_op="sum").tolist(), strict=True))
        steps = self._epoch_steps * self.trainer.world_size  # every rank takes the same steps
        self.train_chars += int(e["read"])
        dm = self.trainer.datamodule
        level = self.curriculum.level
        target = self.evaluate(dm.examples("val"))  # the same programs on every rank
        # the change test reads the current level's validation programs: at the target, the same ones
        current = target if level == self.curriculum.target else self.evaluate(dm.examples("val", level), False)
        train_acc = e["correct"] / e["chars"]
        opt = self.optimizers()
        lr = opt.param_groups[0]["lr"]
        action = self.curriculum.update(current["acc"], train_acc)
        if action == "decay":
            for group in opt.param_groups:
                group["lr"] = lr * self.optim.decay
            if group["lr"] < self.optim.stop_lr:
                self.ended_by_lr_rule = True
                self.trainer.should_stop = True
        if self.curriculum.level == self.curriculum.target and not self.reached_target_epoch:
            self.reached_target_epoch = self.current_epoch + 1
        row = {
            "steps": self.steps,
            "train_loss": e["loss"] / e["chars"],
            "train_acc": train_acc,
            "level_length": level[0],
            "level_nesting": level[1],
            "level_acc": current["acc"],
            "val_acc": target["acc"],  # teacher forcing, at the target (the validation split)
            "val_exact": target["exact"],  # greedy whole answers, at the target
            "val_loss": target["loss"],
            "lr": lr,
            "grad_norm": e["norm"] / steps,  # the same on every rank: gradients are averaged before clipping
            "clipped_fraction": e["clipped"] / steps,
            "action": action,
        }
        self.log("val/acc", target["acc"], prog_bar=True)
        self.end_epoch(row)

    # -- the final test (the test split at the target) ------------------------------------------
    EXAMPLES = 20  # test programs whose greedy answers the record keeps: the same programs in every run of a target

    def on_test_epoch_start(self) -> None:
        self._test = {"correct": 0, "chars": 0, "exact": 0, "answers": 0, "loss": 0.0}
        self.examples = []

    def test_step(self, batch, batch_idx):
        s, c, n = self._loss(batch)
        pred = greedy_decode(self.net, batch, batch["tgt"].shape[1])
        right = exact_answers(pred, batch["tgt"])
        t = self._test
        t["loss"] += float(s)
        t["correct"] += int(c)
        t["chars"] += int(n)
        t["exact"] += int(right.sum())
        t["answers"] += len(right)
        if batch_idx == 0:  # the first test programs with the model's greedy answers (the slide-39 table)
            shown = self.trainer.datamodule.examples("test")[: min(self.EXAMPLES, len(right))]
            if self.data_cfg.scramble:  # the answers in plain characters, as the targets are shown
                pred = torch.as_tensor(np.argsort(scramble_table(self.data_cfg.scramble)), device=pred.device)[pred]
            for ex, p, ok in zip(shown, pred, right, strict=False):  # the batch's first rows are these
                self.examples.append(
                    {"input": ex.input, "target": ex.target, "greedy": answer_text(p), "right": bool(ok)}
                )

    def on_test_epoch_end(self) -> None:
        t = self._test
        self.final = {
            "test_acc": t["correct"] / t["chars"],
            "test_exact": t["exact"] / t["answers"],
            "test_loss": t["loss"] / t["chars"],
        }

    def configure_optimizers(self):
        if self.optim.optimizer == "adam":
            return torch.optim.Adam(self.net.parameters(), lr=self.optim.lr)
        return torch.optim.SGD(self.net.parameters(), lr=self.optim.lr)

    # -- resume state ---------------------------------------------------------------------------
    _SAVED = ("steps", "train_chars", "step_seconds", "reached_target_epoch", "ended_by_lr_rule")

    def resume_state(self) -> dict:
        return {"curriculum": self.curriculum.state_dict(), **{k: getattr(self, k) for k in self._SAVED}}

    def load_resume_state(self, state: dict) -> None:
        if "curriculum" in state:
            self.curriculum.load_state_dict(state["curriculum"])
        for k in self._SAVED:
            if k in state:
                setattr(self, k, state[k])

    # -- the run record -------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        nan = math.nan
        last = self.history[-1] if self.history else {}
        final = {} if self.diverged else self.final
        return {
            "test_acc": final.get("test_acc", nan),  # the paper's metric, on the test split at the target
            "test_exact": final.get("test_exact", nan),
            "test_loss": final.get("test_loss", nan),
            "best_val_acc": max((r["val_acc"] for r in self.history), default=nan),
            "train_acc": last.get("train_acc", nan),
            "level_length": float(self.curriculum.level[0]),
            "level_nesting": float(self.curriculum.level[1]),
            "reached_target_epoch": float(self.reached_target_epoch),
            "final_lr": last.get("lr", nan),
            "decays": float(sum(r["action"] == "decay" for r in self.history)),  # the rule's end: 28 from 0.5 to 1e-3
            "ended_by_lr_rule": float(self.ended_by_lr_rule),  # 0: a cap (max_epochs, max_minutes) ended training
            "chars_per_second": self.train_chars / self.step_seconds if self.step_seconds else nan,
            "params_k": sum(p.numel() for p in self.net.parameters()) / 1e3,
            "steps": float(self.steps),
            "epochs": float(len(self.history)),
            "wall_time": self.train_seconds,
        }

    def extras(self) -> dict:
        return {"examples": self.examples}
