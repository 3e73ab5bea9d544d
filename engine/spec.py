"""The vocabulary of the suite: experiments, variants, profiles, claims, checks, tables and references.

An experiment file declares these as plain frozen dataclasses and reads like its slide: what is varied
(variants), at what scale (profiles), what the lecture says (claims, each with the test that decides it,
and checks of exact identities), how the results are shown (tables, a plot) and which published figures
stand beside them (references, with the setting in which they are comparable).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from base.errors import ReproError, RunsFailed, unknown_name  # noqa: F401 (the names every layer raises)
from engine.config import TrainConfig, apply_overrides, config_from_dict, config_to_dict  # noqa: F401
from engine.stats import Verdict  # noqa: F401


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    seeds: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    variants: tuple[str, ...] | None = None  # None: every variant of the experiment
    # runs at once by default on a machine without GPUs: 2 single-threaded runs use 2 cores better than one
    # two-threaded run (1.22x measured), but only runs of a minute or more repay a process start each
    cpu_jobs: int = 1
    # why the profile is sized as it is: the effect the lecture implies, the per-seed spread measured, the seeds
    # and steps that need (printed with the table)
    power: str = ""
    # the first of its seeds: a table's seeds are never seen before its design is final, so the tables run on
    # seeds no pilot used (the default profiles from 100; their pilots, the `pilot` profile, from 0)
    first_seed: int = 0

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))


PILOT = "pilot"
TABLE_SEEDS = 100  # the first seed of a default profile's table: seeds 0-99 are its pilots'


def pilot_of(table: Profile) -> Profile:
    """The pilot of a table's profile: the same settings on seeds no table uses (0, 1, ...). Its runs size the
    table (their records stay beside it, in results/runs/<experiment>/pilot/); the pilot's own table lists them
    and decides nothing."""
    return Profile(
        PILOT,
        f"pilot runs of the `{table.name}` profile's settings on seeds from 0 (no table uses them): sizing "
        "only: its table lists the runs and decides nothing",
        seeds=min(table.seeds, 3),
        overrides=table.overrides,
        variants=table.variants,
        cpu_jobs=table.cpu_jobs,
        first_seed=0,
    )


@dataclass
class Results:
    """Per-seed final metrics of one experiment and profile: ``values[variant][metric] -> {seed: x}``."""

    values: dict[str, dict[str, dict[int, float]]]

    def get(self, variant: str, metric: str) -> dict[int, float]:
        return self.values.get(variant, {}).get(metric, {})


@dataclass(frozen=True)
class Claim:
    """One sentence of the lecture and the test that decides it from per-seed run metrics.

    The test can come out either way: ``counter_example()`` is a constructed ``Results`` that it must call
    "contradicted" (tests/test_claims.py). Tests built by ``engine/claims.py`` construct their own;
    a hand-written test passes one as ``counter``."""

    slide: str
    statement: str
    check: Callable[[Results], Verdict]
    counter: Callable[[], Results] | None = None
    # the profile whose runs decide this claim, where a smaller one cannot separate what it compares (every
    # curriculum ends near 99% on 2-digit additions): other tables show its row marked so, and the index counts it
    # only from that profile's table (as waiting while that table has no runs)
    decided_by: str = ""

    def counter_example(self) -> Results:
        if self.counter is not None:
            return self.counter()
        example = getattr(self.check, "example", None)
        if example is None:
            raise TypeError(f"claim {self.statement!r} has no counter-example")
        return example(False)


@dataclass(frozen=True)
class CheckOutcome:
    holds: bool | None  # None: no run recorded what the check needs
    largest_error: float
    detail: str


@dataclass(frozen=True)
class Check:
    """An exact identity every run must show (Jensen per example, the slide's 117.4): listed apart from the
    verdicts, as holds / fails with its largest error. ``counter`` (or the check's own ``example``) builds a
    case in which it fails."""

    slide: str
    statement: str
    check: Callable[[Results], CheckOutcome]
    counter: Callable[[], Results] | None = None

    def counter_example(self) -> Results:
        if self.counter is not None:
            return self.counter()
        return self.check.example(False)


@dataclass(frozen=True)
class Table:
    """A results table: some of the experiment's variants, some metrics, an optional caption."""

    title: str
    variants: tuple[str, ...]
    metrics: tuple[str, ...]
    caption: str = ""
    # (baseline, treatment) pairs whose per-seed change in test error the plot shows
    pairs: tuple[tuple[str, str], ...] = ()
    # (profile, caption) pairs: the caption of this table in that profile's report (a profile whose runs were
    # made by an earlier protocol, which the general caption would misdescribe)
    profile_captions: tuple[tuple[str, str], ...] = ()

    def caption_for(self, profile: str) -> str:
        return dict(self.profile_captions).get(profile, self.caption)


@dataclass(frozen=True)
class Reference:
    """A published figure, shown beside a measured one only where the run's setting is comparable.

    ``setting`` says how the published number was made (model, data, schedule, protocol). In the profiles of
    ``comparable_in`` the figure is shown (with ``caveat``, e.g. a JPEG copy of the data); in any other
    profile the cell says "not comparable" and why (``why_not[profile]``, else the setting itself)."""

    variant: str
    metric: str
    value: float  # in the table's unit (% for errors and accuracies)
    source: str
    setting: str = ""
    comparable_in: tuple[str, ...] = ()
    caveat: str = ""
    why_not: Mapping[str, str] = field(default_factory=dict)

    def cell(self, profile: str) -> str:
        if profile in self.comparable_in:
            note = f"; {self.caveat}" if self.caveat else ""
            return f"{self.value:g} ({self.source}{note})"
        why = self.why_not.get(profile) or f"published setting: {self.setting or 'see the source'}"
        return f"not comparable: {why} ({self.source})"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    slides: str
    claim: str  # the lecture's claim in one line
    config: Callable[[], Any]  # builds the default (full-scale) config dataclass
    variants: tuple[Variant, ...]
    profiles: tuple[Profile, ...]
    claims: tuple[Claim, ...]
    build: Callable[[Any, int], tuple[Any, Any]]  # (config, seed) -> (LightningModule, DataModule)
    checks: tuple[Check, ...] = ()
    tables: tuple[Table, ...] = ()
    references: tuple[Reference, ...] = ()
    metrics: Mapping[str, str] = field(default_factory=dict)  # metric -> column header
    # (experiment, records by variant, png path, profile) -> writes the plot; None: the default plot
    plot: Callable[[Any, dict, Any, str], None] | None = None
    # (records by variant, profile) -> markdown lines of sections of its own (e.g. example predictions)
    sections: Callable[[dict, str], list[str]] | None = None
    # text generation from a trained run (language models): see `repro sample`
    sample: Callable[..., str] | None = None
    default_profile: str = "quick"

    def __post_init__(self) -> None:
        if not any(p.name == PILOT for p in self.profiles):  # every experiment has one: its default's, on seeds 0..
            object.__setattr__(self, "profiles", self.profiles + (pilot_of(self.profile(self.default_profile)),))

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ReproError(unknown_name("variant", name, [v.name for v in self.variants], f"of {self.name}"))

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        raise ReproError(unknown_name("profile", name, [p.name for p in self.profiles], f"of {self.name}"))

    def variant_names(self, profile: str) -> list[str]:
        chosen = self.profile(profile).variants
        return [v.name for v in self.variants if chosen is None or v.name in chosen]

    def resolve(self, variant: str, profile: str, sets: Mapping[str, str] | None = None) -> Any:
        """The fully resolved config of one run: defaults < profile < variant < --set."""
        cfg = self.config()
        apply_overrides(cfg, self.profile(profile).overrides)
        apply_overrides(cfg, self.variant(variant).overrides)
        apply_overrides(cfg, sets or {}, from_text=True)
        return cfg
