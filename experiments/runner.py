"""Train, test and record runs: one in this process (``run_one``), or many (``run_all``).

One run: take the run folder's lock, write its identity (config.yaml), resume from its checkpoint if it has
one of the same identity, fit, test, and write ``record.json`` atomically, last. A run already recorded is
skipped. A SIGTERM or SIGINT finishes the current epoch, saves its checkpoint and stops (exit 143 / 130,
with a line saying how to resume); a second one stops at once (the last epoch's checkpoint stays).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Timer

from datamodules.errors import ReproError, RunsFailed
from datamodules.files import remove_stale_temp_files
from experiments import tracking
from experiments.callbacks import (
    AtomicCheckpointIO,
    LastCheckpoint,
    RngState,
    StopAfterEpoch,
    checkpoint_identity,
    identity_mismatch,
)
from experiments.config import config_to_dict
from experiments.plan import Launch, RunSpec, is_rank_zero
from experiments.provenance import cpu_capability, git_commit, hardware, versions
from experiments.records import check_identity, identity_text, read_record, to_json, write_atomic

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class Interrupted(BaseException):
    """A run stopped by a signal (BaseException: nothing on the way catches it by accident)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)


# ----------------------------------------------------------------------------- one trainer per folder
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


# ----------------------------------------------------------------------------- signals
class StopOnSignal:
    """SIGTERM / SIGINT: the first asks the trainer to stop after the current epoch's checkpoint; a second
    stops at once. ``received`` is the first signal's number (0: none)."""

    def __init__(self):
        self.received = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.received:
            raise Interrupted(signum, "stopped at once; the same command resumes from the last epoch's checkpoint")
        self.received = signum
        print(f"received {signal.Signals(signum).name}: stopping after this epoch's checkpoint (again: at once)",
              flush=True)  # fmt: skip

    def __enter__(self):
        for s in EXIT_CODES:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


# ----------------------------------------------------------------------------- one run
def threads_for(spec: RunSpec, launch: Launch) -> int:
    """CPU threads of a run: the config's, else OMP_NUM_THREADS, else the cores divided by the runs at once."""
    if spec.config.train.threads:
        return spec.config.train.threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 1) // max(1, launch.jobs))


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


def _trainer(spec: RunSpec, launch: Launch, callbacks: list, loggers: list) -> L.Trainer:
    devices: Any = int(launch.devices) if launch.devices.isdigit() else launch.devices
    train = spec.config.train
    try:
        return L.Trainer(
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
            log_every_n_steps=train.log_every_n_steps,
        )
    except (MisconfigurationException, ValueError, RuntimeError, TypeError) as e:  # --accelerator gpu, no GPU
        raise ReproError(f"bad trainer option: {str(e).splitlines()[0]}") from None


def _without_lightnings_sigterm(trainer) -> None:
    """Lightning's own SIGTERM handler would end the epoch at the next batch, where no checkpoint can resume
    exactly, and under DDP it broadcasts from inside the handler on the signalled rank alone, a collective the
    other ranks never join: the pair hangs. ``StopOnSignal`` and ``StopAfterEpoch`` do the job instead (the
    ranks agree at the epoch's end), so Lightning's handler is made a no-op (Lightning has no option for it: its
    signal connector registers the bound method, which an instance attribute shadows)."""
    trainer._signal_connector._sigterm_notifier_fn = lambda signum, frame: None


def _cluster_plugins() -> list:
    """Under SLURM, Lightning's own requeue (a checkpoint taken mid-epoch on SIGUSR1) is switched off: a mid-epoch
    checkpoint would not resume exactly. A preempted run gets SIGTERM, finishes its epoch, saves and exits 143;
    the requeued job (sbatch --requeue) runs the same command and resumes from that checkpoint."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _resume_point(spec: RunSpec, identity: str, index: str) -> Path | None:
    """The run's last checkpoint if it is readable and belongs to this run; a damaged one is removed and the
    run starts afresh; one of another run (another config, world size or precision) is refused."""
    ckpt = spec.dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return None
    try:
        theirs = checkpoint_identity(ckpt)
    except OSError as e:  # the disk, not the file: a transient error must not throw the training away
        raise ReproError(f"{ckpt} cannot be read ({e.strerror or e}); it is kept: fix the cause and run the same "
                         "command again") from None
    except Exception as e:  # the file parses as no checkpoint (truncated, not a zip, a foreign pickle): damaged
        print(f"{index}{spec.label}: damaged checkpoint ({type(e).__name__}), starting the run afresh")
        ckpt.unlink()
        return None
    if theirs != identity:
        raise ReproError(identity_mismatch(ckpt, theirs, identity))
    return ckpt


def _stopped_by_time(trainer) -> bool:
    """Whether ``train.max_minutes`` ended the training (Lightning's Timer callback ran out)."""
    return any(isinstance(c, Timer) and c.time_remaining("train") <= 0 for c in trainer.callbacks)


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
        },
    }


def run_one(spec: RunSpec, launch: Launch, index: str = "") -> dict | None:
    """Train, test and record one run in this process; returns its record (None on other ranks)."""
    record = read_record(spec.dir)
    if record is not None:
        print(f"{index}{spec.label}: finished, skipped")
        return record
    lock = folder_lock(spec.dir, spec.label) if is_rank_zero() else contextlib.nullcontext()
    with lock, StopOnSignal() as stop:
        return _train(spec, launch, index, stop)


def _train(spec: RunSpec, launch: Launch, index: str, stop: StopOnSignal) -> dict | None:
    # what the run is, checked against the folder and its checkpoint before anything is built or written (again
    # under the lock: another command may have trained here while this one waited)
    identity = identity_text(spec.experiment.name, spec.profile, spec.variant, spec.seed, spec.config,
                             launch.world_size(), launch.precision_name())  # fmt: skip
    check_identity(spec.dir, identity)
    record = read_record(spec.dir)  # finished while this process waited for the lock
    if record is not None:
        print(f"{index}{spec.label}: finished, skipped")
        return record
    _quiet_lightning()
    for folder in (spec.dir, spec.dir / "checkpoints"):  # what a process killed mid-write left behind
        remove_stale_temp_files(folder)
    threads = threads_for(spec, launch)
    torch.set_num_threads(threads)
    L.seed_everything(spec.seed, workers=True, verbose=False)
    module, datamodule = spec.experiment.build(spec.config, spec.seed)
    if spec.config.train.compile:
        module.compile_net(spec.config.train.compile)
    ckpt = _resume_point(spec, identity, index)
    loggers, mode = _wandb_logger(spec, launch, identity)
    checkpoint = LastCheckpoint(spec.dir / "checkpoints" / "last.ckpt", identity)
    stop_after = StopAfterEpoch(lambda: stop.received)
    callbacks = [stop_after, checkpoint, RngState()]
    if loggers and mode == "offline":  # W&B cannot resume an offline run: the restored epochs are logged again
        callbacks.append(tracking.replay_callback())
    trainer = _trainer(spec, launch, callbacks, loggers)
    _without_lightnings_sigterm(trainer)
    actual = identity_text(spec.experiment.name, spec.profile, spec.variant, spec.seed, spec.config,
                           trainer.world_size, trainer.precision)  # fmt: skip
    if actual != identity:  # the trainer settled the devices otherwise than expected (e.g. "auto" on a GPU node)
        identity = checkpoint.identity = actual
        check_identity(spec.dir, identity)
        ckpt = _resume_point(spec, identity, index)
    if is_rank_zero():
        write_atomic(spec.dir / "config.yaml", identity)
    print(f"{index}{spec.label}: {f'resuming from {ckpt}' if ckpt else 'training'}", flush=True)
    start = time.perf_counter()
    with _other_ranks(spec, trainer):
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt) if ckpt else None)
    if stop.received or stop_after.stopped:  # this rank's signal, or another rank's (they stop together)
        raise Interrupted(stop.received or signal.SIGTERM, f"{spec.label}: stopped after epoch "
                          f"{trainer.current_epoch}, checkpoint saved; the same command resumes from it")
    with _other_ranks(spec, trainer):
        trainer.test(module, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    record = _record(spec, module, datamodule, trainer, ckpt is not None, time.perf_counter() - start, threads)
    if loggers:
        tracking.finish(loggers[0], record, identity)
    write_atomic(spec.dir / "record.json", to_json(record))
    m = record["metrics"]
    done = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if isinstance(v, float) and k != "diverged")
    print(f"{index}{spec.label}: {'DIVERGED, ' if m.get('diverged') else ''}done {done}")
    return record


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
        raise RunsFailed(f"{spec.label}: another process of this {trainer.world_size}-process run stopped ({why}); "
                         "the same command resumes from the last checkpoint") from None


def _peer_lost(e: BaseException) -> bool:
    import torch.distributed as dist

    text = str(e).lower()
    lost = ("connection closed", "connection reset", "broken pipe", "peer", "timed out", "nccl", "gloo")
    return isinstance(e, getattr(dist, "DistError", ())) or any(w in text for w in lost)


def _wandb_logger(spec: RunSpec, launch: Launch, identity: str) -> tuple[list, str | None]:
    """The run's W&B logger (rank zero only; none with --wandb off), and the mode."""
    from experiments.evidence import describe_settings

    mode = tracking.wandb_mode(launch.wandb)
    if mode is None or not is_rank_zero():
        return [], mode
    deviation = describe_settings(spec.sets, launch.world_size(), launch.precision_name())
    ident = tracking.identity(spec.experiment.name, spec.profile, spec.variant, spec.seed, deviation, spec.tags)
    return [tracking.logger(spec.dir, ident, tracking.run_config(spec, launch, identity), mode)], mode


# ----------------------------------------------------------------------------- many runs
def run_all(specs: list[RunSpec], launch: Launch) -> list[dict]:
    """Run every spec: in this process one after another, or as child processes (``--jobs N``, and
    multi-device DDP runs, which Lightning's launcher must start afresh for each run)."""
    git_commit()  # pin the provenance of the code this process runs
    for s in specs:
        check_identity(s.dir, identity_text(s.experiment.name, s.profile, s.variant, s.seed, s.config,
                                            launch.world_size(), launch.precision_name()), say=True)  # fmt: skip
    pending = [s for s in specs if read_record(s.dir) is None]
    print(f"{len(specs)} runs: {len(specs) - len(pending)} finished, {len(pending)} to run")
    tracking.wandb_mode(launch.wandb)  # online without a key: one line now, not a traceback in the first run
    prepare_data(pending, launch.world_size())
    externally_launched = "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ
    as_children = len(pending) > 1 and (launch.jobs > 1 or (launch.multi_process and not externally_launched))
    if not as_children:
        for i, spec in enumerate(pending):
            run_one(spec, launch, index=f"[{i + 1}/{len(pending)}] ")
    else:
        from experiments.pool import run_children  # (the pool imports this module)

        run_children(pending, launch)
    return [r for s in specs if (r := read_record(s.dir)) is not None]


def prepare_data(specs: list[RunSpec], world_size: int = 1) -> None:
    """Find, verify and decode every data set the runs need, before any training starts: a missing or
    corrupt copy fails the command at once, and child processes find the decoded cache ready. Data that
    cannot be split across ``world_size`` processes is refused here too, once, not in every run."""
    seen = set()
    for spec in specs:
        key = repr(getattr(spec.config, "data", spec.config))
        if key not in seen:
            seen.add(key)
            _, datamodule = spec.experiment.build(spec.config, spec.seed)
            if world_size > 1 and not getattr(datamodule, "shards", False):
                raise ReproError(f"{spec.experiment.name}'s data cannot be split across processes; run it on one "
                                 "device (without --devices)")  # fmt: skip
            data = getattr(spec.config, "data", None)
            for name, size in (vars(data) if data is not None and hasattr(data, "__dict__") else {}).items():
                if name.endswith("batch_size") and isinstance(size, int) and world_size > 1 and size % world_size:
                    raise ReproError(f"data.{name} {size} does not split evenly over {world_size} processes: choose "
                                     f"--devices that divides it, or --set data.{name}=...")  # fmt: skip
            datamodule.prepare_data()
