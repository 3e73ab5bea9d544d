"""The vocabulary of the suite: experiments, variants, profiles, claims, and typed run configs.

A run config is a tree of plain dataclasses. Variants and profiles are dictionaries of dotted-key
overrides (``{"data.augment": ("flip",)}``) applied to the experiment's default config, and so is
the user's ``--set key=value``: every value is checked against the field's declared type.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class ReproError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with code 2."""


class RunsFailed(Exception):
    """Some runs crashed (not a user error): the CLI reports them on one line and exits with code 1."""


# ----------------------------------------------------------------------------- experiment spec
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


@dataclass(frozen=True)
class Verdict:
    status: str  # "supported" | "contradicted" | "inconclusive"
    statistic: str  # what was measured, in words and numbers
    weak: bool = False  # decided by the sign over fewer than three seeds, not by a confidence interval

    @property
    def label(self) -> str:
        return f"{self.status} (weak: few seeds)" if self.weak else self.status

    def __post_init__(self) -> None:
        if self.status not in ("supported", "contradicted", "inconclusive"):
            raise ValueError(f"bad verdict status {self.status!r}")


@dataclass(frozen=True)
class Claim:
    """One sentence of the lecture and the test that decides it from per-seed run metrics."""

    slide: str
    statement: str
    check: Callable[[Results], Verdict]


@dataclass(frozen=True)
class Table:
    """A results table: some of the experiment's variants, some metrics, an optional caption."""

    title: str
    variants: tuple[str, ...]
    metrics: tuple[str, ...]
    caption: str = ""
    # (baseline, treatment) pairs whose per-seed change in test error the plot shows
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reference:
    """A published figure shown beside a measured one (never written in as a measurement)."""

    variant: str
    metric: str
    value: float
    source: str


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
    tables: tuple[Table, ...] = ()
    references: tuple[Reference, ...] = ()
    metrics: Mapping[str, str] = field(default_factory=dict)  # metric -> column header
    # (experiment, records by variant, png path, profile) -> writes the plot; None: report.default_plot
    plot: Callable[[Any, dict, Any, str], None] | None = None
    default_profile: str = "quick"

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


@dataclass
class Results:
    """Per-seed final metrics of one experiment and profile: ``values[variant][metric] -> {seed: x}``."""

    values: dict[str, dict[str, dict[int, float]]]

    def get(self, variant: str, metric: str) -> dict[int, float]:
        return self.values.get(variant, {}).get(metric, {})


def unknown_name(kind: str, name: str, choices: list[str], where: str = "") -> str:
    """'unknown variant 'flipp' of augmentation (did you mean 'flip'?)': the one-line error for a bad name."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (choose from: {', '.join(choices)})"
    return f"unknown {kind} {name!r}{' ' + where if where else ''}{hint}"


# ----------------------------------------------------------------------------- typed configs
def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested dataclass -> plain dict (tuples become lists), for YAML, JSON and W&B."""

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, (tuple, list)):
            return [plain(v) for v in x]
        return x

    return plain(cfg)


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += flat_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], from_text: bool = False) -> None:
    """Set dotted keys on a nested dataclass in place, checking each value against its field type.

    ``from_text`` parses strings as the command line gives them ("0.1", "true", "flip,translate").
    """
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            child = getattr(node, part, None) if dataclasses.is_dataclass(node) else None
            if child is None or not dataclasses.is_dataclass(child):
                raise ReproError(unknown_name("config key", key, flat_keys(cfg)))
            node = child
        fields = {f.name: f for f in dataclasses.fields(node)}
        if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
            raise ReproError(unknown_name("config key", key, flat_keys(cfg)))
        hint = typing.get_type_hints(type(node))[leaf]
        try:
            checked = _parse(value, hint) if from_text else _check(value, hint)
        except (TypeError, ValueError) as e:
            raise ReproError(f"bad value for {key}: {value!r} ({e})") from None
        setattr(node, leaf, checked)
        validate = getattr(node, "validate", None)
        if validate is not None:
            try:
                validate()
            except ValueError as e:
                raise ReproError(f"bad value for {key}: {value!r} ({e})") from None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _parse(text: Any, hint: Any) -> Any:
    """Parse command-line text into a value of type ``hint``."""
    if not isinstance(text, str):
        return _check(text, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(text, arg)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        items = [s.strip() for s in text.split(",") if s.strip()] if text.strip() not in ("", "()") else []
        item_type = args[0] if args else str
        return tuple(_parse(s, item_type) for s in items)
    if hint is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError("expected a number") from None
    if hint is str:
        return text
    raise TypeError(f"cannot parse {_type_name(hint)}")


def _check(value: Any, hint: Any) -> Any:
    """Check (and lightly coerce: int -> float, list -> tuple) a Python value against ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg)
            except (TypeError, ValueError):
                pass
        raise TypeError(f"expected {_type_name(hint)}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TypeError("expected a tuple")
        item_type = args[0] if args else object
        return tuple(_check(v, item_type) if item_type is not object else v for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise TypeError("expected int")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError(f"expected {hint.__name__}")
    return value


def config_from_dict(cfg: Any, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Load a plain dict (as saved in config.yaml) back onto a default config, type-checked."""
    flat: dict[str, Any] = {}

    def walk(d: Mapping[str, Any], pre: str) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(v, f"{pre}{k}.")
            else:
                flat[pre + k] = v

    walk(data, prefix)
    apply_overrides(cfg, flat)
    return cfg


@dataclass
class TrainConfig:
    """How long and how a run trains; the Trainer's hardware options come from the command line."""

    max_epochs: int = 10
    channels_last: bool = True  # NHWC activations: faster convolutions on CPUs and tensor cores
    log_every_n_steps: int = 50
    # a wall-clock cap on training (0: none), for a run that must fit a lent machine's time: when it is
    # reached the run stops after the current step, evaluates and records as usual (the record's steps
    # and `stopped_by_time` say how far it got)
    max_minutes: float = 0.0

    def validate(self) -> None:
        if self.max_epochs < 1:
            raise ValueError("max_epochs must be >= 1")
        if not self.max_minutes >= 0:
            raise ValueError("max_minutes must be >= 0 (0: no limit)")
        if self.log_every_n_steps < 1:
            raise ValueError("log_every_n_steps must be >= 1")
