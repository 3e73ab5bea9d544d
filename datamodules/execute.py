"""Learning to Execute (Zaremba & Sutskever 2014): batches of freshly generated programs, and the curricula.

Every training batch is generated on the fly from ``datamodules/programs.py`` (the training split of its
hash split), so no example is seen twice except by chance. Epoch e of a run with seed s draws from
``random.Random(s * 1_000_003 + e)``: a run is deterministic, and one resumed from a checkpoint at an
epoch boundary sees exactly the examples an uninterrupted run would.

Each example's difficulty (length, nesting) comes from the curriculum (the paper's section 4, the
original code's ``utils/strategies.lua`` and ``main.lua``):

- ``baseline``: always the target difficulty;
- ``naive``: the current level, which starts at length 1, nesting 1 and is raised one step at a time;
- ``mix``: length and nesting each uniform in [1, target], drawn per example;
- ``combined``: per example, mix with probability ``mix_share`` (the original code: 1/5), else naive.

The level schedule and the end of training are the original code's (``main.lua`` at 04a1659, lines 261-303;
``make_harder`` in ``utils/strategies.lua``, lines 17-31). One epoch here is one evaluation window of
``steps_per_epoch`` steps: the original evaluates every ``ceil(epoch_size / 2)`` = 100 steps (line 271; its
"epoch" is one pass over a 10,001-character stream per batch column, 200 steps of 50 characters). After each
window:

- the *change test* (lines 285-287) passes when the teacher-forced accuracy on validation programs of the
  *current* level exceeds 95% (``advance_accuracy``), or when the training accuracy is **lower** than the one
  recorded ``patience`` = 5 evaluations earlier (``train_accs[#train_accs - 4] > state_train.acc``, with at
  least 5 recorded: the current value is appended only afterwards, line 298);
- on a pass, ``make_harder`` raises the level (length + 1; at the target length, back to length 1 and
  nesting + 1) and, once the level is the target, the learning rate is multiplied by 0.8 instead (lines
  288-290); training ends when it falls below the stop value (lines 291-293: 1e-3 from 0.5, 28 decays);
- on a pass the recorded accuracies are cleared (line 296), and the current one starts the new record;
  so the next stall test comes 5 windows after a change, against the accuracy of the window that made it.

Two differences, both deliberate. The training accuracy of a window is the mean over its own steps (the
original's accumulator runs from the start of its 200-step data pass, so it records 10- and 110-step means
by turns). And a plateau at exactly 100% is a stall too (``stall_rule="lower"``): a model that memorized a
tiny level (100% on the training third of the 81 one-digit additions, about half right on the unseen
validation third) would otherwise never leave it, where the original's noisy streamed estimate would sooner or
later dip. ``stall_rule="not-higher"`` is this suite's earlier test (no higher than 5 evaluations back), kept
for the profiles whose results were made with it. As in the original, the level advances under every
curriculum (under baseline and mix it only chooses the validation programs, and so delays the decay).

Batches are dictionaries of tensors, usable by both models of ``lightning_modules/execute.py``:
``src``/``src_len`` (the input characters, right-padded with 0), ``tgt``/``tgt_len`` (the answer's
characters, the end mark included) and, for the single LSTM that reads then writes, ``seq`` (input, the
GO mark, answer) with ``labels``: the next character where it is an answer character, -100 elsewhere.
"""

from __future__ import annotations

import hashlib
import inspect
import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from datamodules import programs
from datamodules.base import RecordedDataModule
from datamodules.batches import StreamBatches, epoch_of
from datamodules.configs import ProgramDataConfig
from datamodules.programs import GO, SPLITS, Example, draw, encode, encode_many, scramble_table, transform_input

TRAIN_STREAM = 7  # the training programs' stream (stream ids apart from the other data modules')


class Curriculum:
    """Which (length, nesting) each training example gets, and the level's progress (see the docstring)."""

    def __init__(self, cfg: ProgramDataConfig):
        self.cfg = cfg
        self.target = (cfg.length, cfg.target_nesting)
        self.level = (1, 1)  # the naive curriculum's current (length, nesting)
        self.train_accs: list[float] = []  # training accuracies since the last change

    def difficulty(self, rng: random.Random) -> tuple[int, int]:
        kind = self.cfg.curriculum
        if kind == "combined":
            kind = "mix" if rng.random() < self.cfg.mix_share else "naive"
        if kind == "baseline":
            return self.target
        if kind == "naive":
            return self.level
        return rng.randint(1, self.target[0]), rng.randint(1, self.target[1])

    def update(self, val_acc: float, train_acc: float) -> str:
        """After an evaluation: 'harder' (level raised), 'decay' (at the target: lower the lr) or ''."""
        p = self.cfg.patience
        stalled = False
        if len(self.train_accs) >= p:
            before = self.train_accs[-p]
            if self.cfg.stall_rule == "lower":
                # the original's test; a plateau at exactly 100% (a memorized level) is a stall too
                stalled = before > train_acc or before == train_acc == 1.0
            else:
                stalled = before >= train_acc
        action = ""
        if val_acc > self.cfg.advance_accuracy or stalled:
            action = "harder" if self._raise() else "decay"
            self.train_accs = []
        self.train_accs.append(train_acc)
        return action

    def _raise(self) -> bool:
        (length, nesting), (target_length, target_nesting) = self.level, self.target
        if length < target_length:
            self.level = (length + 1, nesting)
        elif nesting < target_nesting:
            self.level = (1, nesting + 1)
        else:
            return False
        return True

    def state_dict(self) -> dict:
        return {"level": list(self.level), "train_accs": list(self.train_accs)}

    def load_state_dict(self, state: dict) -> None:
        self.level = tuple(state["level"])
        self.train_accs = list(state["train_accs"])


def collate(
    examples: list[Example],
    reverse: bool = False,
    double: bool = False,
    scramble: np.ndarray | None = None,
    blind: bool = False,
) -> dict[str, torch.Tensor]:
    """Examples -> the padded tensors described in the module docstring (laid out with numpy masks: a
    training step waits for its batch, so this is kept fast). ``scramble``: a table of ids the characters are
    replaced by (see ``programs.scramble_table``); ``blind``: every input replaced by one fixed character."""
    src_ids, src_len = encode_many([transform_input(e.input, reverse, double, blind) for e in examples])
    tgt_ids, tgt_len = encode_many([e.target for e in examples])
    if scramble is not None:
        src_ids, tgt_ids = scramble[src_ids], scramble[tgt_ids]
    b, s, t = len(examples), int(src_len.max()), int(tgt_len.max())
    cols = np.arange(s + 1 + t)
    x_end, y_start, y_end = src_len[:, None], src_len[:, None] + 1, (src_len + 1 + tgt_len)[:, None]

    src = np.zeros((b, s), np.int64)
    src[cols[:s] < x_end] = src_ids  # row by row: each row's characters, then padding
    tgt = np.zeros((b, t), np.int64)
    tgt[cols[:t] < tgt_len[:, None]] = tgt_ids
    seq = np.zeros((b, s + 1 + t), np.int64)  # input, GO, answer, padding
    seq[cols < x_end] = src_ids
    seq[np.arange(b), src_len] = encode(GO)[0]
    seq[(cols >= y_start) & (cols < y_end)] = tgt_ids
    labels = np.full((b, s + t), -100, np.int64)  # position len(x) holds GO: it predicts the answer's first
    labels[(cols[:-1] >= x_end) & (cols[:-1] < y_end - 1)] = tgt_ids
    as_tensor = torch.from_numpy
    return {
        "src": as_tensor(src),
        "src_len": as_tensor(src_len),
        "tgt": as_tensor(tgt),
        "tgt_len": as_tensor(tgt_len),
        "seq": as_tensor(seq),
        "labels": as_tensor(labels),
    }


def fixed_set(cfg: ProgramDataConfig, split: str, length: int, nesting: int, size: int) -> list[Example]:
    """The same programs for every run and seed: seeded by the split and the difficulty only."""
    rng = random.Random(f"{cfg.task}/{split}/{length}/{nesting}")
    return [draw(cfg.task, length, nesting, rng, SPLITS.index(split)) for _ in range(size)]


def batched(cfg: ProgramDataConfig, examples: list[Example]) -> list[dict[str, torch.Tensor]]:
    n, table = cfg.eval_batch_size, scramble_table(cfg.scramble) if cfg.scramble else None
    return [collate(examples[i : i + n], cfg.reverse, cfg.double, table, cfg.blind) for i in range(0, len(examples), n)]


class ProgramDataModule(RecordedDataModule):
    """Fresh programs every step (each rank draws its own share of a step's batch) from the curriculum, and
    fixed validation and test programs."""

    shards = True

    def __init__(self, cfg: ProgramDataConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed
        self.curriculum = Curriculum(cfg)
        self._sets: dict[tuple, list[Example]] = {}

    def examples(self, split: str, level: tuple[int, int] | None = None) -> list[Example]:
        """Validation programs of a level (default: the target), or the test programs (at the target)."""
        length, nesting = level or self.curriculum.target
        size = self.cfg.test_size if split == "test" else self.cfg.val_size
        key = (split, length, nesting)
        if key not in self._sets:
            self._sets[key] = fixed_set(self.cfg, split, length, nesting, size)
        return self._sets[key]

    def draw_batch(self, rng: random.Random, n: int) -> dict[str, torch.Tensor]:
        """``n`` training programs, each at a difficulty the curriculum chooses, as one batch."""
        cfg, table = self.cfg, scramble_table(self.cfg.scramble) if self.cfg.scramble else None
        levels = [self.curriculum.difficulty(rng) for _ in range(n)]
        examples = [draw(cfg.task, length, nesting, rng, SPLITS.index("train")) for length, nesting in levels]
        return collate(examples, cfg.reverse, cfg.double, table, cfg.blind)

    def train_dataloader(self):
        rank, _ = self.rank_world()
        c = self.cfg
        return StreamBatches(
            self.draw_batch,
            steps=c.steps_per_epoch,
            batch_size=self.per_rank(c.batch_size),
            seed=self.seed,
            stream=TRAIN_STREAM,
            epoch_fn=epoch_of(self),
            rank=rank,
            make_rng=random.Random,
        )

    def test_dataloader(self):
        # a DataLoader over the ready-made batches (a bare list would read as several dataloaders)
        return DataLoader(batched(self.cfg, self.examples("test")), batch_size=None)

    def data_info(self) -> dict:
        c = self.cfg
        source = inspect.getsource(programs).encode()
        return {
            "name": "generated programs (Zaremba & Sutskever 2014)",
            "task": c.task,
            "target": {"length": c.length, "nesting": c.target_nesting},
            "curriculum": c.curriculum,
            "input": {
                "reverse": c.reverse,
                "double": c.double,
                "scramble": c.scramble,
                **({"blind": True} if c.blind else {}),
            },
            "fingerprint": hashlib.sha256(source).hexdigest()[:16],  # changes with the generator
            "val_size": c.val_size,
            "test_size": c.test_size,
        }
