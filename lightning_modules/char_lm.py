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
from torchmetrics import MeanMetric, Metric

from lightning_modules.base import RecordedModule
from lightning_modules.configs import (
    LINE_POSITION_EDGES,
    LINE_POSITION_LABELS,
    LINE_POSITION_METRICS,
    LONG_RANGE_METRICS,
    PROBE_TARGETS,
    RECURRENT_KINDS,
    CharModelConfig,
    LMOptimConfig,
    SampleConfig,
)

RECURRENT = dict(zip(RECURRENT_KINDS, (nn.RNN, nn.LSTM, nn.GRU), strict=True))

# Positions 0-2 are the line start: a context-3 window still holds the newline that began the line, so even
# the MLP knows the position and the whole line so far; from position 3 on it sees neither.
LINE_START = 3


# ----------------------------------------------------------------------------- networks
class RecurrentLM(nn.Module):
    def __init__(self, kind: str, vocab_size: int, embed: int, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        extra = {"nonlinearity": "tanh"} if kind == "rnn" else {}
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = RECURRENT[kind](embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0,
                                   **extra)  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state


class ContextMLP(nn.Module):
    """P(next | the last ``context`` characters). Before the start of a stream the context is filled with
    an extra padding id, so the model never sees more than ``context`` characters of the past."""

    def __init__(self, vocab_size: int, context: int, embed: int, hidden: int):
        super().__init__()
        self.context, self.pad = context, vocab_size
        self.embed = nn.Embedding(vocab_size + 1, embed)
        self.hidden = nn.Linear(context * embed, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        if state is None:
            state = torch.full((x.shape[0], self.context - 1), self.pad, dtype=x.dtype, device=x.device)
        seen = torch.cat([state, x], dim=1)  # [B, context - 1 + T]
        windows = seen.unfold(1, self.context, 1)  # [B, T, context]: the characters up to and including x_t
        h = torch.tanh(self.hidden(self.embed(windows).flatten(2)))
        return self.head(h), seen[:, x.shape[1] :]


class BigramLM(nn.Module):
    """log P(next | current) = log (count(current, next) + 1) / (count(current) + V): add-one smoothing.
    The table is a frozen parameter (it is counted, not trained); the logits are the log-probabilities."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.log_probs = nn.Parameter(torch.full((vocab_size, vocab_size), -math.log(vocab_size)), requires_grad=False)

    @torch.no_grad()
    def fit(self, tokens: torch.Tensor) -> None:
        v = self.log_probs.shape[0]
        counts = torch.ones(v, v, dtype=torch.float64)
        counts.index_put_((tokens[:-1].cpu(), tokens[1:].cpu()), torch.ones(len(tokens) - 1, dtype=torch.float64),
                          accumulate=True)  # fmt: skip
        self.log_probs.copy_((counts / counts.sum(dim=1, keepdim=True)).log().to(self.log_probs))

    def forward(self, x: torch.Tensor, state=None):
        return self.log_probs[x], None


def build_char_net(cfg: CharModelConfig, vocab_size: int) -> nn.Module:
    if cfg.kind in RECURRENT:
        hidden = getattr(cfg, f"{cfg.kind}_hidden")
        return RecurrentLM(cfg.kind, vocab_size, cfg.embed, hidden, cfg.layers, cfg.dropout)
    if cfg.kind == "mlp":
        return ContextMLP(vocab_size, cfg.context, cfg.embed, cfg.mlp_hidden)
    return BigramLM(vocab_size)


def detach_state(state):
    """Cut the graph between chunks (truncated BPTT): the values carry over, the gradients do not."""
    if state is None:
        return None
    if isinstance(state, tuple):  # the LSTM's (h, c)
        return tuple(s.detach() for s in state)
    return state.detach()


def bits_per_char(nats: float) -> float:
    """A loss in nats per character in bits per character: divide by ln 2."""
    return nats / math.log(2)


# ----------------------------------------------------------------------------- long-range structure
def line_positions(x: torch.Tensor, newline: int, last: torch.Tensor | None = None):
    """The position within its line of each target of a chunk: target ``y[:, t]`` is the character after
    input ``x[:, t]``, so its position is the number of inputs since the last newline among ``x[:, :t+1]``
    (0 when ``x[:, t]`` is a newline). ``last`` holds the positions of the previous chunk's last targets of
    the same streams (None at a reset). -1 where the stream has shown no newline yet: that line began before
    the stream, which every model reads from a zero state, so no model can know the position there.
    Returns the positions [B, T] and the ``last`` to carry into the next chunk."""
    b, t = x.shape
    steps = torch.arange(t, device=x.device).expand(b, t)
    newline_at = torch.where(x == newline, steps, -1).cummax(dim=1).values  # last newline input at or before t
    if last is None:
        last = torch.full((b,), -1, dtype=torch.long, device=x.device)
    continued = torch.where(last[:, None] >= 0, last[:, None] + 1 + steps, -1)  # no newline yet in this chunk
    positions = torch.where(newline_at >= 0, steps - newline_at, continued)
    return positions, positions[:, -1]


def line_position_buckets(positions: torch.Tensor) -> torch.Tensor:
    """Bucket index of each position (see LINE_POSITION_EDGES); unknown positions (-1) get the extra
    index len(LINE_POSITION_EDGES)."""
    edges = torch.tensor(LINE_POSITION_EDGES[1:], device=positions.device)
    buckets = torch.bucketize(positions, edges, right=True)  # edges[i-1] <= position < edges[i]
    return torch.where(positions >= 0, buckets, len(LINE_POSITION_EDGES))


class GroupMeans(Metric):
    """Sums and counts of per-character values by group (groups < 0 are left out), summed over ranks."""

    full_state_update = False

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups
        self.add_state("sums", torch.zeros(groups, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor, groups: torch.Tensor) -> None:
        keep = groups >= 0
        chosen = groups[keep]
        self.sums.index_add_(0, chosen, values[keep].to(self.sums.dtype))
        self.counts += torch.bincount(chosen, minlength=self.groups).to(self.counts.dtype)

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sums, self.counts


class MeanWithError(Metric):
    """Mean of a sample of values and the standard error of that mean, summed over ranks."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        for name in ("total", "squares", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        values = values.detach().to(torch.float64)
        self.total += values.sum()
        self.squares += values.square().sum()
        self.count += values.numel()

    def compute(self) -> tuple[float, float]:
        """(mean, standard error); nan for no values, and a nan error for one."""
        n = float(self.count)
        if n == 0:
            return math.nan, math.nan
        mean = float(self.total) / n
        if n == 1:
            return mean, math.nan
        variance = max(0.0, (float(self.squares) - n * mean**2) / (n - 1))
        return mean, math.sqrt(variance / n)


def pooled_mean(sums: torch.Tensor, counts: torch.Tensor, groups: slice | int) -> float:
    """Mean over the characters of the chosen groups together (nan when they hold none)."""
    n = float(counts[groups].sum())
    return float(sums[groups].sum()) / n if n else math.nan


def long_range_metrics(by_position: tuple, by_target: tuple) -> dict[str, float]:
    """The LONG_RANGE_METRICS from the (sums, counts) of the losses by line-position bucket (the last group:
    unknown position, left out) and by probe target."""
    sums, counts = by_position
    out = {name: pooled_mean(sums, counts, i) for i, name in enumerate(LINE_POSITION_METRICS)}
    out["line_start_loss"] = pooled_mean(sums, counts, slice(0, LINE_START))
    out["line_rest_loss"] = pooled_mean(sums, counts, slice(LINE_START, len(LINE_POSITION_EDGES)))
    sums, counts = by_target
    out.update({name: pooled_mean(sums, counts, i) for i, name in enumerate(PROBE_TARGETS)})
    return out


# ----------------------------------------------------------------------------- sampling
def prompt_ids(prompt: str, vocab: str) -> list[int]:
    """The prompt's character ids; characters outside the vocabulary are dropped (newline if none remain)."""
    ids = [vocab.index(c) for c in prompt if c in vocab]
    return ids or [vocab.index("\n") if "\n" in vocab else 0]


@torch.no_grad()
def generate(net: nn.Module, prompt: list[int], length: int, temperature: float, seed: int) -> list[int]:
    """Feed the prompt, then sample ``length`` characters one at a time, each fed back as the next input.
    Temperature 0 takes the most likely character; the draws come from a generator seeded with ``seed``,
    so the same model, prompt and seed give the same text."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    logits, state = net(torch.tensor([prompt], device=device), None)
    out: list[int] = []
    for _ in range(length):
        last = logits[0, -1].float().cpu()
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1, generator=g))
        out.append(nxt)
        logits, state = net(torch.tensor([[nxt]], device=device), state)
    net.train(was_training)
    return out


# ----------------------------------------------------------------------------- the LightningModule
class CharLanguageModel(RecordedModule):
    """Next-character cross-entropy with teacher forcing and truncated BPTT over stream chunks."""

    def __init__(self, model: CharModelConfig, optim: LMOptimConfig, sample: SampleConfig, vocab: str):
        super().__init__()
        self.cfg, self.optim, self.sample_cfg, self.vocab = model, optim, sample, vocab
        self.net = build_char_net(model, len(vocab))
        self.automatic_optimization = False  # one clipped step per chunk, done by hand below
        self.metrics = nn.ModuleDict({f"{split}_loss": MeanMetric() for split in ("train", "val", "holdout", "test")})
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

    def configure_optimizers(self):
        if not self.trainable:  # the bigram table is counted, not trained
            return None
        opt = torch.optim.AdamW(
            self.trainable, lr=self.optim.lr, betas=(0.9, 0.99), weight_decay=self.optim.weight_decay
        )
        total = max(1, self.trainer.estimated_stepping_batches)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(self.optim, step, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- resume state ---------------------------------------------------------------------------
    _SAVED = ("step_seconds", "train_tokens", "steps", "clipped_steps", "best_holdout_loss", "best_holdout_epoch",
              "best_weights")  # fmt: skip

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
        }

    def extras(self) -> dict:
        return {"sample": self.sample, "long_range_counts": self.long_range_counts}


def reported_net_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network weights a run reports, from its checkpoint: those of the best held-out epoch, else (no
    text held out) the last epoch's."""
    best = checkpoint.get("repro", {}).get("best_weights")
    if best is not None:
        return best
    return {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}


def lr_factor(cfg: LMOptimConfig, step: int, total: int) -> float:
    """Multiplier of the base learning rate: linear warm-up, then constant or cosine down to 1/10."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    t = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
