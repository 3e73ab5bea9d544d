"""Many runs at once, each a child process (``repro run ... --jobs 1``), ``launch.jobs`` at a time.

Children die with their parent: each asks the kernel for a SIGTERM when its parent dies (Linux), and watches
its parent's pid otherwise, so a kill -9 of the parent leaves no orphan training on; each run folder's lock
keeps a rerun from starting a second copy of a run that is still alive. A SIGTERM or SIGINT to the parent
is passed on to the children (which finish their epoch, save and stop) before it exits 143 / 130.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from base.errors import RunsFailed
from engine.launch import Launch, threads_for
from engine.plan import RunSpec
from engine.records import read_record
from engine.signals import EXIT_CODES, Interrupted

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
    """The command of a child that trains exactly this one run, handed over whole (its spec and launch as JSON);
    the parent reports once, afterwards."""
    handed = {"run": spec.to_dict(), "launch": dataclasses.asdict(dataclasses.replace(launch, jobs=1))}
    return [sys.executable, "-m", "engine", "_run-one", json.dumps(handed)]


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
    goes to run.log. A SIGTERM or SIGINT is passed on to the running children, which save and stop."""
    pool = _Pool(pending, launch, lecture_bar)
    old = {s: signal.signal(s, lambda signum, frame: pool.forward(signum)) for s in EXIT_CODES}
    try:
        pool.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if lecture_bar is None:
            pool.bar.close()
    if pool.received:
        saved = ", ".join(f"{s.label} at epoch {_epochs_done(s)}" for s in pool.started if read_record(s.dir) is None)
        raise Interrupted(
            pool.received[0],
            f"stopped ({saved or 'no run had started'}); the runs saved their last epoch, and the same command "
            "resumes them",
        )
    if pool.failed:
        raise RunsFailed(
            f"{len(pool.failed)} run(s) failed: "
            + ", ".join(f"{s.label} (log: {s.dir / 'run.log'})" for s in pool.failed)
        )


class _Pool:
    """The children of one ``run_children`` call: a queue, the running processes, what ended how."""

    def __init__(self, pending: list[RunSpec], launch: Launch, lecture_bar):
        from tqdm import tqdm

        self.pending, self.launch, self.lecture_bar = pending, launch, lecture_bar
        self.jobs = max(1, launch.jobs)
        self.quiet = self.jobs > 1 or lecture_bar is not None  # one job at a time: its own progress bar, here
        self.gpus = _gpu_count()
        self.queue = list(enumerate(pending))
        self.running: list[tuple[subprocess.Popen, RunSpec, Any]] = []
        self.started: list[RunSpec] = []
        self.failed: list[RunSpec] = []
        self.received: list[int] = []
        self.finished_epochs = self.done = 0
        self.bar = lecture_bar or tqdm(
            total=sum(spec.config.train.max_epochs for spec in pending),
            unit="epoch",
            desc=f"{len(pending)} runs, {self.jobs} at a time",
            disable=self.jobs == 1,
            mininterval=1 if sys.stderr.isatty() else 30,
        )

    def run(self) -> None:
        while (self.queue and not self.received) or self.running:
            while self.queue and len(self.running) < self.jobs and not self.received:
                self.start(*self.queue.pop(0))
            time.sleep(0.2)
            for item in list(self.running):
                if item[0].poll() is not None:
                    self.running.remove(item)
                    self.ended(*item)
            if self.lecture_bar is None:
                progress = self.finished_epochs + sum(_epochs_done(spec) for _, spec, _ in self.running)
                if progress > self.bar.n:
                    self.bar.update(progress - self.bar.n)

    def forward(self, signum: int, say: bool = True) -> None:
        """A signal to this process, or one a child ended by: every running child gets it, and no more start."""
        if say and not self.received:
            self.bar.write(
                f"received {signal.Signals(signum).name}: passing it to the running runs, which save and stop"
            )
        self.received.append(signum)
        for proc, _, _ in self.running:
            if proc.poll() is None:
                proc.send_signal(signum)

    def start(self, i: int, spec: RunSpec) -> None:
        threads = threads_for(spec.config.train.threads, self.launch.jobs)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), **{PARENT_ENV: str(os.getpid())})
        if self.gpus and self.jobs > 1:
            env["CUDA_VISIBLE_DEVICES"] = str(i % self.gpus)
        spec.dir.mkdir(parents=True, exist_ok=True)
        log = open(spec.dir / "run.log", "a")
        out = log if self.quiet else None
        proc = subprocess.Popen(
            _child_command(spec, self.launch),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.running.append((proc, spec, log))
        self.started.append(spec)
        self.bar.write(f"started {spec.label}" + (f" (log: {spec.dir / 'run.log'})" if out else ""))

    def ended(self, proc: subprocess.Popen, spec: RunSpec, log) -> None:
        log.close()
        self.done += 1
        self.finished_epochs += spec.config.train.max_epochs
        where = f"[{self.done}/{len(self.pending)}] {spec.label}"
        record = read_record(spec.dir) if proc.returncode == 0 else None
        stopped = {code: signum for signum, code in EXIT_CODES.items()}.get(proc.returncode)
        if record is None and stopped and not self.received:  # signalled itself (a rank, a scheduler's notice):
            self.bar.write(f"{where}: stopped by a signal; the others save and stop")
            self.forward(stopped, say=False)  # the command stops as if it had received it
        elif record is None and not self.received:
            self.failed.append(spec)
            self.bar.write(f"{where}: FAILED (exit {proc.returncode})")
        elif record is not None:
            m = record["metrics"]
            shown = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if k.endswith("error") and isinstance(v, float))
            self.bar.write(f"{where}: done {shown}")
        if self.lecture_bar is not None:
            self.lecture_bar.update(1)
