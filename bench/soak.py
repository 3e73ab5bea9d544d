"""Soak: random kill -9 and SIGTERM while a command trains, then the same command to the end; every record must equal
an undisturbed run's (timings aside), with no temporary file left behind.

    python bench/soak.py                       # 50 disturbances of `repro run --all --profile smoke`
    python bench/soak.py --kills 50 --ddp      # the same over DDP runs (2 CPU processes) of the experiments that shard
    python bench/soak.py --kills 10 --seed 3   # fewer, another random sequence

Each disturbance: start the command, wait a random time (up to --max-wait seconds, so that it lands anywhere: at a
process start, mid-epoch, mid-checkpoint, mid-record), then either SIGTERM the command (a scheduler's notice: it
saves its epoch and exits 143), or kill -9 one random process of its tree (the command itself, a `--jobs` child,
a DDP rank). After the last one the command runs to its end. Prints what it tried and what it found; exit code 1
if any record differs from the undisturbed run's or a temporary file is left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARDING = ("bottleneck", "capacity", "ensembles")  # experiments whose data splits across ranks
TIMING = ("time", "second")  # keys that measure the machine: wall_time, seconds, tokens_per_second


def _commands(ddp: bool) -> list[list[str]]:
    if not ddp:
        return [["run", "--all", "--profile", "smoke", "--wandb", "off"]]
    launch = ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu", "--wandb", "off", "--no-report"]
    return [["run", name, "--profile", "smoke", *launch] for name in SHARDING]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip


def _tree(pid: int) -> list[int]:
    out, todo = [pid], [pid]
    while todo:
        kids = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout.split()
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _run_all(commands: list[list[str]], env: dict) -> None:
    for args in commands:
        proc = _start(args, env)
        proc.wait()


def _comparable(record: dict) -> dict:
    def plain(d: dict) -> dict:
        return {k: v for k, v in d.items() if not any(t in k for t in TIMING)}

    return {"metrics": plain(record["metrics"]), "history": [plain(row) for row in record.get("history", [])]}


def _records(root: Path) -> dict[str, dict]:
    return {str(p.relative_to(root)): json.loads(p.read_text()) for p in root.rglob("record.json")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50, help="disturbances (default 50)")
    p.add_argument("--ddp", action="store_true", help="DDP runs on 2 CPU processes instead of `run --all`")
    p.add_argument("--seed", type=int, default=0, help="seed of the random times and choices")
    p.add_argument("--max-wait", type=float, default=20.0, help="longest wait before a disturbance, in seconds")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    a = p.parse_args()
    if a.kills < 1 or a.max_wait <= 0:
        print("soak.py: --kills must be >= 1 and --max-wait > 0", file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    base = {**os.environ, "WANDB_MODE": "disabled", "REPRO_RESULTS_DIR": str(scratch / "results")}
    commands = _commands(a.ddp)
    start = time.time()
    reference = scratch / "reference"
    _run_all(commands, {**base, "REPRO_RUNS_DIR": str(reference)})
    print(f"undisturbed: {len(_records(reference))} records in {time.time() - start:.0f} s")
    disturbed, env = scratch / "disturbed", {**base, "REPRO_RUNS_DIR": str(scratch / "disturbed")}
    tried = {"SIGTERM to the command": 0, "kill -9 of the command": 0, "kill -9 of a child or rank": 0}
    codes: dict[int, int] = {}
    done_early = 0
    for i in range(a.kills):
        args = commands[i % len(commands)]
        proc = _start(args, env)
        time.sleep(rng.uniform(0.5, a.max_wait))
        if proc.poll() is not None:
            done_early += 1
            continue
        tree = _tree(proc.pid)
        kind = rng.choice(["term", "kill", "kill"] if len(tree) == 1 else ["term", "kill", "child"])
        if kind == "term":
            os.kill(proc.pid, signal.SIGTERM)
            tried["SIGTERM to the command"] += 1
        elif kind == "kill":
            os.killpg(proc.pid, signal.SIGKILL)  # the command and everything it started
            tried["kill -9 of the command"] += 1
        else:
            os.kill(rng.choice(tree[1:]), signal.SIGKILL)
            tried["kill -9 of a child or rank"] += 1
        try:
            code = proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            print(f"disturbance {i + 1} ({kind}): the command did not end within 120 s: a hang")
            os.killpg(proc.pid, signal.SIGKILL)
            code = -999
        codes[code] = codes.get(code, 0) + 1
        for pid in _tree(proc.pid)[1:]:  # nothing may outlive its command
            os.kill(pid, signal.SIGKILL)
    _run_all(commands, env)
    mine, ref = _records(disturbed), _records(reference)
    differ = sorted(k for k in ref if k not in mine or _comparable(mine[k]) != _comparable(ref[k]))
    temps = [str(p) for p in disturbed.rglob("*") if ".tmp" in p.name]
    resumed = sum(bool(r["provenance"].get("resumed")) for r in mine.values())
    print(f"disturbances: {sum(tried.values())} ({', '.join(f'{n} {k}' for k, n in tried.items())}); "
          f"{done_early} found the command already finished")  # fmt: skip
    print(f"exit codes of the disturbed commands: {dict(sorted(codes.items()))}")
    print(
        f"records: {len(mine)} of {len(ref)}; {resumed} resumed from a checkpoint; {len(differ)} differ from the "
        f"undisturbed run{': ' + ', '.join(differ[:5]) if differ else ''}; {len(temps)} temporary files left"
    )
    print(f"total time {time.time() - start:.0f} s; scratch {scratch}" + ("" if a.keep else " (removed)"))
    if not a.keep:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if differ or temps or len(mine) != len(ref) or -999 in codes else 0


if __name__ == "__main__":
    sys.exit(main())
