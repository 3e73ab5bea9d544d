"""Wall time and peak memory of `repro run NAME --profile P` against the profile's budget.

Runs the command in a fresh runs folder (so nothing is skipped) and samples the memory of the whole
process tree (the CLI, its --jobs children, DDP ranks, W&B helpers) every 0.2 s: PSS summed over
the processes (shared pages divided among them), with summed and largest RSS for reference.
Budgets (issue "Foundation"): smoke under 60 s; quick at most 15 min and under 3 GB, on 2 CPU cores; the
whole lecture at quick (``--all``) at most 2 hours.

    python bench/profile_budget.py augmentation --profile quick [--jobs 2] [--keep-cache] [--runs-dir runs]
    python bench/profile_budget.py --all --profile quick      # every experiment, one after another, and the total
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
LECTURE_SECONDS = {"quick": 2 * 3600}
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


def measure(name: str, profile: str, jobs: str, keep_cache: bool, runs_dir: str | None, extra: list[str]):
    """(wall seconds, [PSS sum, RSS sum, largest RSS] peaks) of one `repro run` in fresh folders."""
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            REPRO_RUNS_DIR=runs_dir or f"{tmp}/runs",
            REPRO_RESULTS_DIR=f"{tmp}/results",
            WANDB_MODE="offline",
        )
        if not keep_cache:
            env["REPRO_CACHE_DIR"] = f"{tmp}/cache"
        cmd = [sys.executable, "-m", "engine", "run", name, "--profile", profile, "--jobs", str(jobs), *extra]
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
    return seconds, peak


def report_one(name: str, profile: str, jobs: str, extra: list[str], keep_cache: bool, seconds: float, peak) -> None:
    budget = BUDGET_SECONDS.get(profile)
    print(f"repro run {name} --profile {profile} --jobs {jobs} {' '.join(extra)}".rstrip())
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
        f"cache: {'REPRO_CACHE_DIR as set' if keep_cache else 'a fresh one'}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?")
    p.add_argument("--all", action="store_true", help="every experiment with the profile, and the lecture's total")
    p.add_argument("--profile", default="quick")
    p.add_argument("--jobs", default="auto")
    p.add_argument(
        "--keep-cache", action="store_true", help="reuse REPRO_CACHE_DIR (default: a fresh cache, so decoding counts)"
    )
    p.add_argument("--runs-dir", help="keep the runs here (must not hold finished runs); default: a temporary folder")
    args, args.extra = p.parse_known_args()  # anything else goes to `repro run` (e.g. --set train.max_epochs=2)
    if bool(args.all) == bool(args.name):
        p.error("name an experiment or pass --all")
    if not args.all:
        seconds, peak = measure(args.name, args.profile, args.jobs, args.keep_cache, args.runs_dir, args.extra)
        report_one(args.name, args.profile, args.jobs, args.extra, args.keep_cache, seconds, peak)
        return
    from engine.registry import registry

    names = [n for n, e in registry().items() if args.profile in [q.name for q in e.profiles]]
    if not args.keep_cache:  # one fresh cache for the whole lecture: each data set is decoded once, as in a clone
        os.environ["REPRO_CACHE_DIR"] = tempfile.mkdtemp(prefix="repro-cache-")
        args.keep_cache = True
    budget, gb, rows = BUDGET_SECONDS.get(args.profile), 1024**3, []
    print(f"{'experiment':22s} {'wall s':>8s} {'budget':>7s} {'ratio':>6s} {'peak GB':>8s}", flush=True)
    for name in names:
        seconds, peak = measure(name, args.profile, args.jobs, args.keep_cache, args.runs_dir, args.extra)
        rows.append(seconds)
        ratio = f"{seconds / budget:6.2f}" if budget else "     -"
        print(f"{name:22s} {seconds:8.1f} {budget or '-':>7} {ratio} {peak[0] / gb:8.2f}", flush=True)
    total, lecture = sum(rows), LECTURE_SECONDS.get(args.profile)
    print(f"{'the lecture':22s} {total:8.1f} {lecture or '-':>7} " + (f"{total / lecture:6.2f}" if lecture else ""))


if __name__ == "__main__":
    main()
