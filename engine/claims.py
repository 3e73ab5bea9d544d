"""Claims in a line or two: one metric compared between variants, paired by seed.

    Claim("6", "Translation lowers test error on CIFAR-10", lower("test_error", "translate", than="none"))

``lower`` and ``higher`` are difference claims (``more_often`` for a yes/no outcome); ``not_lower``,
``not_higher`` and ``same`` are no-effect claims with a margin fixed here, in the experiment file, before the
runs (see ``engine/stats.py``).
``all_of`` and ``any_of`` combine them ("every recurrent net beats the MLP", "a bottleneck *might* help").
``identity`` is a check of an exact identity (a table's Checks section), not a verdict.

Every test built here can also build examples of its own: ``example(holds=False)`` is a small ``Results``
in which the claim is clearly false. ``tests/test_claims.py`` feeds each claim of every experiment its
counter-example and expects "contradicted", so no verdict comes from a test that cannot fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from engine import stats
from engine.spec import CheckOutcome, Results

SEEDS = (0, 1, 2, 3, 4)  # of the constructed examples


def _pairs(variant: str | Sequence[str], than: str | Sequence[str]) -> tuple[tuple[str, str], ...]:
    a = (variant,) if isinstance(variant, str) else tuple(variant)
    b = (than,) * len(a) if isinstance(than, str) else tuple(than)
    if len(a) != len(b) or not a:
        raise ValueError("variant and than must pair up one to one")
    return tuple(zip(a, b, strict=True))


def percent_metric(metric: str) -> bool:
    """Errors, gaps and accuracies are fractions, shown (and compared) in percentage points (``_long``: the same
    measure on longer sequences)."""
    base = metric.removesuffix("_long")
    return base.endswith(("error", "_acc", "accuracy", "_exact")) or base in ("gap", "disagreement")


def merge(*parts: Results) -> Results:
    """One Results holding every part's values (later parts win where two set the same value)."""
    values: dict = {}
    for part in parts:
        for variant, metrics in part.values.items():
            for metric, seeds in metrics.items():
                values.setdefault(variant, {}).setdefault(metric, {}).update(seeds)
    return Results(values)


@dataclass(frozen=True)
class Compare:
    """A metric of ``pairs[i][0]`` against ``pairs[i][1]``, paired by seed (pooled over the pairs).

    ``kind``: "lower" / "higher" (the first's value is lower / higher: a difference claim); "not_lower" /
    "not_higher" (it is not lower / higher by more than ``margin``); "same" (within +-``margin``).
    ``transform`` "log10" compares log10 of the values (ratios), for heavy-tailed metrics such as an MSE.
    """

    metric: str
    pairs: tuple[tuple[str, str], ...]
    kind: str
    margin: float = 0.0
    than_metric: str | None = None  # the metric read on the second side (default: ``metric``), e.g. the error of
    # one dropout mask against that of the 100-mask average in the same runs
    transform: str | None = None
    what: str = ""
    scale: float | None = None  # None: 100 (pts) for fractions, else 1
    unit: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("lower", "higher", "not_lower", "not_higher", "same"):
            raise ValueError(f"bad comparison {self.kind!r}")
        if (self.margin > 0) != (self.kind in ("not_lower", "not_higher", "same")):
            raise ValueError("a margin goes with not_lower, not_higher and same, and only with them")
        if self.transform not in (None, "log10"):
            raise ValueError("transform must be None or 'log10'")

    # -- the test ---------------------------------------------------------------------------------
    def _value(self, x: float) -> float:
        if self.transform == "log10":
            return math.log10(x) if x > 0 else math.nan
        return x

    def diffs(self, results: Results) -> tuple[list, list[float]]:
        """Per (pair, seed): the difference the claim says is positive (difference claims) or below the
        margin (no-effect claims), on the transformed scale."""
        keys, diffs = [], []
        for first, second in self.pairs:
            a, b = results.get(first, self.metric), results.get(second, self.than_metric or self.metric)
            for s in sorted(set(a) & set(b)):
                x, y = self._value(a[s]), self._value(b[s])
                # "lower": the second minus the first; "higher" / "not_higher": the first minus the second;
                # "not_lower": the gain (second minus first) that must stay under the margin
                d = y - x if self.kind in ("lower", "not_lower") else x - y
                if math.isfinite(d):
                    keys.append(s if len(self.pairs) == 1 else f"{first}/s{s}")
                    diffs.append(d)
        return keys, diffs

    def describe(self) -> str:
        if self.what:
            return self.what
        first, second = self.pairs[0] if len(self.pairs) == 1 else ("<variant>", "<baseline>")
        log = "log10 " if self.transform else ""
        if self.than_metric:  # two metrics of the same runs: name each side by its metric
            first, second = f"{log}{self.metric} of {first}", f"{log}{self.than_metric} of {second}"
            prefix = ""
        else:
            prefix = f"{log}{self.metric}, "
        a, b = (second, first) if self.kind in ("lower", "not_lower") else (first, second)
        pooled = f", pooled over {len(self.pairs)} pairs" if len(self.pairs) > 1 else ""
        return f"{prefix}{a} minus {b}{pooled}"

    def _scale_unit(self) -> tuple[float, str]:
        if self.transform:
            return self.scale or 1.0, self.unit if self.unit is not None else ""
        pct = percent_metric(self.metric)
        return self.scale or (100.0 if pct else 1.0), self.unit if self.unit is not None else (" pts" if pct else "")

    def __call__(self, results: Results) -> stats.Verdict:
        keys, diffs = self.diffs(results)
        scale, unit = self._scale_unit()
        what = self.describe()
        if self.kind in ("lower", "higher"):
            verdict = stats.difference(diffs, keys, what, scale, unit)
        elif self.kind == "same":
            verdict = stats.equivalent(diffs, keys, what, self.margin, scale, unit)
        else:
            verdict = stats.below_margin(diffs, keys, what, self.margin, scale, unit)
        # Pooled pairs (several targets) are replications only across seeds too: pairs from fewer than
        # MIN_SEEDS seeds (one run per target) decide nothing, however many targets they span.
        seeds = {str(k).rsplit("/s", 1)[-1] for k in keys}
        if len(self.pairs) > 1 and len(seeds) < stats.MIN_SEEDS and verdict.status != "inconclusive":
            note = f"{verdict.test}; pairs from {len(seeds)} seed(s), {stats.MIN_SEEDS} needed"
            verdict = replace(verdict, status="inconclusive", test=note)
        return verdict

    # -- constructed examples ---------------------------------------------------------------------
    def example(self, holds: bool) -> Results:
        """Five seeds in which the claim clearly holds (``holds``) or is clearly false."""
        step = max(0.1, 4 * self.margin)  # a difference far outside any interval and any margin
        if self.kind in ("lower", "higher"):
            d = step if holds else -step
        elif self.kind == "same":
            d = 0.0 if holds else 3 * self.margin + step
        else:
            d = 0.0 if holds else 3 * self.margin + step  # the denied effect, far above the margin
        values: dict = {}
        for first, second in self.pairs:
            for s in SEEDS:
                jitter = (self.margin / 20 if self.margin else 0.002) * (s - 2)  # some spread: intervals, not points
                base = 0.5 + 0.01 * s
                # the difference on the transformed scale is d + jitter, in the sign convention of diffs()
                delta = d + jitter
                other = base - delta if self.kind in ("lower", "not_lower") else base + delta
                if self.transform == "log10":
                    base, other = 10**base, 10**other
                values.setdefault(first, {}).setdefault(self.metric, {})[s] = other
                values.setdefault(second, {}).setdefault(self.than_metric or self.metric, {})[s] = base
        return Results(values)


@dataclass(frozen=True)
class Contrast:
    """A difference of two gains, paired by seed: the claim says the first gain is larger than the second.
    A gain is ``metric(than) - metric(variant)`` (how much lower ``variant`` is), e.g. flip's gain on CIFAR-10
    against its gain on MNIST, or a model's edge over the MLP at line positions 3+ against 0-2."""

    first: tuple[str, str, str]  # (metric, variant, than)
    second: tuple[str, str, str]
    what: str
    scale: float | None = None
    unit: str | None = None

    def _gain(self, results: Results, part: tuple[str, str, str]) -> dict[int, float]:
        metric, variant, than = part
        seeds, d = stats.paired(results.get(than, metric), results.get(variant, metric))
        return dict(zip(seeds, d, strict=True))

    def __call__(self, results: Results) -> stats.Verdict:
        seeds, d = stats.paired(self._gain(results, self.first), self._gain(results, self.second))
        pct = percent_metric(self.first[0])
        scale = self.scale or (100.0 if pct else 1.0)
        unit = self.unit if self.unit is not None else (" pts" if pct else "")
        return stats.difference(d, seeds, self.what, scale, unit)

    def example(self, holds: bool) -> Results:
        """The first gain 0.1 and the second 0 (holds), or the other way round."""
        big, none_ = (0.1, 0.0) if holds else (0.0, 0.1)
        values: dict = {}
        for (metric, variant, than), gain in ((self.first, big), (self.second, none_)):
            for s in SEEDS:
                base = 0.5 + 0.01 * s
                values.setdefault(than, {}).setdefault(metric, {})[s] = base
                values.setdefault(variant, {}).setdefault(metric, {})[s] = base - gain - 0.002 * (s - 2)
        return Results(values)


def lower(metric: str, variant, than, **kw) -> Compare:
    """The claim: ``variant`` has a lower ``metric`` than ``than`` (tuples: pooled pairs)."""
    return Compare(metric, _pairs(variant, than), "lower", **kw)


def higher(metric: str, variant, than, **kw) -> Compare:
    """The claim: ``variant`` has a higher ``metric`` than ``than``."""
    return Compare(metric, _pairs(variant, than), "higher", **kw)


@dataclass(frozen=True)
class MoreOften:
    """A yes/no outcome (a 0/1 metric, e.g. ``diverged``) happens more often in ``variant`` than in ``than``."""

    metric: str
    variant: str
    than: str
    what: str = ""

    def __call__(self, results: Results) -> stats.Verdict:
        what = self.what or f"{self.metric}, {self.variant} against {self.than}"
        return stats.more_often(results.get(self.variant, self.metric), results.get(self.than, self.metric), what)

    def example(self, holds: bool) -> Results:
        """Every run of one side says yes, none of the other: ``variant``'s (holds) or ``than``'s."""
        yes, no = {s: 1.0 for s in range(8)}, {s: 0.0 for s in range(8)}
        a, b = (yes, no) if holds else (no, yes)
        return Results({self.variant: {self.metric: a}, self.than: {self.metric: b}})


def more_often(metric: str, variant: str, than: str, what: str = "") -> MoreOften:
    """The claim: the 0/1 ``metric`` is 1 in more of ``variant``'s runs than of ``than``'s (paired by seed)."""
    return MoreOften(metric, variant, than, what)


def not_lower(metric: str, variant, than, margin: float, **kw) -> Compare:
    """The claim: ``variant`` does not lower ``metric`` below ``than``'s by more than ``margin`` ("does not
    help")."""
    return Compare(metric, _pairs(variant, than), "not_lower", margin=margin, **kw)


def not_higher(metric: str, variant, than, margin: float, **kw) -> Compare:
    """The claim: ``variant``'s ``metric`` is not higher than ``than``'s by more than ``margin`` ("at least as
    well")."""
    return Compare(metric, _pairs(variant, than), "not_higher", margin=margin, **kw)


def same(metric: str, variant, than, margin: float, **kw) -> Compare:
    """The claim: ``variant`` and ``than`` have the same ``metric`` within +-``margin`` (equivalence)."""
    return Compare(metric, _pairs(variant, than), "same", margin=margin, **kw)


@dataclass(frozen=True)
class AllOf:
    """Every part holds (e.g. "each recurrent net beats the MLP")."""

    parts: tuple

    def __call__(self, results: Results) -> stats.Verdict:
        return stats.combine_all([p(results) for p in self.parts])

    def example(self, holds: bool) -> Results:
        if holds:
            return merge(*(p.example(True) for p in self.parts))
        return merge(*(p.example(True) for p in self.parts[1:]), self.parts[0].example(False))


@dataclass(frozen=True)
class AnyOf:
    """Some part holds: a "might" or "can" claim. Each part decides at 5% / k (stats.py); when none holds, the
    claim is "not shown" (inconclusive): the settings tried do not refute a "might"."""

    parts: tuple

    def __call__(self, results: Results) -> stats.Verdict:
        tested = sum(p(results).has_runs for p in self.parts)  # a part none of whose variants ran tests nothing
        with stats.parts(max(1, tested)):
            combined = stats.combine_any([p(results) for p in self.parts])
        if combined.status == "contradicted":
            return stats.Verdict("inconclusive", f"not shown: {combined.statistic}", combined.test)
        return combined

    def example(self, holds: bool) -> Results:
        if holds:
            return merge(*(p.example(False) for p in self.parts[1:]), self.parts[0].example(True))
        return merge(*(p.example(False) for p in self.parts))


def all_of(*parts) -> AllOf:
    return AllOf(tuple(parts))


@dataclass(frozen=True)
class FallsAlong(AllOf):
    """Each variant of ``order`` has a lower metric than the one before it: the AllOf of the adjacent pairs,
    with examples that agree along the whole chain (merged pairwise examples would not)."""

    order: tuple[str, ...] = ()
    transform: str | None = None

    def example(self, holds: bool) -> Results:
        metric = self.parts[0].metric
        values: dict = {}
        for s in SEEDS:
            for i, variant in enumerate(self.order):
                x = 0.5 - 0.1 * i + 0.002 * (s - 2)
                if not holds and i == 1:  # the second rises above the first: that step is contradicted
                    x = 0.7 + 0.002 * (s - 2)
                values.setdefault(variant, {}).setdefault(metric, {})[s] = 10**x if self.transform else x
        return Results(values)


def falls_along(metric: str, order: tuple[str, ...], transform: str | None = None) -> FallsAlong:
    """The claim: ``metric`` falls at every step along ``order`` (e.g. widths 8, 32, 128, 512)."""
    parts = tuple(lower(metric, b, than=a, transform=transform) for a, b in zip(order, order[1:], strict=False))
    return FallsAlong(parts, tuple(order), transform)


def any_of(*parts) -> AnyOf:
    return AnyOf(tuple(parts))


@dataclass(frozen=True)
class PerSeed:
    """A property each run must show, decided over seeds: supported when it holds in every one of at least
    ``stats.MIN_SEEDS`` seeds, contradicted when it fails in any of at least that many, else inconclusive.
    For properties of a random draw that should hold for every draw (a random matrix's Jacobian vanishes)."""

    test: Callable[[Results, int], bool | None]  # None: this seed lacks the values
    what: str
    seeds_of: Callable[[Results], list[int]]
    example_values: Callable[[bool], Results] | None = None

    def __call__(self, results: Results) -> stats.Verdict:
        outcomes = {s: self.test(results, s) for s in self.seeds_of(results)}
        outcomes = {s: o for s, o in outcomes.items() if o is not None}
        bad = sorted(s for s, o in outcomes.items() if not o)
        text = f"{self.what}: holds in {len(outcomes) - len(bad)} of {len(outcomes)} seeds"
        text += f" (fails in seeds {', '.join(map(str, bad))})" if bad else ""
        test = f"every seed, {len(outcomes)} seeds"
        if not outcomes:
            return stats.no_runs(text)
        if len(outcomes) < stats.MIN_SEEDS:
            return stats.Verdict("inconclusive", text, f"{len(outcomes)} of the {stats.MIN_SEEDS} seeds needed")
        return stats.Verdict("contradicted" if bad else "supported", text, test)

    def example(self, holds: bool) -> Results:
        if self.example_values is None:
            raise TypeError(f"{self.what}: no constructed example")
        return self.example_values(holds)


@dataclass(frozen=True)
class Identity:
    """A check of an exact identity: every run's ``metric`` (an error, >= 0) at most ``tolerance``."""

    metric: str
    what: str
    tolerance: float = 0.0
    variants: tuple[str, ...] | None = None  # None: every variant that records the metric

    def __call__(self, results: Results) -> CheckOutcome:
        errors = [
            v
            for variant, metrics in results.values.items()
            if self.variants is None or variant in self.variants
            for v in metrics.get(self.metric, {}).values()
        ]
        if not errors:
            return CheckOutcome(None, math.nan, f"no run recorded {self.metric}")
        worst = max(errors, key=lambda e: e if math.isfinite(e) else math.inf)
        holds = all(math.isfinite(e) and e <= self.tolerance for e in errors)
        return CheckOutcome(
            holds, worst, f"{self.what}: largest {worst:.3g} over {len(errors)} runs (tolerance {self.tolerance:g})"
        )

    def example(self, holds: bool) -> Results:
        variant = self.variants[0] if self.variants else "any"
        bad = self.tolerance * 10 + 1e-3
        return Results({variant: {self.metric: {s: (0.0 if holds or s else bad) for s in SEEDS}}})


def identity(metric: str, what: str, tolerance: float = 0.0, variants: Sequence[str] | None = None) -> Identity:
    return Identity(metric, what, tolerance, tuple(variants) if variants is not None else None)


def every_run(seeds: list, failed: list, text: str) -> CheckOutcome:
    """A fact that holds by construction or arithmetic (a property of the random matrices a run draws, not of what
    it learns), tested in each seed that ran it: a check, never a verdict. Its "largest error" is the number of
    seeds where it fails."""
    if not seeds:
        return CheckOutcome(None, math.nan, text)
    return CheckOutcome(not failed, float(len(failed)), stats.seeds_note(text, seeds, failed))
