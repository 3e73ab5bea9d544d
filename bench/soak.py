"""Soak: random kill -9 and SIGTERM while a command trains, then the same command to the end; every record must equal
an undisturbed run's (timings aside), with no temporary file left behind.

    python bench/soak.py                       # 50 disturbances of `repro run --all --profile smoke`
    python bench/soak.py --kills 50 --ddp      # the same over DDP runs (2 CPU processes) of the experiments that shard
    python bench/soak.py --kills 10 --seed 3   # fewer, another random sequence

Each disturbance: start the command, wait a random time (up to --max-wait seconds, so that it lands anywhere: at a
process start, mid-epoch, mid-checkpoint, mid-record), then SIGTERM the command (a scheduler's notice: it saves
its epoch and exits 143), kill -9 the command alone (what it started must die with it), kill -9 it with all it
started, or kill -9 one of its children (a `--jobs` child, a DDP rank). When the command has finished everything
before its disturbance, the runs folder is emptied for a new round. After the last one the command runs to its
end. Prints what it tried and what it found; exit code 1
if any record differs from the undisturbed run's or a temporary file is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARDING = ("bottleneck", "capacity", "ensembles")  # experiments whose data splits across ranks
TIMING = ("time", "second")  # keys that measure the machine: wall_time, seconds, tokens_per_second


def _commands(ddp: bool, only: list[str] | None) -> list[list[str]]:
    if not ddp and not only:
        return [["run", "--all", "--profile", "smoke", "--wandb", "off"]]
    launch = ["--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"] if ddp else []
    return [["run", name, "--profile", "smoke", *launch, "--wandb", "off", "--no-report"] for name in only or SHARDING]


def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _tree(pid: int) -> list[int]:
    out, todo = [pid], [pid]
    while todo:
        kids = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout.split()
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def _ours(pid: int) -> bool:
    """Whether ``pid`` is still a process of the suite (not a pid reused by another program)."""
    try:
        return b"experiments" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _kill(pid: int, sig: int) -> bool:
    """Signal a process; False if it was gone already (it ended between the listing and the signal)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


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


KINDS = {
    "term": "SIGTERM to the command",
    "kill": "kill -9 of the command",
    "group": "kill -9 of the command and its children",
    "child": "kill -9 of a child or rank",
}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=50, help="disturbances (default 50)")
    p.add_argument("--ddp", action="store_true", help="DDP runs on 2 CPU processes instead of `run --all`")
    p.add_argument("--seed", type=int, default=0, help="seed of the random times and choices")
    p.add_argument("--max-wait", type=float, default=20.0, help="longest wait before a disturbance, in seconds")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--only", action="append", metavar="NAME", help="only this experiment's smoke runs (repeatable)")
    return p.parse_args()


def main() -> int:
    a = _args()
    if a.kills < 1 or a.max_wait <= 0:
        print("soak.py: --kills must be >= 1 and --max-wait > 0", file=sys.stderr)
        return 2
    rng = random.Random(a.seed)
    scratch = Path(tempfile.mkdtemp(prefix="soak-"))
    base = {**os.environ, "WANDB_MODE": "disabled", "REPRO_RESULTS_DIR": str(scratch / "results")}
    commands = _commands(a.ddp, a.only)
    start = time.time()
    reference = scratch / "reference"
    _run_all(commands, {**base, "REPRO_RUNS_DIR": str(reference)})
    print(f"undisturbed: {len(_records(reference))} records in {time.time() - start:.0f} s")
    disturbed, env = scratch / "disturbed", {**base, "REPRO_RUNS_DIR": str(scratch / "disturbed")}
    tried = dict.fromkeys(KINDS.values(), 0)
    codes: dict[int, int] = {}
    done_early, orphans = 0, 0
    rounds, i = 1, 0
    while sum(tried.values()) < a.kills and i < 4 * a.kills:
        i += 1
        proc = _start(commands[i % len(commands)], env)
        time.sleep(rng.uniform(0.5, a.max_wait))
        if proc.poll() is not None:  # it finished everything: a new round from scratch, so kills land anywhere
            done_early += 1
            if all(_start(c, env).wait() == 0 for c in commands):
                shutil.rmtree(disturbed, ignore_errors=True)
                rounds += 1
            continue
        tree = _tree(proc.pid)
        kind = rng.choice(["term", "kill", "group"] + ["child"] * (len(tree) > 1))
        tried[KINDS[kind]] += _disturb(proc, tree, kind, rng)
        code = _wait(proc, f"disturbance {i + 1} ({kind})")
        codes[code] = codes.get(code, 0) + 1
        orphans += _survivors(tree)
    _run_all(commands, env)
    print(
        f"disturbances: {sum(tried.values())} ({', '.join(f'{n} {k}' for k, n in tried.items())}); "
        f"{done_early} found the command already finished; {rounds} rounds from an empty runs folder"
    )
    print(f"exit codes of the disturbed commands: {dict(sorted(codes.items()))}; {orphans} processes outlived theirs")
    bad = _compare(_records(disturbed), _records(reference), disturbed)
    print(f"total time {time.time() - start:.0f} s; scratch {scratch}" + ("" if a.keep else " (removed)"))
    if not a.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if bad or -999 in codes else 0


def _disturb(proc: subprocess.Popen, tree: list[int], kind: str, rng: random.Random) -> int:
    """One disturbance of a running command; 1 if it landed."""
    if kind == "term":
        return _kill(proc.pid, signal.SIGTERM)
    if kind == "kill":  # the command alone: what it started must die with it
        return _kill(proc.pid, signal.SIGKILL)
    if kind == "group":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the command and everything it started
        return 1
    return _kill(rng.choice(tree[1:]), signal.SIGKILL)


def _wait(proc: subprocess.Popen, what: str) -> int:
    """The disturbed command's exit code; -999 for one that did not end within 120 s (a hang)."""
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        print(f"{what}: the command did not end within 120 s: a hang")
        os.killpg(proc.pid, signal.SIGKILL)
        return -999


def _survivors(tree: list[int]) -> int:
    """How many of the command's processes outlived it (after 30 s to save and go); they are killed."""
    deadline = time.time() + 30  # a signalled child may take a moment to save its epoch and go
    while time.time() < deadline and any(_ours(pid) for pid in tree[1:]):
        time.sleep(0.5)
    return len([pid for pid in tree[1:] if _ours(pid) and _kill(pid, signal.SIGKILL)])  # none may outlive it


def _compare(mine: dict, ref: dict, disturbed: Path) -> bool:
    """Print how the disturbed records compare with the undisturbed ones; True if anything is wrong."""
    differ = sorted(k for k in ref if k not in mine or _comparable(mine[k]) != _comparable(ref[k]))
    temps = [str(p) for p in disturbed.rglob("*") if ".tmp" in p.name]
    resumed = sum(bool(r["provenance"].get("resumed")) for r in mine.values())
    print(
        f"records: {len(mine)} of {len(ref)}; {resumed} resumed from a checkpoint; {len(differ)} differ from the "
        f"undisturbed run{': ' + ', '.join(differ[:5]) if differ else ''}; {len(temps)} temporary files left"
    )
    return bool(differ or temps or len(mine) != len(ref))


if __name__ == "__main__":
    sys.exit(main())
