"""Character-level language models (slides 28-35) and the LightningModule that trains them.

Every network maps a chunk of character ids ``x [B, T]`` and a carried ``state`` to next-character
logits ``[B, T, V]`` and the state to carry into the next chunk of the same streams:
- ``RecurrentLM``: embedding -> vanilla RNN (tanh) / LSTM / GRU -> linear head; the state is the hidden
  state (and, for the LSTM, the memory cell).
- ``ContextMLP``: slide 28's memoryless model: the next character from the last ``context`` characters
  only (an MLP on their concatenated embeddings); its state is just those last characters.
- ``BigramLM``: log P(next | current) from counts over the training text with add-one smoothing.

Training is teacher-forced truncated backpropagation through time: the loss is the cross-entropy of
each next character given the true previous ones; the state is carried from chunk to chunk but
detached, so gradients flow back at most T steps. Gradients are clipped by their global norm.
Optimization is manual (one Adam step per chunk) so that the module sees the gradient norm of every
step, records how often clipping engaged, and records a divergence (non-finite loss or gradient)
instead of crashing.

Every epoch the validation text and, when the data module holds some out, the end of the training text
are scored as streams with the state carried (``val_loss``, ``holdout_loss``). The weights of the epoch
with the lowest held-out loss are kept (in the checkpoint too) and are the ones the final evaluation
scores and samples from: the training length is chosen on training text the model never saw, not on the
validation text.

The final evaluation (``test_step``, over the validation text) reads it twice: as streams with the
state carried (``val_loss``, what the suite has always reported), and as nanoGPT's ``estimate_loss``
does, random windows each from a zero state (``val_loss_windows``, with the standard error of its mean
over windows): the protocol of nanoGPT's published 1.4697. The streams also measure long-range
structure: the loss of each character grouped by its position within its line (``line_positions``), and
the loss on two characters whose prediction needs more than the last few characters: the newline that
ends a line (where a line ends depends on its length so far) and the colon (mostly the end of a
speaker's name).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightning_modules.base import DeviceMean, RecordedModule
from lightning_modules.char_metrics import (
    GroupMeans,
    MeanWithError,
    known_word_share,
    line_position_buckets,
    line_positions,
    long_range_metrics,
    words_of,
)
from lightning_modules.configs import (
    LINE_POSITION_EDGES,
    LINE_POSITION_LABELS,
    LONG_RANGE_METRICS,
    PROBE_TARGETS,
    CharModelConfig,
    LMOptimConfig,
    SampleConfig,
)
from lightning_modules.nets.char_nets import BigramLM, build_char_net, detach_state, generate, prompt_ids
from lightning_modules.optim import lr_multiplier


def bits_per_char(nats: float) -> float:
    """A loss in nats per character in bits per character: divide by ln 2."""
    return nats / math.log(2)


# ----------------------------------------------------------------------------- the LightningModule
class CharLanguageModel(RecordedModule):
    """Next-character cross-entropy with teacher forcing and truncated BPTT over stream chunks."""

    def __init__(self, model: CharModelConfig, optim: LMOptimConfig, sample: SampleConfig, vocab: str):
        super().__init__()
        self.cfg, self.optim, self.sample_cfg, self.vocab = model, optim, sample, vocab
        self.net = build_char_net(model, len(vocab))
        self.automatic_optimization = False  # one clipped step per chunk, done by hand below
        self.metrics = nn.ModuleDict({f"{split}_loss": DeviceMean() for split in ("train", "val", "holdout", "test")})
        self.window_losses = MeanWithError()  # the mean loss of each random validation window
        # the final evaluation's losses by line-position bucket (+1 group: position unknown) and by probe target
        self.loss_by_line_position = GroupMeans(len(LINE_POSITION_EDGES) + 1)
        self.loss_by_target = GroupMeans(len(PROBE_TARGETS))
        self._newline = vocab.find("\n")  # -1 when the text has none: every position unknown
        self._probe_ids = [vocab.find(c) for c in PROBE_TARGETS.values()]
        self.long_range_counts: dict = {}  # characters behind each long-range metric, for the run record
        # the epoch with the lowest held-out loss so far (1-based) and a copy of its weights; saved in checkpoints
        self.best_holdout_loss = math.inf
        self.best_holdout_epoch = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.final: dict[str, float] = {}
        self.sample: dict = {}
        self.words_sample: dict = {}  # slide 35's measured sample (``sample.words_length`` > 0)
        # totals over the whole run (kept across resumes)
        self.step_seconds = 0.0  # time inside training steps only: the tokens/second denominator
        self.train_tokens = 0
        self.steps = 0
        self.clipped_steps = 0
        self._state = None  # carried across the chunks of the training streams
        self._eval_state = None
        self._line_position = None  # the positions of the last targets, carried like the state
        self._epoch_norms: list[float] = []
        self._val: dict[str, float] = {}

    def forward(self, x: torch.Tensor, state=None):
        return self.net(x, state)

    def _loss(self, x, y, state):
        logits, state = self.net(x, state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1)), state

    @property
    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    # -- training -------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        super().on_fit_start()
        if isinstance(self.net, BigramLM):  # counted from the training text; no gradient steps
            self.net.fit(self.trainer.datamodule.load().train.to(self.device))

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self._state = None
        self._epoch_norms = []

    def training_step(self, batch, batch_idx):
        x, y, reset = batch
        if self.diverged:  # nothing more to learn; the trainer stops at the end of this epoch
            return None
        start = time.perf_counter()
        loss, state = self._loss(x, y, None if reset else self._state)
        self._state = detach_state(state)
        # a non-finite or exploded loss or gradient: the step is skipped and the run marked diverged, a result to
        # record, not a crash (manual optimization, so that the parameters stay those of the last finite step)
        finite = self.check_loss(loss, force=True)
        if finite and self.trainable:
            opt = self.optimizers()
            opt.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            limit = self.optim.clip_norm or math.inf
            norm = float(self.clip_gradient_norm(opt, self.optim.clip_norm))
            finite = self.check_loss(norm, limit=math.inf)
            if finite:
                opt.step()
                self.lr_schedulers().step()
                self._epoch_norms.append(norm)
                self.clipped_steps += int(norm > limit)
        self.step_seconds += time.perf_counter() - start
        if not finite:
            return None
        self.steps += 1
        self.train_tokens += x.numel() * self.trainer.world_size
        self.metrics["train_loss"].update(loss.detach(), weight=x.numel())
        self.log("train/loss_step", loss.detach(), prog_bar=True, logger=False)
        return None

    def _evaluate(self, split: str, batch) -> torch.Tensor:
        """Score one chunk of the evaluation streams, the state carried; returns the per-character losses."""
        x, y, reset = batch
        logits, self._eval_state = self.net(x, None if reset else self._eval_state)
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), reduction="none")
        self.metrics[f"{split}_loss"].update(losses.mean(), weight=x.numel())
        return losses.view_as(y)

    def _compute(self, split: str) -> float:
        metric = self.metrics[f"{split}_loss"]
        value = float(metric.compute()) if metric.update_count else math.nan
        metric.reset()
        return value

    def on_validation_epoch_start(self) -> None:
        self._eval_state = None

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Loader 0: the validation text; loader 1: the held-out training text (each starts with a reset)."""
        self._evaluate("holdout" if dataloader_idx else "val", batch)

    def on_validation_epoch_end(self) -> None:
        loss = self._compute("val")
        has_holdout = bool(self.metrics["holdout_loss"].update_count)
        holdout = self._compute("holdout")
        if self.trainer.sanity_checking:
            return
        self._val = {"val_loss": loss, "val_bpc": bits_per_char(loss)}
        self.log("val/loss", loss, prog_bar=True, sync_dist=False)
        if has_holdout:
            self._val["holdout_loss"] = holdout
            self.log("holdout/loss", holdout, prog_bar=True, sync_dist=False)
            if holdout < self.best_holdout_loss:  # nan (a diverged model) never is
                self.best_holdout_loss, self.best_holdout_epoch = holdout, self.current_epoch + 1
                self.best_weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def on_train_epoch_end(self) -> None:
        # Runs after this epoch's validation: one complete history row, then the checkpoint.
        norms = self._epoch_norms
        row = {
            "train_loss": self._compute("train"),
            **self._val,
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainable else 0.0,
            "grad_norm": sum(norms) / len(norms) if norms else math.nan,
            "clipped_fraction": sum(n > (self.optim.clip_norm or math.inf) for n in norms) / len(norms)
            if norms
            else 0.0,
            "tokens": self.train_tokens,
        }
        self.end_epoch(row)

    # -- the final evaluation (the validation text again) and the sample --------------------------
    def on_test_start(self) -> None:
        """The reported weights: those of the epoch with the lowest held-out loss (the last epoch's when
        nothing is held out)."""
        if self.best_weights is not None:
            self.net.load_state_dict(self.best_weights)

    def on_test_epoch_start(self) -> None:
        self._eval_state = None
        self._line_position = None

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Loader 0: the validation text as streams, the state carried; loader 1: random windows of it,
        each from a zero state, every position counted."""
        x, y, reset = batch
        if dataloader_idx:
            logits, _ = self.net(x, None)
            losses = F.cross_entropy(logits.transpose(1, 2).float(), y, reduction="none")  # [windows, L]
            self.window_losses.update(losses.mean(dim=1))
            return
        losses = self._evaluate("test", batch)
        positions, self._line_position = line_positions(x, self._newline, None if reset else self._line_position)
        self.loss_by_line_position.update(losses, line_position_buckets(positions))
        probe = torch.full_like(y, -1)  # the index of the target in PROBE_TARGETS, -1 for other characters
        for i, char_id in enumerate(self._probe_ids):
            probe = torch.where(y == char_id, i, probe)
        self.loss_by_target.update(losses, probe)

    def on_test_epoch_end(self) -> None:
        by_position = [t.cpu() for t in self.loss_by_line_position.compute()]
        by_target = [t.cpu() for t in self.loss_by_target.compute()]
        self.loss_by_line_position.reset()
        self.loss_by_target.reset()
        windows, windows_sem = self.window_losses.compute()
        self.window_losses.reset()
        self.final = {
            "val_loss": self._compute("test"),
            "val_loss_windows": windows,
            "val_loss_windows_sem": windows_sem,
            **long_range_metrics(by_position, by_target),
        }
        self.long_range_counts = {
            "line_position_buckets": list(LINE_POSITION_LABELS),
            "line_position_counts": [int(n) for n in by_position[1][:-1]],
            "line_position_unknown": int(by_position[1][-1]),  # before each stream's first newline
            **{
                f"{name.removesuffix('_loss')}_targets": int(n)
                for name, n in zip(PROBE_TARGETS, by_target[1], strict=True)
            },
        }
        s = self.sample_cfg
        text = ""
        if not self.diverged:
            ids = generate(self.net, prompt_ids(s.prompt, self.vocab), s.length, s.temperature, s.seed)
            text = "".join(self.vocab[i] for i in ids)
        self.sample = {"prompt": s.prompt, "temperature": s.temperature, "seed": s.seed, "text": text}
        unmeasured = {"length": s.words_length, "text": "", "known_share": math.nan, "words": 0}  # diverged
        self.words_sample = {} if not s.words_length else unmeasured if self.diverged else self._words_sample()

    def _words_sample(self) -> dict:
        """Slide 35's "Shakespeare-like", measured: ``words_length`` characters generated as the sample is (same
        prompt, temperature and seed), and the share of their words that are words of the training text."""
        s, text = self.sample_cfg, self.trainer.datamodule.load()
        known = set(words_of("".join(self.vocab[i] for i in text.train.tolist())))
        ids = generate(self.net, prompt_ids(s.prompt, self.vocab), s.words_length, s.temperature, s.seed)
        generated = "".join(self.vocab[i] for i in ids)
        share, words = known_word_share(generated, known)
        return {"length": s.words_length, "text": generated, "known_share": share, "words": words}

    def configure_optimizers(self):
        if not self.trainable:  # the bigram table is counted, not trained
            return None
        opt = torch.optim.AdamW(
            self.trainable, lr=self.optim.lr, betas=(0.9, 0.99), weight_decay=self.optim.weight_decay
        )
        total = max(1, self.trainer.estimated_stepping_batches)
        o = self.optim  # warm-up, then constant or cosine down to 1/10
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_multiplier(step, total, o.schedule, o.warmup_steps, floor=0.1)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- resume state ---------------------------------------------------------------------------
    _SAVED = (
        "step_seconds",
        "train_tokens",
        "steps",
        "clipped_steps",
        "best_holdout_loss",
        "best_holdout_epoch",
        "best_weights",
    )

    def resume_state(self) -> dict:
        return {"vocab": self.vocab, **{k: getattr(self, k) for k in self._SAVED}}

    def load_resume_state(self, state: dict) -> None:
        for k in self._SAVED:
            if k in state:
                setattr(self, k, state[k])

    # -- the run record -------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        val = [row["val_loss"] for row in self.history if "val_loss" in row]
        nan = math.nan

        def final(metric: str) -> float:  # a diverged run measures nothing
            return nan if self.diverged else self.final.get(metric, nan)

        loss = final("val_loss")
        params = sum(p.numel() for p in self.net.parameters())
        speed = self.train_tokens / self.step_seconds if self.step_seconds else nan  # characters per second
        chosen = self.best_weights is not None
        return {
            # nats per character of the reported weights (the best held-out epoch's, else the last epoch's):
            # the (scored) validation text read as streams with the state carried ...
            "val_loss": loss,
            "val_bpc": bits_per_char(loss),
            # ... and as random windows, each from a zero state (nanoGPT's protocol), with its standard error
            "val_loss_windows": final("val_loss_windows"),
            "val_loss_windows_sem": final("val_loss_windows_sem"),
            "holdout_loss": self.best_holdout_loss if chosen else nan,  # at the chosen epoch
            "best_holdout_epoch": float(self.best_holdout_epoch) if chosen else nan,
            # long-range structure, the same final evaluation: losses by line position and on "\n" and ":"
            **{k: final(k) for k in LONG_RANGE_METRICS},
            "best_val_loss": min(val) if val else nan,
            "train_loss": self.history[-1]["train_loss"] if self.history else nan,
            "tokens_per_second": speed,
            "kchars_per_second": speed / 1e3,
            "params": float(params),
            "params_k": params / 1e3,
            "clipped_fraction": self.clipped_steps / self.steps if self.steps else 0.0,
            "steps": float(self.steps),
            "epochs": float(len(self.history)),
            "wall_time": self.train_seconds,
            # slide 35: the share of the measured sample's words found in the training text (profiles that set
            # sample.words_length)
            **(
                {"sample_known_words": self.words_sample["known_share"], "sample_words": self.words_sample["words"]}
                if self.words_sample
                else {}
            ),
        }

    def extras(self) -> dict:
        extra = {"sample": self.sample, "long_range_counts": self.long_range_counts}
        return extra | ({"words_sample": self.words_sample} if self.words_sample else {})


def reported_net_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network weights a run reports, from its checkpoint: those of the best held-out epoch, else (no
    text held out) the last epoch's."""
    best = checkpoint.get("repro", {}).get("best_weights")
    if best is not None:
        return best
    return {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}


def continue_text(
    model: CharModelConfig, checkpoint: dict, prompt: str, length: int, temperature: float, seed: int
) -> str:
    """``prompt`` and ``length`` characters generated by the net a checkpoint reports (see reported_net_weights)."""
    from base.errors import ReproError

    if length < 0 or temperature < 0:
        raise ReproError("--length and --temperature must be >= 0")
    vocab = checkpoint["repro"]["vocab"]
    net = build_char_net(model, len(vocab))
    net.load_state_dict(reported_net_weights(checkpoint))
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ReproError(f"the prompt has characters outside the model's vocabulary: {''.join(unknown)!r}")
    ids = [vocab.index(c) for c in prompt] or [vocab.index("\n") if "\n" in vocab else 0]
    return prompt + "".join(vocab[i] for i in generate(net, ids, length, temperature, seed))
