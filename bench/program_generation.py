"""Learning-to-Execute data generation speed: can fresh examples every epoch keep up with training?

Times ``datamodules.programs.draw`` (generation plus rejection by split, as training uses it) in one process:
programs/second and characters/second (input + GO + target, what the model reads) for the program task at
several (length, nesting), the original code's default target 6/3 among them, and addition of 9-digit numbers.
Then the time to draw one batch of examples as a fraction of a training step's time budget: well under 1
means generation cannot be the bottleneck, even without worker processes. Best of a few repeats.

    python bench/program_generation.py [--step-ms 50] [--batch 100] [--seconds 2] [--split train]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.programs import GO, SPLITS, draw  # noqa: E402

CASES = (("program", 2, 1), ("program", 4, 2), ("program", 6, 3), ("program", 9, 4), ("addition", 9, 1))


def rate(task: str, length: int, nesting: int, split: int, seconds: float) -> tuple[float, float]:
    """(examples/s, characters/s) of draw, the best of 3 timings of about seconds/3 each."""
    rng, best = random.Random(0), (0.0, 0.0)
    n = 200
    for _ in range(3):
        while True:
            chars = 0
            t0 = time.perf_counter()
            for _ in range(n):
                ex = draw(task, length, nesting, rng, split)
                chars += len(ex.input) + len(GO) + len(ex.target)
            dt = time.perf_counter() - t0
            if dt >= seconds / 3 / 4:  # long enough to time
                break
            n *= 4
        best = max(best, (n / dt, chars / dt))
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--step-ms", type=float, default=50.0, help="budgeted training step time, ms (default 50)")
    p.add_argument("--batch", type=int, default=100, help="examples per batch (the paper: 100)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing per case, about (default 2)")
    p.add_argument("--split", default="train", choices=SPLITS)
    args = p.parse_args()
    split = SPLITS.index(args.split)

    print(f"draw(), {args.split} split, one process, Python {sys.version.split()[0]}")
    print(f"{'task':<9} {'length':>6} {'nesting':>7} {'examples/s':>11} {'chars/s':>11} {'chars/example':>13}")
    rates = {}
    for task, length, nesting in CASES:
        per_s, chars_s = rate(task, length, nesting, split, args.seconds)
        rates[task, length, nesting] = per_s
        print(f"{task:<9} {length:>6} {nesting:>7} {per_s:>11,.0f} {chars_s:>11,.0f} {chars_s / per_s:>13.1f}")

    print(f"\none batch of {args.batch} vs a training step budget of {args.step_ms:g} ms:")
    for (task, length, nesting), per_s in rates.items():
        batch_ms = 1000 * args.batch / per_s
        print(f"  {task} {length}/{nesting}: {batch_ms:.2f} ms = {batch_ms / args.step_ms:.3f} of a step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
