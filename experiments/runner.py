"""experiment x variant x seed -> runs. Skips finished runs, resumes interrupted ones.

A run folder ``$REPRO_RUNS_DIR/<experiment>/<profile>/<variant>/seed<k>/`` holds ``config.yaml``
(written first), ``checkpoints/last.ckpt`` (every epoch, written atomically), CSV logs, the W&B
run, and ``record.json`` (written atomically, last). A folder with a record is done; one with a
checkpoint and no record resumes from the checkpoint.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback, Checkpoint, Timer
from lightning.pytorch.loggers import CSVLogger

from experiments.spec import Experiment, Profile, ReproError, RunsFailed, config_to_dict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class Launch:
    """Command-line hardware and logging options: where a run executes, not what it computes."""

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


def auto_jobs(profile: Profile, accelerator: str, devices: str, num_nodes: int) -> int:
    """How many runs to train at once by default: one when each run spans several devices or nodes; one
    per GPU; on a CPU-only machine the profile's ``cpu_jobs`` (at most one per core)."""
    if Launch(accelerator, devices, num_nodes=num_nodes).multi_process:
        return 1
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
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

    @property
    def dir(self) -> Path:
        return runs_root() / self.experiment.name / self.profile / self.variant / f"seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.experiment.name}/{self.profile}/{self.variant}/seed{self.seed}"


def is_rank_zero() -> bool:
    """Whether this process is the first of a distributed job (or not in one), from the launchers' variables:
    Lightning's own launcher sets LOCAL_RANK/NODE_RANK, torchrun RANK, SLURM SLURM_PROCID."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"))


def runs_root() -> Path:
    return Path(os.environ.get("REPRO_RUNS_DIR", "runs")).expanduser()


def plan(
    exp: Experiment,
    profile: str,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    sets: dict[str, str] | None = None,
) -> list[RunSpec]:
    """Every run of one invocation, with fully resolved (and so validated) configs."""
    prof = exp.profile(profile)
    names = variants or exp.variant_names(profile)
    for name in names:
        exp.variant(name)  # unknown names fail here, before anything runs
    seeds = seeds if seeds is not None else list(range(prof.seeds))
    if any(s < 0 for s in seeds):
        raise ReproError("seeds must be >= 0")
    return [RunSpec(exp, profile, v, s, exp.resolve(v, profile, sets), dict(sets or {})) for v in names for s in seeds]


# ----------------------------------------------------------------------------- files
def write_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_record(run_dir: Path) -> dict | None:
    path = run_dir / "record.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ReproError(f"{path} is corrupt (not JSON); delete it to rerun that run") from None


def config_text(spec: RunSpec) -> str:
    return yaml.safe_dump(
        {
            "experiment": spec.experiment.name,
            "profile": spec.profile,
            "variant": spec.variant,
            "seed": spec.seed,
            **config_to_dict(spec.config),
        },
        sort_keys=False,
    )


def _check_same_config(spec: RunSpec, text: str) -> None:
    path = spec.dir / "config.yaml"
    if path.is_file() and path.read_text() != text:
        old, new = yaml.safe_load(path.read_text()) or {}, yaml.safe_load(text)
        diff = _first_difference(old, new)
        raise ReproError(
            f"{spec.dir} holds a run with a different config ({diff}); delete that folder or "
            "set REPRO_RUNS_DIR to another folder"
        )


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}{k}.")
    return f"{path.rstrip('.')}: {a!r} there, {b!r} now"


# ----------------------------------------------------------------------------- provenance
@functools.cache
def git_commit() -> tuple[str, bool]:
    """Commit and dirty flag of the project, read once per process (first call: when the runs start),
    so that a record describes the code this process imported, not edits made while it trained.
    A copy of the code without its git folder (a container, a rented GPU) can name its commit in
    ``REPRO_COMMIT`` (``<sha>``, or ``<sha>+dirty``)."""
    if os.environ.get("REPRO_COMMIT"):
        sha = os.environ["REPRO_COMMIT"].strip()
        return sha.removesuffix("+dirty"), sha.endswith("+dirty")
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head or "unknown", bool(dirty)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def hardware(trainer) -> str:
    kind = trainer.accelerator.__class__.__name__.replace("Accelerator", "")
    if kind == "CUDA":
        name = torch.cuda.get_device_name(trainer.strategy.root_device)
        return f"{trainer.world_size}x {name}"
    cpu = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    procs = f"{trainer.world_size} processes x " if trainer.world_size > 1 else ""
    threads = torch.get_num_threads()
    return f"CPU {cpu}, {os.cpu_count()} cores ({procs}{threads} thread{'s' * (threads != 1)} per run)"


# ----------------------------------------------------------------------------- one run
def _wandb_mode(choice: str) -> str | None:
    if choice == "off":
        return None
    if choice != "auto":
        return choice
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "online" if "api.wandb.ai" in netrc.read_text() else "offline"
    except OSError:
        return "offline"


def _wandb_logger(spec: RunSpec, mode: str, config: dict):
    from lightning.pytorch.loggers import WandbLogger

    id_file = spec.dir / "wandb_id.txt"
    if not id_file.is_file():  # one W&B run per run folder, kept across resumes
        write_atomic(id_file, hashlib.sha1(f"{spec.dir.resolve()}{time.time()}".encode()).hexdigest()[:12])
    exp = spec.experiment
    return WandbLogger(
        project=os.environ.get("WANDB_PROJECT", "lecture7-repro"),
        group=f"{exp.name}/{spec.profile}",
        job_type=spec.variant,
        name=f"{spec.variant}-s{spec.seed}",
        id=id_file.read_text().strip(),
        tags=[exp.name, spec.profile, spec.variant],
        config=config,
        save_dir=str(spec.dir),
        resume="allow",
        mode=mode,
        log_model=False,
    )


class LastCheckpoint(Checkpoint):
    """Save ``last.ckpt`` at the end of every training epoch. Lightning calls Checkpoint callbacks after
    the module's own epoch-end hook, so the epoch's history row is in the checkpoint too."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.path, weights_only=False)  # full state, through AtomicCheckpointIO
            if trainer.is_global_zero:  # "epochs done/max", read by the --jobs parent's progress bar
                write_atomic(self.path.parent.parent / "progress", f"{trainer.current_epoch + 1}/{trainer.max_epochs}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file, then rename: a kill -9 mid-save leaves the previous checkpoint intact."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class RngState(Callback):
    """Carry the global RNG states in checkpoints, so ops that draw from them (dropout...) resume exactly
    where an uninterrupted run would be. (Shuffling and augmentation have their own per-epoch streams.)"""

    def state_dict(self):
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)  # torch.load-safe
        state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state):
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _quiet_lightning() -> None:
    """Drop Lightning's advertising tips and a deprecation notice from its own internals."""
    import logging
    import warnings

    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(getattr(f, "_repro", False) for f in logger.filters):
        tips = logging.Filter()
        tips.filter = lambda record: "Tip:" not in record.getMessage()
        tips._repro = True
        logger.addFilter(tips)
    warnings.filterwarnings("ignore", message=".*treespec.*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _resume_point(spec: RunSpec, index: str) -> Path | None:
    """The run's last checkpoint if it can be loaded; a damaged one is removed and the run starts afresh."""
    ckpt = spec.dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return None
    try:
        torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:
        print(f"{index}{spec.label}: unreadable checkpoint ({type(e).__name__}), starting the run afresh")
        ckpt.unlink()
        return None
    return ckpt


def _trainer(spec: RunSpec, launch: Launch, loggers: list) -> L.Trainer:
    devices: Any = int(launch.devices) if launch.devices.isdigit() else launch.devices
    try:
        return L.Trainer(
            max_epochs=spec.config.train.max_epochs,
            max_time=dt.timedelta(minutes=spec.config.train.max_minutes) if spec.config.train.max_minutes else None,
            accelerator=launch.accelerator,
            devices=devices,
            strategy=launch.strategy,
            num_nodes=launch.num_nodes,
            precision=launch.precision,
            logger=loggers,
            callbacks=[LastCheckpoint(spec.dir / "checkpoints" / "last.ckpt"), RngState()],
            plugins=[AtomicCheckpointIO()],
            default_root_dir=str(spec.dir),
            num_sanity_val_steps=0,
            use_distributed_sampler=False,  # ResidentBatches shards by rank itself
            enable_model_summary=False,
            log_every_n_steps=spec.config.train.log_every_n_steps,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as e:  # e.g. --accelerator gpu without a GPU
        raise ReproError(f"bad trainer option: {str(e).splitlines()[0]}") from None


def _record(spec: RunSpec, module, datamodule, trainer: L.Trainer, resumed: bool, seconds: float) -> dict:
    commit, dirty = git_commit()
    return {
        "experiment": spec.experiment.name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seed": spec.seed,
        "metrics": module.summary(),
        "history": module.history,
        **(module.extras() if hasattr(module, "extras") else {}),  # e.g. gradient probes
        "config": config_to_dict(spec.config),
        "sets": spec.sets,
        "provenance": {
            "commit": commit,
            "dirty": dirty,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(trainer),
            "precision": str(trainer.precision),
            "devices": trainer.world_size,
            "steps": trainer.global_step,
            "stopped_by_time": _stopped_by_time(trainer),
            "resumed": resumed,
            "last_session_seconds": round(seconds, 2),
            "params": sum(p.numel() for p in module.parameters()),
            "data": datamodule.data_info(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "lightning": L.__version__},
        },
    }


def _stopped_by_time(trainer: L.Trainer) -> bool:
    """Whether ``train.max_minutes`` ended the training (Lightning's Timer callback ran out)."""
    return any(isinstance(c, Timer) and c.time_remaining("train") <= 0 for c in trainer.callbacks)


def _finish_wandb(loggers: list, record: dict) -> None:
    """W&B config += provenance; summary = the record's final metrics; close the run."""
    for logger in loggers:
        if logger.__class__.__name__ == "WandbLogger":
            prov = record["provenance"]
            logger.experiment.config.update(
                {"provenance": {k: prov[k] for k in ("commit", "dirty", "hardware", "data", "params")}},
                allow_val_change=True,
            )
            logger.experiment.summary.update({**record["metrics"], "params": prov["params"]})
            logger.experiment.finish()


def run_one(spec: RunSpec, launch: Launch, index: str = "") -> dict | None:
    """Train, test and record one run in this process; returns its record (None on other ranks)."""
    _quiet_lightning()
    text = config_text(spec)
    _check_same_config(spec, text)
    record = read_record(spec.dir)
    if record is not None:
        print(f"{index}{spec.label}: finished, skipped")
        return record
    if is_rank_zero():
        write_atomic(spec.dir / "config.yaml", text)
    ckpt = _resume_point(spec, index)
    print(f"{index}{spec.label}: {f'resuming from {ckpt}' if ckpt else 'training'}", flush=True)

    L.seed_everything(spec.seed, workers=True, verbose=False)
    module, datamodule = spec.experiment.build(spec.config, spec.seed)
    loggers = [CSVLogger(str(spec.dir), name="csv", version="")]
    mode = _wandb_mode(launch.wandb)
    if mode:
        loggers.append(
            _wandb_logger(
                spec,
                mode,
                {
                    **config_to_dict(spec.config),
                    "seed": spec.seed,
                    "profile": spec.profile,
                    "variant": spec.variant,
                    "experiment": spec.experiment.name,
                },
            )
        )
    trainer = _trainer(spec, launch, loggers)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    record = _record(spec, module, datamodule, trainer, ckpt is not None, time.perf_counter() - start)
    _finish_wandb(loggers, record)
    write_atomic(spec.dir / "record.json", json.dumps(record, indent=1))
    m = record["metrics"]
    print(f"{index}{spec.label}: done " + ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float)))
    return record


# ----------------------------------------------------------------------------- many runs
def _child_command(spec: RunSpec, launch: Launch) -> list[str]:
    """The CLI command that trains exactly this one run; the parent writes the report once, afterwards."""
    run = ["run", spec.experiment.name, "--profile", spec.profile, "--variant", spec.variant, "--seed", str(spec.seed)]
    cmd = [sys.executable, "-m", "experiments", *run, "--jobs", "1", "--no-report", *launch.cli_args()]
    for k, v in spec.sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def run_all(specs: list[RunSpec], launch: Launch) -> list[dict]:
    """Run every spec: in this process one after another, or as child processes (``--jobs N``, and
    multi-device DDP runs, which Lightning's launcher must start afresh for each run)."""
    git_commit()  # pin the provenance of the code this process runs
    for s in specs:
        _check_same_config(s, config_text(s))
    pending = [s for s in specs if read_record(s.dir) is None]
    print(f"{len(specs)} runs: {len(specs) - len(pending)} finished, {len(pending)} to run")
    _prepare_data(pending)
    externally_launched = "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ
    as_children = len(pending) > 1 and (launch.jobs > 1 or (launch.multi_process and not externally_launched))
    if not as_children:
        for i, spec in enumerate(pending):
            run_one(spec, launch, index=f"[{i + 1}/{len(pending)}] ")
    else:
        _run_children(pending, launch)
    return [r for s in specs if (r := read_record(s.dir)) is not None]


def _prepare_data(specs: list[RunSpec]) -> None:
    """Find, verify and decode every data set the runs need, before any training starts: a missing or
    corrupt copy fails the command at once, and child processes find the decoded cache ready."""
    seen = set()
    for spec in specs:
        key = repr(getattr(spec.config, "data", spec.config))
        if key not in seen:
            seen.add(key)
            _, datamodule = spec.experiment.build(spec.config, spec.seed)
            datamodule.prepare_data()


def _epochs_done(spec: RunSpec) -> int:
    try:
        return int((spec.dir / "progress").read_text().split("/")[0])
    except (OSError, ValueError):
        return 0


def _run_children(pending: list[RunSpec], launch: Launch) -> None:
    """Run each spec as `repro run ... --jobs 1` in a child process, ``launch.jobs`` at a time. With several
    at once their output goes to each run's run.log and this process shows one progress bar, in epochs."""
    from tqdm import tqdm

    jobs = max(1, launch.jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    gpus = _gpu_count()
    running: list[tuple[subprocess.Popen, RunSpec, Any]] = []
    failed: list[RunSpec] = []
    queue = list(enumerate(pending))
    total = sum(spec.config.train.max_epochs for spec in pending)
    bar = tqdm(total=total, unit="epoch", desc=f"{len(pending)} runs, {jobs} at a time", disable=jobs == 1,
               mininterval=1 if sys.stderr.isatty() else 30)  # fmt: skip
    finished_epochs, done = 0, 0
    while queue or running:
        while queue and len(running) < jobs:
            i, spec = queue.pop(0)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            if gpus and jobs > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
            spec.dir.mkdir(parents=True, exist_ok=True)
            log = open(spec.dir / "run.log", "a")
            out = log if jobs > 1 else None  # one job at a time: its own progress bar, on this terminal
            cmd = _child_command(spec, launch)
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
            running.append((proc, spec, log))
            bar.write(f"started {spec.label}" + (f" (log: {spec.dir / 'run.log'})" if out else ""))
        time.sleep(0.2)
        for item in list(running):
            proc, spec, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            done += 1
            finished_epochs += spec.config.train.max_epochs
            record = read_record(spec.dir) if proc.returncode == 0 else None
            if record is None:
                failed.append(spec)
                bar.write(f"[{done}/{len(pending)}] {spec.label}: FAILED (exit {proc.returncode})")
            else:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items() if k.endswith("error"))
                bar.write(f"[{done}/{len(pending)}] {spec.label}: done {shown}")
        progress = finished_epochs + sum(_epochs_done(spec) for _, spec, _ in running)
        if progress > bar.n:
            bar.update(progress - bar.n)
    bar.close()
    if failed:
        raise RunsFailed(
            f"{len(failed)} run(s) failed: " + ", ".join(f"{s.label} (log: {s.dir / 'run.log'})" for s in failed)
        )


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
