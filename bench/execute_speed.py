"""Learning-to-Execute training speed on this CPU: steps per second per run, alone and 2 at once.

A profile's runs go 2 at a time on a 2-core machine (``Profile.cpu_jobs=2``, one thread per run). This times
the training step of one variant of a profile (default: the quick profile's encoder-decoder on 2-digit
additions at the target, i.e. the baseline curriculum) as a run does it: draw a batch of fresh programs, lay
it out, forward, backward, clip, step. Three set-ups, side by side:

- one run alone, 1 thread;
- two runs at once, 1 thread each (how the profile runs): per run and in all;
- one run alone with 2 threads (what the two cores would give a single run instead).

Then the quick profile's wall time projected from the rate in all with 2 at once and the steps its runs take
to the end (``--steps-to-end``: 3,400, from the pilot of the 50-step windows; 1,985 at the earlier 20-step
ones). Other jobs on the machine slow every number: the load average is printed first. Best of
``--repeats`` timings.

    python bench/execute_speed.py [--profile quick] [--variant addition-2-baseline-seq2seq] [--steps 150]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def steps_per_second(profile: str, variant: str, steps: int, threads: int, seed: int, barrier=None) -> float:
    import torch
    import torch.nn.functional as F

    from datamodules.execute import Curriculum, ProgramBatches
    from experiments import get
    from lightning_modules.nets.program_nets import build_execute_net

    torch.set_num_threads(threads)
    cfg = get("learning-to-execute").resolve(variant, profile)
    cfg.data.steps_per_epoch = steps + 10
    torch.manual_seed(seed)
    net = build_execute_net(cfg.model)
    opt_cls = torch.optim.Adam if cfg.optim.optimizer == "adam" else torch.optim.SGD
    opt = opt_cls(net.parameters(), lr=cfg.optim.lr)
    batches = iter(ProgramBatches(cfg.data, Curriculum(cfg.data), seed))

    def step() -> None:
        logits, labels = net(next(batches))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum")
        opt.zero_grad(set_to_none=True)
        (loss / cfg.data.batch_size).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.clip_norm)
        opt.step()

    for _ in range(10):  # warm-up
        step()
    if barrier is not None:
        barrier.wait()  # both runs time the same stretch
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def _worker(args, seed, barrier, out):
    out.put(steps_per_second(args.profile, args.variant, args.steps, 1, seed, barrier))


def two_at_once(args) -> list[float]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(args, seed, barrier, out)) for seed in (0, 1)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return rates


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--variant", default="addition-2-baseline-seq2seq")
    p.add_argument("--steps", type=int, default=150, help="timed steps per measurement (default 150)")
    p.add_argument("--repeats", type=int, default=2, help="timings of each set-up, the best kept (default 2)")
    p.add_argument("--steps-to-end", type=int, default=3400, help="steps a run takes to the lr rule's end")
    p.add_argument("--runs", type=int, default=15, help="runs in the profile (default 15: 5 variants x 3 seeds)")
    args = p.parse_args()

    print(f"{args.profile} / {args.variant}: {args.steps} steps per timing, best of {args.repeats}")
    print(f"load average before (other jobs on the machine): {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    alone = max(steps_per_second(args.profile, args.variant, args.steps, 1, 0) for _ in range(args.repeats))
    pair = max((two_at_once(args) for _ in range(args.repeats)), key=sum)
    wide = max(steps_per_second(args.profile, args.variant, args.steps, 2, 0) for _ in range(args.repeats))

    print(f"\n{'set-up':<34} {'steps/s per run':>16} {'steps/s in all':>15} {'vs alone':>9}")
    print(f"{'one run, 1 thread':<34} {alone:>16.1f} {alone:>15.1f} {1:>9.2f}")
    per = sum(pair) / 2
    print(f"{'two runs at once, 1 thread each':<34} {per:>16.1f} {sum(pair):>15.1f} {sum(pair) / alone:>9.2f}")
    print(f"{'one run, 2 threads':<34} {wide:>16.1f} {wide:>15.1f} {wide / alone:>9.2f}")

    minutes = args.runs * args.steps_to_end / sum(pair) / 60
    print(f"\n{args.runs} runs x {args.steps_to_end} steps at {sum(pair):.1f} steps/s in all: {minutes:.1f} minutes of "
          "training (evaluations, tests and process starts come on top: about 15 s per run)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
