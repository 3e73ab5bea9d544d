"""Where and how a run executes: the hardware options of a command (``Launch``), how many runs go at once,
the CPU threads of each, and which process of a distributed job this one is."""

from __future__ import annotations

import os
from dataclasses import dataclass

from base.errors import ReproError
from engine.spec import Profile

# Lightning's precision names (its aliases included)
PRECISIONS = (
    "32-true",
    "bf16-mixed",
    "16-mixed",
    "bf16-true",
    "16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "32",
    "16",
    "bf16",
    "64",
)


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
        args = [
            "--accelerator",
            self.accelerator,
            "--devices",
            self.devices,
            "--strategy",
            self.strategy,
            "--num-nodes",
            str(self.num_nodes),
            "--wandb",
            self.wandb,
        ]
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

    def validate(self, here: bool = True) -> None:
        """One-line errors for options Lightning would only reject with a traceback. ``here``: the runs train on
        this machine (not on a cluster's nodes), so a GPU they ask for must be here."""
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
        if here and self.accelerator in ("gpu", "cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ReproError(
                    f"--accelerator {self.accelerator}: no GPU here (torch.cuda.is_available() is "
                    "False); leave it out to train on the CPU"
                )


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


def is_rank_zero() -> bool:
    """Whether this process is the first of a distributed job (or not in one), from the launchers' variables:
    Lightning's own launcher sets LOCAL_RANK/NODE_RANK, torchrun RANK, SLURM SLURM_PROCID."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"))


def threads_for(configured: int, jobs: int) -> int:
    """CPU threads of a run: ``configured`` (its config's train.threads) unless 0, else OMP_NUM_THREADS, else the
    cores divided by the ``jobs`` runs at once."""
    if configured:
        return configured
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // max(1, jobs))
