"""SIGTERM and SIGINT (and, inside a SLURM job, SIGUSR2: the scheduler's notice before the time limit or a
preemption): a run finishes its epoch, saves and stops; the exit code says which signal it was."""

from __future__ import annotations

import os
import signal

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


def stop_signals() -> tuple[int, ...]:
    """The signals that stop a run after its epoch: SIGUSR2 too inside a SLURM job (sbatch --signal=USR2@...)."""
    return (*EXIT_CODES, signal.SIGUSR2) if "SLURM_JOB_ID" in os.environ else tuple(EXIT_CODES)


class Interrupted(BaseException):
    """A run stopped by a signal (BaseException: nothing on the way catches it by accident). ``signum``: the
    first signal received (what the stop was for: SIGUSR2 asks a SLURM job to requeue itself)."""

    def __init__(self, signum: int, message: str, first: int = 0):
        super().__init__(message)
        self.signum = first or signum
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)


class StopOnSignal:
    """The first stop signal asks the trainer to stop after the current epoch's checkpoint; a second stops at
    once. ``received`` is the first signal's number (0: none)."""

    def __init__(self):
        self.received = 0
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.received:
            message = "stopped at once; the same command resumes from the last epoch's checkpoint"
            raise Interrupted(signum, message, first=self.received)
        self.received = signum
        print(
            f"received {signal.Signals(signum).name}: stopping after this epoch's checkpoint (again: at once)",
            flush=True,
        )

    def __enter__(self):
        for s in stop_signals():
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
