"""Train, test and record one run in this process (``run_one``); many go through ``engine.orchestrate``.

A run's path reads top to bottom in ``_train``, the helpers after it in the order it calls them: take the run
folder's lock, check and write its identity (config.yaml), build the model and data, resume from its checkpoint
if it has one of the same identity, fit, test, and write ``record.json`` atomically, last. A run already
recorded is skipped. A SIGTERM or SIGINT finishes the current epoch, saves its checkpoint and stops (exit 143 /
130, with a line saying how to resume); a second one stops at once (the last epoch's checkpoint stays).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Timer

from base.errors import ReproError, RunsFailed
from base.files import remove_stale_temp_files, write_atomic
from engine import registration, tracking
from engine.callbacks import (
    AtomicCheckpointIO,
    LastCheckpoint,
    RngState,
    StopAfterEpoch,
    checkpoint_identity,
    identity_mismatch,
)
from engine.config import config_to_dict
from engine.identity import check_identity
from engine.launch import Launch, is_rank_zero, threads_for
from engine.plan import RunSpec
from engine.provenance import cpu_capability, git_commit, gpu_stack, hardware, versions
from engine.records import committed_record, read_record, to_json
from engine.signals import Interrupted, StopOnSignal


@contextlib.contextmanager
def run_one(spec: RunSpec, launch: Launch, index: str = "") -> dict | None:
    """Train, test and record one run in this process; returns its record (None on other ranks)."""
    if (record := _finished(spec, index)) is not None:
        return record
    lock = folder_lock(spec.dir, spec.label) if is_rank_zero() else contextlib.nullcontext()
    with lock, StopOnSignal() as stop:
        return _train(spec, launch, index, stop)


def _finished(spec: RunSpec, index: str) -> dict | None:
    record = read_record(spec.dir)
    if record is not None:
        print(f"{index}{spec.label}: finished, skipped")
    return record


def _train(spec: RunSpec, launch: Launch, index: str, stop: StopOnSignal) -> dict | None:
    # 1. what the run is, checked against the folder before anything is built or written (again under the lock:
    # another command may have trained here while this one waited)
    identity = spec.identity(launch.world_size(), launch.precision_name())
    check_identity(spec.dir, identity)
    if (record := _finished(spec, index)) is not None:  # finished while this process waited for the lock
        return record
    _quiet_lightning()
    remove_stale_temp_files(spec.dir)  # what a process killed mid-write left behind
    remove_stale_temp_files(spec.dir / "checkpoints")

    # 2. the model and its data, seeded; the checkpoint it resumes from
    threads = threads_for(spec.config.train.threads, launch.jobs)
    torch.set_num_threads(threads)
    L.seed_everything(spec.seed, workers=True, verbose=False)
    module, datamodule = spec.experiment.build(spec.config, spec.seed)
    if spec.config.train.compile:
        module.compile_net(spec.config.train.compile)
    ckpt = _resume_point(spec, identity, index)

    # 3. the trainer: a checkpoint each epoch, a stop after one on a signal, W&B on rank zero
    loggers, mode = _wandb_logger(spec, launch, identity)
    checkpoint = LastCheckpoint(spec.dir / "checkpoints" / "last.ckpt", identity)
    stop_after = StopAfterEpoch(lambda: stop.received)
    callbacks = [stop_after, checkpoint, RngState()]
    if loggers and mode == "offline":  # W&B cannot resume an offline run: the restored epochs are logged again
        callbacks.append(tracking.replay_callback())
    trainer = _trainer(spec, launch, callbacks, loggers)
    actual = spec.identity(trainer.world_size, trainer.precision)
    if actual != identity:  # the trainer settled the devices otherwise than expected (e.g. "auto" on a GPU node)
        identity = checkpoint.identity = actual
        check_identity(spec.dir, identity)
        ckpt = _resume_point(spec, identity, index)
    if is_rank_zero():
        write_atomic(spec.dir / "config.yaml", identity)

    # 4. fit; a signal (this rank's, or another rank's: they stop together) ends it after an epoch's checkpoint
    print(f"{index}{spec.label}: {f'resuming from {ckpt}' if ckpt else 'training'}", flush=True)
    start = time.perf_counter()
    with _other_ranks(spec, trainer):
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    if stop.received or stop_after.stopped:
        raise Interrupted(
            stop.received or signal.SIGTERM,
            f"{spec.label}: stopped after epoch {trainer.current_epoch}, checkpoint saved; the same command "
            "resumes from it",
        )

    # 5. test, and the record, written last
    with _other_ranks(spec, trainer):
        trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    record = _record(spec, module, datamodule, trainer, ckpt is not None, time.perf_counter() - start, threads)
    if loggers:
        tracking.finish(loggers[0], record, identity)
    write_atomic(spec.dir / "record.json", to_json(record))
    print(f"{index}{spec.label}: {_summary(record['metrics'])}")
    return record


def _summary(m: dict) -> str:
    done = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float) and k != "diverged")
    return f"{'DIVERGED, ' if m.get('diverged') else ''}done {done}"


@contextlib.contextmanager
def folder_lock(folder: Path, label: str):
    """An OS-level lock on the run folder for as long as this process trains it: a second command for the
    same run stops with one line naming the process that holds it. The kernel drops the lock when the
    process dies, however it dies."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ReproError(
                f"{label} is being trained by process {holder} right now; wait for it or stop it"
            ) from None  # noqa: E501
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


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


def _resume_point(spec: RunSpec, identity: str, index: str) -> Path | None:
    """The run's last checkpoint if it is readable and belongs to this run; a damaged one is removed and the
    run starts afresh; one of another run (another config, world size or precision) is refused."""
    ckpt = spec.dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return None
    try:
        theirs = checkpoint_identity(ckpt)
    except OSError as e:  # the disk, not the file: a transient error must not throw the training away
        raise ReproError(
            f"{ckpt} cannot be read ({e.strerror or e}); it is kept: fix the cause and run the same command again"
        ) from None
    except Exception as e:  # the file parses as no checkpoint (truncated, not a zip, a foreign pickle): damaged
        print(f"{index}{spec.label}: damaged checkpoint ({type(e).__name__}), starting the run afresh")
        ckpt.unlink()
        return None
    if theirs != identity:
        raise ReproError(identity_mismatch(ckpt, theirs, identity))
    return ckpt


def _wandb_logger(spec: RunSpec, launch: Launch, identity: str) -> tuple[list, str | None]:
    """The run's W&B logger (rank zero only; none with --wandb off), and the mode."""
    from engine.evidence import describe_settings

    mode = tracking.wandb_mode(launch.wandb)
    if mode is None or not is_rank_zero():
        return [], mode
    deviation = describe_settings(spec.sets, launch.world_size(), launch.precision_name())
    ident = tracking.identity(spec.experiment.name, spec.profile, spec.variant, spec.seed, deviation, spec.tags)
    return [tracking.logger(spec.dir, ident, tracking.run_config(spec, launch, identity), mode)], mode


def _trainer(spec: RunSpec, launch: Launch, callbacks: list, loggers: list) -> L.Trainer:
    devices: Any = int(launch.devices) if launch.devices.isdigit() else launch.devices
    train = spec.config.train
    try:
        trainer = L.Trainer(
            max_epochs=train.max_epochs,
            max_time=dt.timedelta(minutes=train.max_minutes) if train.max_minutes else None,
            accelerator=launch.accelerator,
            devices=devices,
            strategy=launch.strategy,
            num_nodes=launch.num_nodes,
            precision=launch.precision,
            logger=loggers or False,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO(), *_cluster_plugins()],
            default_root_dir=str(spec.dir),
            num_sanity_val_steps=0,
            use_distributed_sampler=False,  # the DataModules shard by rank themselves (datamodules/base.py)
            enable_model_summary=False,
            enable_progress_bar=sys.stdout.isatty() or "SLURM_JOB_ID" not in os.environ,  # no bars in job logs
            log_every_n_steps=train.log_every_n_steps,
        )
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as e:  # --accelerator gpu, no GPU
        raise ReproError(f"bad trainer option: {str(e).splitlines()[0]}") from None
    _without_lightnings_sigterm(trainer)
    return trainer


def _cluster_plugins() -> list:
    """Under SLURM, Lightning's own requeue (a checkpoint taken mid-epoch on SIGUSR1) is switched off: a mid-epoch
    checkpoint would not resume exactly. A preempted run gets SIGTERM, finishes its epoch, saves and exits 143;
    the requeued job (sbatch --requeue) runs the same command and resumes from that checkpoint."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _without_lightnings_sigterm(trainer) -> None:
    """Lightning's own SIGTERM handler would end the epoch at the next batch, where no checkpoint can resume
    exactly, and under DDP it broadcasts from inside the handler on the signalled rank alone, a collective the
    other ranks never join: the pair hangs. ``StopOnSignal`` and ``StopAfterEpoch`` do the job instead (the
    ranks agree at the epoch's end), so Lightning's handler is made a no-op (Lightning has no option for it: its
    signal connector registers the bound method, which an instance attribute shadows)."""
    trainer._signal_connector._sigterm_notifier_fn = lambda signum, frame: None


@contextlib.contextmanager
def _other_ranks(spec: RunSpec, trainer):
    """A DDP run whose other process died (killed, out of memory, its node lost) fails the collective this one
    waits in: one line that says so, not the communication backend's traceback."""
    try:
        yield
    except RuntimeError as e:
        if trainer.world_size == 1 or not _peer_lost(e):
            raise
        why = str(e).splitlines()[0][:160]
        raise RunsFailed(
            f"{spec.label}: another process of this {trainer.world_size}-process run stopped ({why}); "
            "the same command resumes from the last checkpoint"
        ) from None


def _peer_lost(e: BaseException) -> bool:
    import torch.distributed as dist

    text = str(e).lower()
    lost = ("connection closed", "connection reset", "broken pipe", "peer", "timed out", "nccl", "gloo")
    return isinstance(e, getattr(dist, "DistError", ())) or any(w in text for w in lost)


def _record(spec: RunSpec, module, datamodule, trainer, resumed: bool, seconds: float, threads: int) -> dict:
    commit, dirty = git_commit()
    return {
        "experiment": spec.experiment.name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seed": spec.seed,
        "metrics": module.record_metrics(),
        "history": module.history,
        **module.extras(),  # e.g. gradient probes, samples
        "config": config_to_dict(spec.config),
        "sets": spec.sets,
        # the claims as they were when this run was made, and the earlier versions that saw its cell
        "registration": registration.for_record(
            spec.experiment, committed_record(spec.experiment.name, spec.profile, spec.variant, spec.seed)
        ),
        "provenance": {
            "commit": commit,
            "dirty": dirty,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "hardware": hardware(trainer, threads),
            "precision": str(trainer.precision),
            "devices": trainer.world_size,
            "threads": threads,
            "steps": trainer.global_step,
            "stopped_by_time": _stopped_by_time(trainer),
            "resumed": resumed,
            "last_session_seconds": round(seconds, 2),
            "params": sum(p.numel() for p in module.parameters()),
            "data": datamodule.data_info(),
            "versions": versions(),
            "cpu_capability": cpu_capability(),
            **({"gpu": gpu} if (gpu := gpu_stack(trainer)) else {}),
        },
    }


def _stopped_by_time(trainer) -> bool:
    """Whether ``train.max_minutes`` ended the training (Lightning's Timer callback ran out)."""
    return any(isinstance(c, Timer) and c.time_remaining("train") <= 0 for c in trainer.callbacks)
