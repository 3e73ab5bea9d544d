"""The one path of every command that trains: check each run's identity against its folder, skip the finished
runs and those a SLURM job has queued or running, prepare the data once, launch the rest with one of three
launchers (this process: ``runner.run_one``; local child processes: ``pool.run_children``; SLURM jobs:
``slurm.submit``), gather the records. ``repro run NAME``, ``repro run --all``, ``repro sweep`` and ``repro
verify`` all go through it."""

from __future__ import annotations

import contextlib
import os
import traceback

from base.errors import ReproError, RunsFailed
from engine import tracking
from engine.identity import check_identity
from engine.launch import Launch
from engine.plan import RunSpec
from engine.pool import run_children
from engine.provenance import git_commit
from engine.records import read_record
from engine.runner import run_one
from engine.slurm import SlurmOptions, follow, in_queue, submit


def run_all(specs: list[RunSpec], launch: Launch, slurm: SlurmOptions | None = None) -> list[dict]:
    """Run every spec that has no record and no SLURM job queued or running: here, or (``slurm``) as one job
    array; returns the records of all of them that have one afterwards (with SLURM: after ``--wait``)."""
    git_commit()  # pin the provenance of the code this process runs
    pending = unfinished(specs, launch)
    print(f"{len(specs)} runs: {len(specs) - len(pending)} finished, {len(pending)} to run")
    tracking.wandb_mode(launch.wandb)  # online without a key: one line now, not a traceback in the first run
    if slurm is not None:
        submit_runs([(s, launch) for s in pending], slurm, f"repro-{specs[0].experiment.name}" if specs else "repro")
    else:
        launch_runs(pending, launch)
    return [r for s in specs if (r := read_record(s.dir)) is not None]


def submit_runs(runs: list[tuple[RunSpec, Launch]], opts: SlurmOptions, name: str) -> None:
    """The runs as one SLURM job array (their data prepared first: the jobs find it decoded); with ``--wait``,
    followed to their end."""
    if not runs:
        return
    for world, group in _by_world(runs).items():
        prepare_data(group, world)
    ids = submit(runs, opts, name)
    what = f"job {ids[0]}" if len(ids) == 1 else f"job array {ids[0].split('_')[0]} (tasks 0-{len(ids) - 1})"
    print(f"submitted {len(ids)} run(s) as SLURM {what}; logs: <run folder>/slurm.log")
    if opts.wait:
        follow([s for s, _ in runs], ids)
    else:
        print(
            "follow them: repro status NAME (or --all); the same command again submits only what is neither "
            "finished nor queued nor running"
        )


def _by_world(runs: list[tuple[RunSpec, Launch]]) -> dict[int, list[RunSpec]]:
    out: dict[int, list[RunSpec]] = {}
    for spec, launch in runs:
        out.setdefault(launch.world_size(), []).append(spec)
    return out


def unfinished(specs: list[RunSpec], launch: Launch) -> list[RunSpec]:
    """The runs without a record and without a SLURM job queued or running, after checking every folder's
    identity: a folder that holds another run stops the command before anything runs."""
    for s in specs:
        check_identity(s.dir, s.identity(launch.world_size(), launch.precision_name()), say=True)
    pending = [s for s in specs if read_record(s.dir) is None]
    queued = in_queue(pending)
    for label, job in queued.items():
        print(f"{label}: SLURM job {job} is queued or running it, skipped")
    return [s for s in pending if s.label not in queued]


def launch_runs(pending: list[RunSpec], launch: Launch, bar=None) -> None:
    """Prepare the data, then train: in this process one after another, or as child processes (``--jobs N``, and
    multi-device DDP runs, which Lightning's launcher must start afresh for each run). ``bar``: the progress bar of
    a whole lecture (``repro run --all``): each run's output goes to its run.log, and a crashed run does not stop
    the others."""
    prepare_data(pending, launch.world_size())
    externally_launched = "LOCAL_RANK" in os.environ or "SLURM_PROCID" in os.environ
    as_children = launch.jobs > 1 or (launch.multi_process and not externally_launched)
    # one run of `repro run NAME` trains here (Lightning's DDP launcher starts its other ranks with this command);
    # a lecture's runs go as children whenever their profile asks for it (its command is not theirs)
    if as_children and (len(pending) > 1 or bar is not None):
        run_children(pending, launch, lecture_bar=bar)
    elif bar is None:
        for i, spec in enumerate(pending):
            run_one(spec, launch, index=f"[{i + 1}/{len(pending)}] ")
    else:
        _in_process_logged(pending, launch, bar)


def _in_process_logged(runs: list[RunSpec], launch: Launch, bar) -> None:
    """Runs of a lecture trained in this process (their runs take seconds: a process start each would cost more),
    each run's output going to its run.log."""
    failed = []
    for spec in runs:
        spec.dir.mkdir(parents=True, exist_ok=True)
        with open(spec.dir / "run.log", "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                record = run_one(spec, launch)
            except (ReproError, RunsFailed):
                raise
            except Exception:  # a crash of one run: in its log, and the others go on
                traceback.print_exc(file=log)
                record = None
        if record is None:
            failed.append(spec)
            bar.write(f"{spec.label}: FAILED (log: {spec.dir / 'run.log'})")
        bar.update(1)
    if failed:
        raise RunsFailed(f"{len(failed)} run(s) failed: " + ", ".join(s.label for s in failed))


def prepare_data(specs: list[RunSpec], world_size: int = 1) -> None:
    """Find, verify and decode every data set the runs need, before any training starts: a missing or
    corrupt copy fails the command at once, and child processes find the decoded cache ready. Data that
    cannot be split across ``world_size`` processes is refused here too, once, not in every run."""
    seen = set()
    for spec in specs:
        key = repr(getattr(spec.config, "data", spec.config))
        if key in seen:
            continue
        seen.add(key)
        _, datamodule = spec.experiment.build(spec.config, spec.seed)
        if world_size > 1:
            _check_split(spec, datamodule, world_size)
        datamodule.prepare_data()


def _check_split(spec: RunSpec, datamodule, world_size: int) -> None:
    """One-line errors for data that cannot be split over ``world_size`` processes."""
    if not getattr(datamodule, "shards", False):
        raise ReproError(
            f"{spec.experiment.name}'s data cannot be split across processes; run it on one device (without --devices)"
        )
    data = getattr(spec.config, "data", None)
    for name, size in (vars(data) if data is not None and hasattr(data, "__dict__") else {}).items():
        if name.endswith("batch_size") and isinstance(size, int) and size % world_size:
            raise ReproError(
                f"data.{name} {size} does not split evenly over {world_size} processes: choose --devices that "
                f"divides it, or --set data.{name}=..."
            )
