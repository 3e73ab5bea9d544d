"""Wall time and peak memory of `repro run NAME --profile P` against the profile's budget.

Runs the command in a fresh runs folder (so nothing is skipped) and samples the memory of the whole
process tree (the CLI, its --jobs children, DDP ranks, W&B helpers) every 0.2 s: PSS summed over
the processes (shared pages divided among them), with summed and largest RSS for reference.
Budgets (issue "Foundation"): smoke under 60 s; quick at most 15 min and under 3 GB, on 2 CPU cores.

    python bench/profile_budget.py augmentation --profile quick [--jobs 2] [--keep-cache] [--runs-dir runs]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_SECONDS = {"smoke": 60, "quick": 15 * 60}
BUDGET_BYTES = 3 * 1024**3
PAGE = os.sysconf("SC_PAGE_SIZE")


def _pss(pid: int) -> int:
    """Proportional set size: private pages plus this process's share of pages it shares (torch's
    libraries, the memory-mapped data cache), so the sum over processes is the memory really used."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise OSError("no Pss line")


def tree_memory(root: int) -> tuple[int, int, int]:
    """(sum of PSS, sum of RSS, largest RSS) over ``root`` and all its descendants, read from /proc."""
    parents, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)], rss[int(entry.name)] = ppid, pages * PAGE
    pss_total = rss_total = rss_max = 0
    for pid in rss:
        p = pid
        while p and p != root and p in parents:
            p = parents[p]
        if p == root:
            try:
                pss_total += _pss(pid)
            except OSError:
                pss_total += rss[pid]
            rss_total += rss[pid]
            rss_max = max(rss_max, rss[pid])
    return pss_total, rss_total, rss_max


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--profile", default="quick")
    p.add_argument("--jobs", default="auto")
    p.add_argument(
        "--keep-cache", action="store_true", help="reuse REPRO_CACHE_DIR (default: a fresh cache, so decoding counts)"
    )
    p.add_argument("--runs-dir", help="keep the runs here (must not hold finished runs); default: a temporary folder")
    args, args.extra = p.parse_known_args()  # anything else goes to `repro run` (e.g. --set train.max_epochs=2)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            REPRO_RUNS_DIR=args.runs_dir or f"{tmp}/runs",
            REPRO_RESULTS_DIR=f"{tmp}/results",
            WANDB_MODE="offline",
        )
        if not args.keep_cache:
            env["REPRO_CACHE_DIR"] = f"{tmp}/cache"
        cmd = [
            sys.executable,
            "-m",
            "experiments",
            "run",
            args.name,
            "--profile",
            args.profile,
            "--jobs",
            str(args.jobs),
            *args.extra,
        ]
        start = time.perf_counter()
        # The run's output goes to a file: a pipe nobody reads fills up and blocks the run.
        with open(f"{tmp}/run.log", "w+") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
            peak = [0, 0, 0]  # PSS sum, RSS sum, largest RSS
            while proc.poll() is None:
                peak = [max(a, b) for a, b in zip(peak, tree_memory(proc.pid), strict=True)]
                time.sleep(0.2)
            seconds = time.perf_counter() - start
            if proc.returncode:
                log.seek(0)
                sys.exit(f"`{' '.join(cmd[2:])}` failed ({proc.returncode}): {log.read().strip().splitlines()[-1:]}")
    budget = BUDGET_SECONDS.get(args.profile)
    print(f"repro run {args.name} --profile {args.profile} --jobs {args.jobs} {' '.join(args.extra)}".rstrip())
    print(
        f"  wall time   {seconds:8.1f} s" + (f"   budget {budget} s   ratio {seconds / budget:.2f}" if budget else "")
    )
    gb = 1024**3
    print(
        f"  peak memory {peak[0] / gb:8.2f} GB  budget {BUDGET_BYTES / gb:.0f} GB   ratio {peak[0] / BUDGET_BYTES:.2f}"
        "   (PSS summed over the process tree, sampled every 0.2 s)"
    )
    print(
        f"  for reference: RSS summed {peak[1] / gb:.2f} GB (counts shared libraries once per process), "
        f"largest single process {peak[2] / gb:.2f} GB; "
        f"cache: {'REPRO_CACHE_DIR as set' if args.keep_cache else 'a fresh one'}"
    )


if __name__ == "__main__":
    main()
