"""``repro status NAME|--all [--profile P]``: each run of a profile, finished / running / queued / failed /
stopped / missing, read from the runs folder and, where there is one, the SLURM queue (it needs none)."""

from __future__ import annotations

import argparse
import fcntl
import os

from base.errors import ReproError
from engine.plan import RunSpec, plan
from engine.records import read_record
from engine.slurm import ACTIVE, QUEUED, job_of, log_tail, queue_states


def add_parser(sub) -> None:
    p = sub.add_parser("status", help="each run of a profile: finished, running, queued, failed or missing")
    p.add_argument("name", nargs="?", help="the experiment (see `repro list`)")
    p.add_argument("--all", action="store_true", help="every experiment of the lecture")
    p.add_argument("--profile", help="default: each experiment's own")


def cmd_status(args: argparse.Namespace) -> int:
    from engine.registry import get, registry

    if args.all == bool(args.name):
        raise ReproError("status needs an experiment name or --all (not both)")
    exps = list(registry().values()) if args.all else [get(args.name)]
    if args.profile and not any(args.profile == p.name for e in exps for p in e.profiles):
        raise ReproError(f"no experiment has a profile {args.profile!r}")
    for exp in exps:
        profile = args.profile or exp.default_profile
        if profile not in [p.name for p in exp.profiles]:
            continue
        specs = plan(exp, profile)
        jobs = {s.label: j for s in specs if (j := job_of(s))}
        states = queue_states(sorted({j["job"] for j in jobs.values()}))
        cells = [(spec, *cell_state(spec, jobs.get(spec.label), states)) for spec in specs]
        counts: dict[str, int] = {}
        for _, state, _ in cells:
            counts[state] = counts.get(state, 0) + 1
        print(f"{exp.name}/{profile}: " + ", ".join(f"{n} {state}" for state, n in counts.items()))
        if not args.all or set(counts) != {"finished"}:
            for spec, state, detail in cells:
                print(f"  {spec.variant}/seed{spec.seed}  {state}{f'  {detail}' if detail else ''}")
    return 0


def cell_state(spec: RunSpec, job: dict | None, states: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """(state, detail) of one run: finished, running (SLURM job and node, or a local process; the epoch),
    queued, failed (the log's last line), stopped (resumable from a checkpoint) or missing."""
    if read_record(spec.dir) is not None:
        return "finished", ""
    state, node = states.get(job["job"], ("", "")) if job else ("", "")
    if state in QUEUED:
        return "queued", f"job {job['job']} ({state.lower()})"
    if state in ACTIVE:
        return "running", f"job {job['job']} on {node or '?'}, epoch {_epoch(spec)}"
    holder = _lock_holder(spec)
    if holder:
        return "running", f"process {holder} on this machine, epoch {_epoch(spec)}"
    if job:
        last = log_tail(spec, 1).strip()
        return "failed", f"job {job['job']}, stopped at epoch {_epoch(spec)}: {last}"
    if (spec.dir / "checkpoints" / "last.ckpt").is_file():
        return "stopped", f"at epoch {_epoch(spec)}; the same run command resumes it"
    return "missing", ""


def _epoch(spec: RunSpec) -> str:
    try:
        return (spec.dir / "progress").read_text().strip()
    except OSError:
        return f"0/{spec.config.train.max_epochs}"


def _lock_holder(spec: RunSpec) -> str:
    """The pid that holds the run folder's lock (a local process training it), '' if none does."""
    try:
        fd = os.open(spec.dir / ".lock", os.O_RDONLY)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return ""
    except BlockingIOError:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
    finally:
        os.close(fd)
