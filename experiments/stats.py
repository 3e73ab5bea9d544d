"""Verdicts from per-seed metrics: paired differences, 95% t-intervals, and the sign over seeds.

Runs of two variants with the same seed share the initialisation stream and the data split, so
the comparison is paired by seed. With three or more seeds the verdict needs the 95% interval of
the mean difference to exclude zero; with fewer it falls back to the sign over all seeds (and says
so), as a weaker test.
"""

from __future__ import annotations

import math
import statistics

from experiments.spec import Verdict


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[list[int], list[float]]:
    """Seeds present in both, and the differences a - b for each."""
    seeds = sorted(set(a) & set(b))
    return seeds, [a[s] - b[s] for s in seeds]


def interval(diffs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval of the mean (nan bounds below two values)."""
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    half = t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(diffs) / math.sqrt(n)
    return mean, mean - half, mean + half


def describe(diffs: list[float], seeds: list[int], scale: float = 100.0, unit: str = " pts") -> str:
    mean, lo, hi = interval(diffs)
    text = f"mean difference {mean * scale:+.2f}{unit}"
    if len(diffs) >= 2:
        text += f" (95% CI {lo * scale:+.2f} to {hi * scale:+.2f})"
    signs = "".join("+" if d > 0 else "-" if d < 0 else "0" for d in diffs)
    return f"{text}; per seed {signs} over seeds {','.join(map(str, seeds))}"


def positive(diffs: list[float]) -> bool | None:
    """True: evidence that the mean difference is > 0; False: evidence that it is < 0; None: neither."""
    if len(diffs) < 2:  # one seed decides nothing
        return None
    if len(diffs) >= 3:
        _, lo, hi = interval(diffs)
        return True if lo > 0 else False if hi < 0 else None
    return True if all(d > 0 for d in diffs) else False if all(d < 0 for d in diffs) else None


def expect_positive(diffs: list[float], seeds: list[int], what: str, scale: float = 100.0, unit: str = " pts"):
    """The claim says the difference is positive."""
    status = {True: "supported", False: "contradicted", None: "inconclusive"}[positive(diffs)]
    return _verdict(status, diffs, seeds, what, scale, unit)


def expect_not_positive(diffs: list[float], seeds: list[int], what: str, scale: float = 100.0, unit: str = " pts"):
    """The claim says the difference is not positive (no gain): contradicted only by evidence of a gain."""
    status = {True: "contradicted", False: "supported", None: "inconclusive"}[positive(diffs)]
    return _verdict(status, diffs, seeds, what, scale, unit)


def _verdict(status: str, diffs: list[float], seeds: list[int], what: str, scale: float, unit: str) -> Verdict:
    if not diffs:
        return Verdict("inconclusive", f"no paired runs for {what}")
    few = len(diffs) < 3
    test = f"sign over {len(diffs)} seed{'s' * (len(diffs) > 1)} (few seeds: a weak test)" if few else "95% CI"
    return Verdict(
        status,
        f"{what}: {describe(diffs, seeds, scale, unit)}; decided by {test}",
        weak=few and status != "inconclusive",
    )
