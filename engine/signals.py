"""SIGTERM and SIGINT: a run finishes its epoch, saves and stops; the exit code says which signal it was."""

from __future__ import annotations

import signal

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}


class Interrupted(BaseException):
    """A run stopped by a signal (BaseException: nothing on the way catches it by accident)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)


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
        print(
            f"received {signal.Signals(signum).name}: stopping after this epoch's checkpoint (again: at once)",
            flush=True,
        )

    def __enter__(self):
        for s in EXIT_CODES:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
