"""Verdicts from per-seed metrics: paired differences, t-intervals, and one-sided tests against a margin.

Runs of two variants with the same seed share the initialisation stream and the data split, so every
comparison is paired by seed. Two kinds of test, both fixed in the experiment file before the runs:

- **A difference** ("flips lower test error"): the mean paired difference d (signed so that the claim says
  d > 0) with its two-sided 95% t-interval. Supported when the interval lies above 0, contradicted when it
  lies below 0, inconclusive otherwise.
- **No effect within a margin** ("flips do not help digits", "the larger batch fits at least as well"):
  the claim says d < m for a margin m > 0 written in the experiment file. Supported when the one-sided 95%
  upper bound of the mean is below m, contradicted when the one-sided 95% lower bound is above m (evidence
  of an effect larger than the margin). This is one of the two one-sided tests of an equivalence test (TOST);
  an equivalence claim ("the same within m") runs both: supported when the 90% interval lies inside (-m, m),
  contradicted when the mean is beyond +-m with 95% confidence.

Fewer than ``MIN_SEEDS`` paired values decide nothing: the verdict is inconclusive and says which way the
values point.

A claim looked at more than once on the same seeds (a first design, then this one) says so: the number of looks
comes from the run records (``engine/registration.py``: the versions of the claim that saw the seeds); its verdict
splits the 5% between the looks (Bonferroni: 2 looks, 2.5% each, so a 97.5% interval), and the test column says
it. Without that, stopping at the look that decides would make a false verdict likelier than 5%.

A "might" or "can" claim (``any_of``) holds when any of its k parts does; deciding each part at 5% would make
"some part holds" likelier than 5% when none does, so each part is decided at 5% / k (Bonferroni, which is
Holm's first step: the one that decides "any"). No part holding does not refute "might": such a claim is
"not shown" (inconclusive), never contradicted.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

MIN_SEEDS = 3  # paired values needed before a verdict can be supported or contradicted
LEVEL = 0.95
_LOOKS: ContextVar[int] = ContextVar("looks", default=1)
_PARTS: ContextVar[int] = ContextVar("parts", default=1)


@contextmanager
def looks(n: int) -> Iterator[None]:
    """Verdicts made inside decide at 5% / ``n`` each: the claims were looked at ``n`` times (see above)."""
    if n < 1:
        raise ValueError("looks must be >= 1")
    token = _LOOKS.set(n)
    try:
        yield
    finally:
        _LOOKS.reset(token)


@contextmanager
def parts(k: int) -> Iterator[None]:
    """Verdicts made inside are the k parts of an "any of" claim: each decides at 5% / k (see above)."""
    token = _PARTS.set(_PARTS.get() * k)
    try:
        yield
    finally:
        _PARTS.reset(token)


def alpha() -> float:
    """The false-verdict rate of one side of a test, or of a two-sided interval: 5%, split between the looks and
    between the parts of an "any of" claim."""
    return (1 - LEVEL) / (_LOOKS.get() * _PARTS.get())


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def _looks_note() -> str:
    n, k = _LOOKS.get(), _PARTS.get()
    why = [f"{n} looks at these seeds"] * (n > 1) + [f"any of {k} parts"] * (k > 1)
    return f"; {' and '.join(why)}, {_pct(alpha())} each (Bonferroni)" if why else ""


@dataclass(frozen=True)
class Verdict:
    status: str  # "supported" | "contradicted" | "inconclusive"
    statistic: str  # what was measured, in words and numbers
    test: str = ""  # how it was decided: "95% CI of the paired difference, 3 seeds", "margin 0.5 pts", ...

    def __post_init__(self) -> None:
        if self.status not in ("supported", "contradicted", "inconclusive"):
            raise ValueError(f"bad verdict status {self.status!r}")

    @property
    def has_runs(self) -> bool:
        """False when no run measured what the claim compares (a profile may run none of its variants)."""
        return self.test != NEEDS_RUNS


NEEDS_RUNS = "needs runs"


def no_runs(text: str) -> Verdict:
    return Verdict("inconclusive", text, NEEDS_RUNS)


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[int], list[float]]:
    """Seeds present in both, and the differences a - b for each."""
    seeds = sorted(set(a) & set(b))
    return seeds, [a[s] - b[s] for s in seeds]


def _t(p: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(p, df))


def interval(diffs: list[float], level: float | None = None) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval of the mean (nan bounds below two values); ``level``: 1 - alpha()."""
    level = 1 - alpha() if level is None else level
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, math.nan, math.nan
    half = _t(0.5 + level / 2, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return mean, mean - half, mean + half


def one_sided(diffs: list[float], level: float | None = None) -> tuple[float, float]:
    """One-sided ``level`` lower and upper confidence bounds of the mean (each alone holds with ``level``;
    default 1 - alpha())."""
    level = 1 - alpha() if level is None else level
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return math.nan, math.nan
    half = _t(level, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return mean - half, mean + half


def signs(diffs: list[float]) -> str:
    return "".join("+" if d > 0 else "-" if d < 0 else "0" for d in diffs)


def signed(x: float) -> str:
    """+1.23; a nonzero value that 2 decimals would round to 0 gets the decimals it needs (+0.0006), so that a
    bound above 0 never reads as +0.00."""
    if x == 0 or abs(x) >= 0.005 or not math.isfinite(x):
        return f"{x:+.2f}"
    digits = -math.floor(math.log10(abs(x)))
    return f"{x:+.{digits}f}" if digits <= 6 else f"{x:+.1e}"


def describe(diffs: list[float], keys: list, scale: float = 100.0, unit: str = " pts") -> str:
    """'mean difference +1.23 pts (95% CI +0.40 to +2.06); per seed +++ over seeds 0,1,2'."""
    mean, lo, hi = interval(diffs)
    text = f"mean difference {signed(mean * scale)}{unit}"
    if len(diffs) >= 2:
        text += f" ({_pct(1 - alpha())} CI {signed(lo * scale)} to {signed(hi * scale)})"
    return f"{text}; per seed {signs(diffs)} over {'seeds' if _plain(keys) else 'pairs'} {','.join(map(str, keys))}"


def _plain(keys: list) -> bool:
    return all(isinstance(k, int) for k in keys)


def _too_few(diffs: list[float], keys: list, what: str, scale: float, unit: str) -> Verdict | None:
    if not diffs:
        return no_runs(f"no paired runs for {what}")
    if len(diffs) < MIN_SEEDS:
        mean = statistics.fmean(diffs)
        way = "positive" if mean > 0 else "negative" if mean < 0 else "zero"
        return Verdict(
            "inconclusive",
            f"{what}: {describe(diffs, keys, scale, unit)}; points {way}",
            f"{len(diffs)} of the {MIN_SEEDS} paired values a verdict needs",
        )
    return None


def _too_few_for_margin(
    diffs: list[float], keys: list, what: str, margin: float, band: str, scale: float, unit: str
) -> Verdict | None:
    """``_too_few`` for a claim tested against a margin; its test names the ``band``."""
    if margin <= 0:
        raise ValueError("a margin must be > 0")
    early = _too_few(diffs, keys, what, scale, unit)
    if early is None or not early.has_runs:
        return early
    return Verdict(early.status, early.statistic, f"{band}; {early.test}")


def difference(diffs: list[float], keys: list, what: str, scale: float = 100.0, unit: str = " pts") -> Verdict:
    """The claim says the mean of ``diffs`` is positive: decided by its two-sided 95% t-interval."""
    early = _too_few(diffs, keys, what, scale, unit)
    if early:
        return early
    _, lo, hi = interval(diffs)  # no spread (every run diverged, say): the interval is the point itself
    status = "supported" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    test = f"{_pct(1 - alpha())} CI of the mean, {len(diffs)} pairs{_looks_note()}"
    return Verdict(status, f"{what}: {describe(diffs, keys, scale, unit)}", test)


def below_margin(
    diffs: list[float], keys: list, what: str, margin: float, scale: float = 100.0, unit: str = " pts"
) -> Verdict:
    """The claim says the mean of ``diffs`` is below ``margin`` (no effect larger than the margin in the
    direction the claim denies): one-sided 95% bounds against the margin."""
    early = _too_few_for_margin(diffs, keys, what, margin, f"margin {margin * scale:+.2f}{unit}", scale, unit)
    if early:
        return early
    test = f"one-sided {_pct(1 - alpha())} bound vs margin {margin * scale:+.2f}{unit}, {len(diffs)} pairs"
    test += _looks_note()
    lo, hi = one_sided(diffs)
    status = "supported" if hi < margin else "contradicted" if lo > margin else "inconclusive"
    bounds = f"one-sided {_pct(1 - alpha())} bounds {signed(lo * scale)} / {signed(hi * scale)}"
    text = f"{what}: {describe(diffs, keys, scale, unit)}; {bounds}"
    return Verdict(status, text, test)


def equivalent(
    diffs: list[float], keys: list, what: str, margin: float, scale: float = 100.0, unit: str = " pts"
) -> Verdict:
    """The claim says the mean of ``diffs`` is within (-margin, margin): two one-sided tests (TOST) at 5% each,
    i.e. the 90% interval inside the band supports it; a mean beyond the band with 95% confidence contradicts it."""
    early = _too_few_for_margin(diffs, keys, what, margin, f"margin +-{margin * scale:.2f}{unit}", scale, unit)
    if early:
        return early
    test = f"equivalence (TOST, {_pct(alpha())} each side) within +-{margin * scale:.2f}{unit}, {len(diffs)} pairs"
    test += _looks_note()
    lo, hi = one_sided(diffs)
    status = "supported" if -margin < lo and hi < margin else "contradicted" if lo > margin or hi < -margin else None
    band = f"{_pct(1 - 2 * alpha())} interval {signed(lo * scale)} to {signed(hi * scale)}"
    text = f"{what}: {describe(diffs, keys, scale, unit)}; {band}"
    return Verdict(status or "inconclusive", text, test)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: with no difference, each of the pairs that disagree is equally likely to be
    (yes, no) or (no, yes), so the smaller count is binomial(only_a + only_b, 1/2)."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


def more_often(a: dict[int, float], b: dict[int, float], what: str) -> Verdict:
    """The claim: a yes/no outcome (1/0 per run) happens more often in ``a`` than in ``b``, paired by seed. A
    t-interval does not fit 0/1 values (its bounds can pass 1); the exact McNemar test decides at alpha()."""
    seeds = sorted(set(a) & set(b))
    only_a = sum(a[s] > 0 and not b[s] > 0 for s in seeds)
    only_b = sum(b[s] > 0 and not a[s] > 0 for s in seeds)
    text = (
        f"{what}: {sum(a[s] > 0 for s in seeds)} of {len(seeds)} runs against {sum(b[s] > 0 for s in seeds)} "
        f"of {len(seeds)}; pairs that differ {only_a} : {only_b}"
    )
    if not seeds:
        return no_runs(text)
    if len(seeds) < MIN_SEEDS:
        return Verdict("inconclusive", text, f"{len(seeds)} of the {MIN_SEEDS} paired values a verdict needs")
    p = mcnemar_p(only_a, only_b)
    status = "inconclusive" if p >= alpha() else "supported" if only_a > only_b else "contradicted"
    return Verdict(
        status, f"{text}, p = {p:.2g}", f"exact McNemar test at {_pct(alpha())}, {len(seeds)} pairs" + _looks_note()
    )


def seeds_note(text: str, seeds: list, failed: list) -> str:
    """'<text>; holds in 4 of 5 seeds (fails in 3)': how a property of each seed fared."""
    note = f"{text}; holds in {len(seeds) - len(failed)} of {len(seeds)} seeds"
    return note + (f" (fails in {', '.join(map(str, failed))})" if failed else "")


def every_seed(seeds: list, failed: list, text: str) -> Verdict:
    """A property each run must show: supported when it holds in every one of at least ``MIN_SEEDS`` seeds,
    contradicted when it fails in any of at least that many, else inconclusive."""
    note = seeds_note(text, seeds, failed)
    if not seeds:
        return no_runs(note)
    if len(seeds) < MIN_SEEDS:
        return Verdict("inconclusive", note, f"{len(seeds)} of the {MIN_SEEDS} seeds needed")
    return Verdict("contradicted" if failed else "supported", note, f"every seed, {len(seeds)} seeds")


def _combine(verdicts: list[Verdict], decisive: str, joiner: str, label: str) -> Verdict:
    """One ``decisive`` part decides the whole; the other status needs every part; else inconclusive."""
    if not any(v.has_runs for v in verdicts):  # no part had runs: nor has the whole
        return no_runs(joiner.join(v.statistic for v in verdicts))
    verdicts = [v for v in verdicts if v.has_runs]  # a profile may run only some of a claim's variants
    statuses = [v.status for v in verdicts]
    other = "supported" if decisive == "contradicted" else "contradicted"
    status = (
        decisive
        if decisive in statuses
        else other
        if statuses and all(s == other for s in statuses)
        else "inconclusive"
    )
    return Verdict(status, joiner.join(v.statistic for v in verdicts), f"{label}: " + _tests(verdicts))


def combine_all(verdicts: list[Verdict], joiner: str = " | ") -> Verdict:
    """Every part must hold: contradicted when any part is, supported when all are."""
    return _combine(verdicts, "contradicted", joiner, "every part")


def combine_any(verdicts: list[Verdict], joiner: str = " | ") -> Verdict:
    """Some part must hold (a "might" or "can" claim): supported when any part is, contradicted only when
    every part is contradicted."""
    return _combine(verdicts, "supported", joiner, "any part")


def _tests(verdicts: list[Verdict]) -> str:
    seen = []
    for v in verdicts:
        if v.test and v.test not in seen:
            seen.append(v.test)
    return "; ".join(seen)
