"""experiment x profile x variants x seeds -> the runs of one command, with their launch options."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamodules.errors import ReproError
from experiments.config import config_to_dict, read_overrides_file
from experiments.records import run_dir
from experiments.spec import Experiment, Profile

# Lightning's precision names (its aliases included)
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true", "transformer-engine",
              "transformer-engine-float16", "32", "16", "bf16", "64")  # fmt: skip
MAX_SEED = 2**32 - 1  # numpy's seeds (Lightning seeds numpy too) stop here


@dataclass(frozen=True)
class Launch:
    """Command-line hardware and logging options: where a run executes. World size and precision change the
    numbers too, so they are part of a run's identity (config.yaml); the rest is not."""

    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | None = None
    wandb: str = "auto"  # auto | online | offline | off
    jobs: int = 1

    def cli_args(self) -> list[str]:
        args = ["--accelerator", self.accelerator, "--devices", self.devices, "--strategy", self.strategy,
                "--num-nodes", str(self.num_nodes), "--wandb", self.wandb]  # fmt: skip
        return args + (["--precision", self.precision] if self.precision else [])

    @property
    def multi_process(self) -> bool:
        devices = self.devices.strip()
        many = (devices.isdigit() and int(devices) > 1) or "," in devices or devices == "-1"
        return many or self.num_nodes > 1

    def world_size(self) -> int:
        """The number of processes a run will use (what Lightning's trainer will report), without starting one."""
        devices = self.devices.strip()
        if devices.isdigit():
            per_node = int(devices)
        elif "," in devices:
            per_node = len([d for d in devices.split(",") if d.strip()])
        elif self.accelerator == "cpu" or self.jobs > 1:  # --jobs gives each child one device
            per_node = 1
        else:
            import torch

            per_node = torch.cuda.device_count() if torch.cuda.is_available() else 1
        return per_node * self.num_nodes

    def precision_name(self) -> str:
        """Lightning's name for the precision option ('bf16' -> 'bf16-mixed', none -> '32-true')."""
        aliases = {None: "32-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}
        return aliases.get(self.precision, self.precision)

    def validate(self) -> None:
        """One-line errors for options Lightning would only reject with a traceback."""
        devices = self.devices.strip()
        if not (devices == "auto" or devices == "-1" or all(p.strip().isdigit() for p in devices.split(","))):
            raise ReproError(
                f"--devices must be a number, a comma-separated list of indices, -1 or auto, got {devices!r}"
            )
        if devices.isdigit() and int(devices) < 1:
            raise ReproError("--devices must be >= 1")
        if self.accelerator not in ("auto", "cpu", "gpu", "cuda", "mps"):
            raise ReproError(f"--accelerator must be auto, cpu, gpu, cuda or mps, got {self.accelerator!r}")
        if self.num_nodes < 1:
            raise ReproError("--num-nodes must be >= 1")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ReproError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.accelerator in ("gpu", "cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ReproError(f"--accelerator {self.accelerator}: no GPU here (torch.cuda.is_available() is "
                                 "False); leave it out to train on the CPU")  # fmt: skip


def auto_jobs(profile: Profile, accelerator: str, devices: str, num_nodes: int) -> int:
    """How many runs to train at once by default: one when each run spans several devices or nodes; one
    per GPU; on a CPU-only machine the profile's ``cpu_jobs`` (at most one per core)."""
    if Launch(accelerator, devices, num_nodes=num_nodes).multi_process:
        return 1
    if accelerator in ("auto", "gpu", "cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    return max(1, min(profile.cpu_jobs, os.cpu_count() or 1))


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

    @property
    def tags(self) -> tuple[str, ...]:
        return ("sweep",) if self.point else ()


def is_rank_zero() -> bool:
    """Whether this process is the first of a distributed job (or not in one), from the launchers' variables:
    Lightning's own launcher sets LOCAL_RANK/NODE_RANK, torchrun RANK, SLURM SLURM_PROCID."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"))


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
    seeds = seeds if seeds is not None else list(range(prof.seeds))
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

    from experiments.records import flatten

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
    seeds = list(range(args.seeds)) if args.seeds is not None else args.seed
    devices = str(args.devices)
    Launch(args.accelerator, devices, args.strategy, args.num_nodes, args.precision).validate()
    given = overrides(args)

    def plan_one(exp, profile, sets=None):
        specs = plan(exp, profile, args.variant, seeds, given if sets is None else sets, sweep=sweep)
        auto = args.jobs == "auto"
        jobs = auto_jobs(exp.profile(profile), args.accelerator, devices, args.num_nodes) if auto else int(args.jobs)
        return specs, Launch(args.accelerator, devices, args.strategy, args.num_nodes, args.precision, args.wandb, jobs)

    return plan_one
