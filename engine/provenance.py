"""Where a run's numbers come from: the commit and whether the code differed from it, the machine, the software."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What runs: a change anywhere else (results/, README.md, tests/, bench/) does not change a run's numbers, so it
# does not make a record "dirty". Tables rewritten by `repro report` in particular never mark later runs.
CODE_PATHS = ("experiments", "engine", "lightning_modules", "datamodules", "base", "pyproject.toml")


@functools.cache
def git_commit() -> tuple[str, bool]:
    """Commit and dirty flag of the code, read once per process (first call: when the runs start), so that a
    record describes the code this process imported, not edits made while it trained. Dirty means uncommitted
    changes to tracked files of ``CODE_PATHS``. A copy of the code without its git folder (a container, a
    rented GPU) names its commit in ``REPRO_COMMIT`` (``<sha>``, or ``<sha>+dirty``)."""
    if os.environ.get("REPRO_COMMIT"):
        sha = os.environ["REPRO_COMMIT"].strip()
        return sha.removesuffix("+dirty"), sha.endswith("+dirty")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head or "unknown", bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def hardware(trainer, threads: int) -> str:
    """'1x NVIDIA H100 80GB HBM3', or 'CPU AMD EPYC, 2 cores (1 thread per run)'."""
    import torch

    kind = trainer.accelerator.__class__.__name__.replace("Accelerator", "")
    if kind == "CUDA":
        return f"{trainer.world_size}x {torch.cuda.get_device_name(trainer.strategy.root_device)}"
    procs = f"{trainer.world_size} processes x " if trainer.world_size > 1 else ""
    return f"CPU {cpu_name()}, {os.cpu_count()} cores ({procs}{threads} thread{'s' * (threads != 1)} per run)"


def cpu_capability() -> str:
    """The instruction set PyTorch's CPU kernels use here ('AVX512', 'AVX2', 'DEFAULT', ...): CPU reruns are exact
    only between machines that use the same one."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # torch before 2.1
        return "unknown"


def gpu_stack(trainer) -> dict[str, str]:
    """On a GPU, what makes its reruns exact or not: the device and its compute capability, the driver, the CUDA
    runtime PyTorch was built with and cuDNN ({} on a CPU)."""
    import torch

    if trainer.accelerator.__class__.__name__ != "CUDAAccelerator":
        return {}
    device = trainer.strategy.root_device
    major, minor = torch.cuda.get_device_capability(device)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "device": torch.cuda.get_device_name(device),
        "compute_capability": f"{major}.{minor}",
        "driver": _nvidia_driver(),
        "cuda": str(torch.version.cuda),
        "cudnn": str(cudnn) if cudnn else "none",
    }


def _nvidia_driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        return out[0] if out else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    import lightning
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "lightning": lightning.__version__}
