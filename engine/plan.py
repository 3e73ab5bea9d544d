"""experiment x profile x variants x seeds -> the runs of one command, with their launch options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.errors import ReproError
from engine.config import config_to_dict, read_overrides_file
from engine.identity import identity_text
from engine.launch import Launch, auto_jobs
from engine.records import run_dir
from engine.spec import Experiment

MAX_SEED = 2**32 - 1  # numpy's seeds (Lightning seeds numpy too) stop here


@dataclass
class RunSpec:
    experiment: Experiment
    profile: str
    variant: str
    seed: int
    config: Any
    sets: dict[str, str] = field(default_factory=dict)
    point: str = ""  # a sweep point's name: the run lives under sweeps/ and is never a table's cell

    @property
    def dir(self) -> Path:
        return run_dir(self.experiment.name, self.profile, self.variant, self.seed, self.point)

    @property
    def label(self) -> str:
        where = f"{self.experiment.name}/{self.profile}"
        if self.point:
            where = f"sweeps/{where}/{self.point}"
        return f"{where}/{self.variant}/seed{self.seed}"

    def identity(self, world_size: int, precision) -> str:
        """The run's identity (config.yaml) when trained by ``world_size`` processes at ``precision``."""
        head = (self.experiment.name, self.profile, self.variant, self.seed)
        return identity_text(*head, self.config, world_size, precision)

    def to_dict(self) -> dict:
        """The run itself, as plain data (what a child process or a cluster job is handed)."""
        return {
            "experiment": self.experiment.name,
            "profile": self.profile,
            "variant": self.variant,
            "seed": self.seed,
            "sets": dict(self.sets),
            "point": self.point,
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        """The run ``to_dict`` describes, its config resolved again from the experiment (the identity check of
        the run folder then holds it to what the parent planned)."""
        from engine.registry import get

        exp = get(d["experiment"])
        cfg = exp.resolve(d["variant"], d["profile"], d["sets"])
        return cls(exp, d["profile"], d["variant"], d["seed"], cfg, dict(d["sets"]), d.get("point", ""))

    @property
    def tags(self) -> tuple[str, ...]:
        return ("sweep",) if self.point else ()


def plan(
    exp: Experiment,
    profile: str,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    sets: dict[str, str] | None = None,
    sweep: bool = False,
) -> list[RunSpec]:
    """Every run of one invocation, with fully resolved (and so validated) configs; ``sweep``: runs of a sweep
    point (their folder is named by their ``--set`` values, under sweeps/)."""
    prof = exp.profile(profile)
    names = variants or exp.variant_names(profile)
    for name in names:
        exp.variant(name)  # unknown names fail here, before anything runs
    seeds = seeds if seeds is not None else prof.seed_list
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise ReproError(f"seeds must be in 0..{MAX_SEED}")
    specs = []
    for v in names:
        point = point_name(exp.resolve(v, profile, sets), sets or {}) if sweep else ""
        specs += [RunSpec(exp, profile, v, s, exp.resolve(v, profile, sets), dict(sets or {}), point) for s in seeds]
    return specs


def point_name(cfg: Any, sets: dict[str, str]) -> str:
    """A sweep point's folder name: its settings as the config holds them (so 1e-2 and 0.01 are one point),
    sorted by key, e.g. 'optim.lr=0.01__train.max_epochs=5'; a hash where that would be too long for a folder."""
    import hashlib

    from engine.identity import flatten

    if not sets:
        raise ReproError("a sweep point needs at least one --set value")
    flat = flatten(config_to_dict(cfg))
    parts = []
    for key in sorted(sets):
        value = flat.get(key, sets[key])
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        parts.append(f"{key}={text}".replace("/", "%2F").replace(" ", "_"))
    name = "__".join(parts)
    return name if len(name) <= 120 else f"{name[:100]}__{hashlib.sha256(name.encode()).hexdigest()[:12]}"


# ----------------------------------------------------------------------------- from the command line
def overrides(args) -> dict[str, str]:
    """The run's overrides: the --config file's, then each --set (a later value of a key wins)."""
    return {**(read_overrides_file(args.config) if args.config else {}), **_parse_sets(args.sets)}


def _parse_sets(items: list[str]) -> dict[str, str]:
    sets = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ReproError(f"--set expects KEY=VALUE, got {item!r}")
        sets[key.strip()] = value.strip()
    return sets


def planner(args, sweep: bool = False):
    """From `repro run`'s (or `repro sweep`'s) options: a function (experiment, profile[, overrides]) -> (runs,
    launch), after checking the options that need no experiment."""
    if args.jobs != "auto" and (not args.jobs.isdigit() or int(args.jobs) < 1):
        raise ReproError(f"--jobs must be auto or a number >= 1, got {args.jobs!r}")
    if args.seeds is not None and args.seeds < 1:
        raise ReproError("--seeds must be >= 1")
    devices = str(args.devices)
    here = getattr(args, "launcher", "local") != "slurm"
    Launch(args.accelerator, devices, args.strategy, args.num_nodes, args.precision).validate(here)
    given = overrides(args)

    def plan_one(exp, profile, sets=None):
        first = exp.profile(profile).first_seed  # --seeds N: the profile's first N seeds
        seeds = list(range(first, first + args.seeds)) if args.seeds is not None else args.seed
        specs = plan(exp, profile, args.variant, seeds, given if sets is None else sets, sweep=sweep)
        auto = args.jobs == "auto"
        jobs = auto_jobs(exp.profile(profile), args.accelerator, devices, args.num_nodes) if auto else int(args.jobs)
        return specs, Launch(args.accelerator, devices, args.strategy, args.num_nodes, args.precision, args.wandb, jobs)

    return plan_one
