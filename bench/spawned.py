"""The benches' runs at once, each in its own process: their results, or one line when one of them dies."""

from __future__ import annotations

import queue


def collect(procs: list, results, what: str) -> list:
    """One result from each of ``procs`` (started), read from the queue ``results``. A process that exits with
    an error stops the others and the bench, instead of leaving it waiting for a result that never comes."""
    out = []
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=5))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode]
            if failed:
                for p in procs:
                    p.kill()
                raise SystemExit(f"a {what} run exited with {failed[0]}") from None
    for p in procs:
        p.join()
    return out
