"""Learning-to-Execute training speed: steps per second per run and in all, with several runs at once.

This times the training step of one variant of a profile as a run does it: draw a batch of fresh programs, lay
it out, move it to the device, forward, backward, clip, step. Each set-up starts its runs as separate processes
(one thread each) that time the same stretch together, and prints steps/s per run and in all.

- On a CPU (default): one run alone, 2 at once (how the quick profile runs on 2 cores, ``Profile.cpu_jobs=2``),
  and one run alone with 2 threads (what the two cores would give a single run instead).
- On a GPU (``--device cuda``): the numbers of runs at once in ``--at-once`` (default 1, 8, 21); start CUDA MPS
  first, as ``bench/gpu_common.sh`` does, so that their kernels overlap.

Then the profile's training time projected from the best rate in all: its runs times the steps a run takes to
the end of training (``--runs``, ``--steps-to-end``; defaults per profile: curricula 12 runs of about 3,200
steps, measured at fd7e146; quick 9 runs of about 4,600 (the encoder-decoder's about 2,700, the blind net and the
one LSTM to 5,000-6,000, measured at a66fd4f: blind steps cost less, so this overestimates); full 72 runs of
about 24,000, the estimate beside the profile). Other jobs on the machine slow every number: the load average is
printed first. Best of ``--repeats`` timings.

    python bench/execute_speed.py [--profile quick] [--variant addition-2-baseline-seq2seq] [--steps 150]
    python bench/execute_speed.py --device cuda --profile full --variant addition-9-combined --at-once 1 8 21
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import spawned  # noqa: E402 (bench/, this script's folder)

# (runs, steps per run to the lr rule's end) of a profile, for the projection
PROFILE_SIZE = {"quick": (9, 4600), "curricula": (12, 3200), "scrambled": (6, 3100), "full": (72, 24000)}


def steps_per_second(args, threads: int, seed: int, barrier=None) -> float:
    import torch
    import torch.nn.functional as F

    from datamodules.execute import ProgramDataModule
    from engine.registry import get
    from lightning_modules.nets.program_nets import build_execute_net

    torch.set_num_threads(threads)
    cfg = get("learning-to-execute").resolve(args.variant, args.profile)
    torch.manual_seed(seed)
    net = build_execute_net(cfg.model).to(args.device)
    opt_cls = torch.optim.Adam if cfg.optim.optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(net.parameters(), lr=cfg.optim.lr)
    data, rng = ProgramDataModule(cfg.data, seed), random.Random(seed)  # fresh programs, as a run draws them
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def step() -> None:
        batch = data.draw_batch(rng, cfg.data.batch_size)
        logits, labels = net({k: v.to(args.device, non_blocking=True) for k, v in batch.items()})
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")
        opt.zero_grad(set_to_none=True)
        (loss / cfg.data.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.clip_norm)
        opt.step()

    for _ in range(10):  # warm-up
        step()
    sync()
    if barrier is not None:
        barrier.wait()  # every run of the set-up times the same stretch
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    return args.steps / (time.perf_counter() - t0)


def _worker(args, seed, barrier, out):
    out.put(steps_per_second(args, 1, seed, barrier))


def at_once(args, runs: int) -> list[float]:
    """Steps/s of each of ``runs`` processes (1 thread each) training at once."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(runs), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args, seed, barrier, out)) for seed in range(runs)]
    for p in procs:
        p.start()
    return spawned.collect(procs, out, "timed")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--variant", default="addition-2-baseline-seq2seq")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--at-once", type=int, nargs="+", default=[1, 8, 21], help="on a GPU: runs at once, a set-up each")
    p.add_argument("--steps", type=int, default=150, help="timed steps per measurement (default 150)")
    p.add_argument("--repeats", type=int, default=2, help="timings of each set-up, the best kept (default 2)")
    p.add_argument("--steps-to-end", type=int, help="steps a run takes to the lr rule's end (default: the profile's)")
    p.add_argument("--runs", type=int, help="runs in the profile (default: the profile's)")
    args = p.parse_args()
    import torch

    from base.errors import ReproError
    from engine.registry import get

    try:  # a bad profile or variant, or no GPU: one line, exit 2, before any process starts
        get("learning-to-execute").resolve(args.variant, args.profile)
        if args.device == "cuda" and not torch.cuda.is_available():
            raise ReproError("--device cuda: no GPU here")
    except ReproError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs, steps_to_end = PROFILE_SIZE.get(args.profile, (0, 0))
    runs, steps_to_end = args.runs or runs, args.steps_to_end or steps_to_end

    print(f"{args.profile} / {args.variant} on {args.device}: {args.steps} steps per timing, best of {args.repeats}")
    print(f"load average before (other jobs on the machine): {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    rows = []  # (set-up, steps/s per run, steps/s in all)
    if args.device == "cpu":
        alone = max(steps_per_second(args, 1, 0) for _ in range(args.repeats))
        pair = sum(max((at_once(args, 2) for _ in range(args.repeats)), key=sum))
        wide = max(steps_per_second(args, 2, 0) for _ in range(args.repeats))
        rows = [
            ("one run, 1 thread", alone, alone),
            ("two runs at once, 1 thread each", pair / 2, pair),
            ("one run, 2 threads", wide, wide),
        ]
    else:
        for n in args.at_once:
            total = sum(max((at_once(args, n) for _ in range(args.repeats)), key=sum))
            rows.append((f"{n} run{'s' * (n > 1)} at once", total / n, total))
    first = rows[0][2]
    print(f"\n{'set-up':<34} {'steps/s per run':>16} {'steps/s in all':>15} {'vs first':>9}")
    for name, per, total in rows:
        print(f"{name:<34} {per:>16.1f} {total:>15.1f} {total / first:>9.2f}")

    if runs and steps_to_end:
        name, _, best = max(rows[:2] if args.device == "cpu" else rows, key=lambda r: r[2])
        minutes = runs * steps_to_end / best / 60
        print(
            f"\n{args.profile}: {runs} runs x {steps_to_end} steps at {best:.1f} steps/s in all ({name}): "
            f"{minutes:.1f} minutes of training (evaluations, tests and process starts come on top: about 15 s "
            "per run on a CPU)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
