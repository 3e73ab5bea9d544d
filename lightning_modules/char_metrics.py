"""What the char-lm final evaluation measures beyond the mean loss: the loss by a character's position in its
line and on chosen target characters (long-range structure), and metric states that reduce exactly across DDP
ranks (sums and counts per group; a mean with its standard error)."""

from __future__ import annotations

import math
import re

import torch
from torchmetrics import Metric

from lightning_modules.configs import LINE_POSITION_EDGES, LINE_POSITION_METRICS, PROBE_TARGETS

# Positions 0-2 are the line start: a context-3 window still holds the newline that began the line, so even
# the MLP knows the position and the whole line so far; from position 3 on it sees neither.
LINE_START = 3


# ----------------------------------------------------------------------------- sampled text (slide 35)
# a word: letters, with inner apostrophes ("e'er", "thou'rt"); compared in lower case
WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


def words_of(text: str) -> list[str]:
    return [w.lower() for w in WORD.findall(text)]


def known_word_share(sample: str, known: set[str]) -> tuple[float, int]:
    """(the share of the words of ``sample`` that are in ``known``, how many words it has); nan for none. The
    sample's first and last words may be cut by its ends: counted as they are, alike for every model."""
    words = words_of(sample)
    return (sum(w in known for w in words) / len(words) if words else math.nan), len(words)


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
