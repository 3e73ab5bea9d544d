"""Many runs at once, each a child process (``repro run ... --jobs 1``), ``launch.jobs`` at a time.

Children die with their parent: each asks the kernel for a SIGTERM when its parent dies (Linux), and watches
its parent's pid otherwise, so a kill -9 of the parent leaves no orphan training on; each run folder's lock
keeps a rerun from starting a second copy of a run that is still alive. A SIGTERM or SIGINT to the parent
is passed on to the children (which finish their epoch, save and stop) before it exits 143 / 130.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from datamodules.errors import RunsFailed
from experiments.plan import Launch, RunSpec
from experiments.records import read_record
from experiments.runner import EXIT_CODES, Interrupted, threads_for

PARENT_ENV = "REPRO_PARENT_PID"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent thread's process dies (Linux's PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: watch_parent() covers it


def watch_parent() -> None:
    """In a child run: stop (SIGTERM to itself, so the run saves and exits as on any SIGTERM) once the parent
    that started it is gone. A no-op unless started by run_children. A process that Lightning started for another
    rank of a DDP run inherits the variable, but its parent is rank 0, not the pool's process: it watches rank 0
    (watching the pool's pid, it would signal itself at once and stop alone)."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit():
        return
    watched = os.getppid()  # the pool's process, or rank 0
    if watched == 1:  # orphaned before it started: the parent is gone already
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch():
        while True:
            time.sleep(2)
            if os.getppid() != watched:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, daemon=True).start()


def _child_command(spec: RunSpec, launch: Launch) -> list[str]:
    """The CLI command that trains exactly this one run; the parent reports once, afterwards."""
    run = ["run", spec.experiment.name, "--profile", spec.profile, "--variant", spec.variant, "--seed", str(spec.seed)]
    cmd = [sys.executable, "-m", "experiments", *run, "--jobs", "1", *launch.cli_args()]
    cmd += ["--sweep"] if spec.point else []  # a sweep point's run: its folder is under sweeps/
    for k, v in spec.sets.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def _epochs_done(spec: RunSpec) -> int:
    try:
        return int((spec.dir / "progress").read_text().split("/")[0])
    except (OSError, ValueError):
        return 0


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_children(pending: list[RunSpec], launch: Launch, lecture_bar=None) -> None:
    """Run each spec in a child process, ``launch.jobs`` at a time. With several at once their output goes to
    each run's run.log and this process shows one progress bar, in epochs. ``lecture_bar``: a bar over many
    experiments' runs (``repro run --all``) to advance by one per finished run instead; output then always
    goes to run.log."""
    from tqdm import tqdm

    jobs = max(1, launch.jobs)
    quiet = jobs > 1 or lecture_bar is not None
    gpus = _gpu_count()
    running: list[tuple[subprocess.Popen, RunSpec, Any]] = []
    failed: list[RunSpec] = []
    started: list[RunSpec] = []
    queue = list(enumerate(pending))
    total = sum(spec.config.train.max_epochs for spec in pending)
    bar = lecture_bar or tqdm(total=total, unit="epoch", desc=f"{len(pending)} runs, {jobs} at a time",
                              disable=jobs == 1, mininterval=1 if sys.stderr.isatty() else 30)  # fmt: skip
    received = []

    def forward(signum, frame):
        if not received:
            bar.write(f"received {signal.Signals(signum).name}: passing it to the running runs, which save and stop")
        received.append(signum)
        for proc, _, _ in running:
            if proc.poll() is None:
                proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in EXIT_CODES}
    finished_epochs, done = 0, 0
    try:
        while (queue and not received) or running:
            while queue and len(running) < jobs and not received:
                i, spec = queue.pop(0)
                env = dict(os.environ, OMP_NUM_THREADS=str(threads_for(spec, launch)), **{PARENT_ENV: str(os.getpid())})
                if gpus and jobs > 1:
                    env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)
                spec.dir.mkdir(parents=True, exist_ok=True)
                log = open(spec.dir / "run.log", "a")
                out = log if quiet else None  # one job at a time: its own progress bar, on this terminal
                proc = subprocess.Popen(_child_command(spec, launch), env=env, stdout=out,
                                        stderr=subprocess.STDOUT if out else None, start_new_session=True,
                                        preexec_fn=_die_with_parent)  # fmt: skip
                running.append((proc, spec, log))
                started.append(spec)
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
                stopped = {code: signum for signum, code in EXIT_CODES.items()}.get(proc.returncode)
                if record is None and stopped and not received:  # signalled itself (a rank, a scheduler's notice):
                    bar.write(f"[{done}/{len(pending)}] {spec.label}: stopped by a signal; the others save and stop")
                    received.append(stopped)  # the command stops as if it had received it
                    for other, _, _ in running:
                        if other.poll() is None:
                            other.send_signal(stopped)
                elif record is None and not received:
                    failed.append(spec)
                    bar.write(f"[{done}/{len(pending)}] {spec.label}: FAILED (exit {proc.returncode})")
                elif record is not None:
                    shown = ", ".join(f"{k}={v:.4g}" for k, v in record["metrics"].items()
                                      if k.endswith("error") and isinstance(v, float))  # fmt: skip
                    bar.write(f"[{done}/{len(pending)}] {spec.label}: done {shown}")
                if lecture_bar is not None:
                    lecture_bar.update(1)
            if lecture_bar is None:
                progress = finished_epochs + sum(_epochs_done(spec) for _, spec, _ in running)
                if progress > bar.n:
                    bar.update(progress - bar.n)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if lecture_bar is None:
            bar.close()
    if received:
        saved = ", ".join(f"{s.label} at epoch {_epochs_done(s)}" for s in started if read_record(s.dir) is None)
        raise Interrupted(received[0], f"stopped ({saved or 'no run had started'}); the runs saved their last "
                          "epoch, and the same command resumes them")
    if failed:
        raise RunsFailed(
            f"{len(failed)} run(s) failed: " + ", ".join(f"{s.label} (log: {s.dir / 'run.log'})" for s in failed)
        )
