"""DDP that cannot hang: several runs in a row, a stop agreed by every rank at an epoch's end, a dead rank ending
the others with one line. Two CPU processes (gloo) stand in for two GPUs; every command has a timeout, so a hang
fails the test instead of stalling the suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.callbacks import StopAfterEpoch
from tests.conftest import repro

DDP = [
    "run",
    "bottleneck",
    "--profile",
    "smoke",
    "--devices",
    "2",
    "--strategy",
    "ddp",
    "--accelerator",
    "cpu",
    "--wandb",
    "off",
    "--no-report",
]


def _records(root: Path) -> dict[str, dict]:
    return {p.parent.parent.name: json.loads(p.read_text()) for p in root.rglob("record.json")}


@pytest.mark.slow  # about a minute; the default run keeps the two causes' unit tests (the watch, the agreement)
def test_several_ddp_runs_in_a_row_end(data_env):
    result = repro(*DDP, "--set", "train.max_epochs=4", env=data_env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(Path(data_env["REPRO_RUNS_DIR"]))
    assert set(records) == {"none", "k-8"} and all(r["provenance"]["devices"] == 2 for r in records.values())
    assert all(r["metrics"]["epochs"] == 4 for r in records.values())


class _Strategy:
    def __init__(self, others_ask: bool):
        self.others_ask = others_ask

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:  # noqa: A002 (Lightning's name)
        assert all is False  # any rank's request stops every rank
        return decision or self.others_ask


@pytest.mark.parametrize("mine, others, stops", [(False, False, False), (True, False, True), (False, True, True)])
def test_a_stop_is_agreed_by_every_rank_at_the_epochs_end(mine, others, stops):
    trainer = SimpleNamespace(strategy=_Strategy(others), should_stop=False)
    callback = StopAfterEpoch(lambda: mine)
    callback.on_train_epoch_end(trainer, None)
    assert trainer.should_stop is stops and callback.stopped is stops


def test_a_ddp_rank_started_by_a_child_run_watches_its_own_parent(tmp_path):
    # the process tree of `--jobs` + DDP: pool -> rank 0 (child) -> rank 1 (grandchild, inheriting the pool's pid)
    grandchild = "import time; from engine.pool import watch_parent; watch_parent(); time.sleep(5)"
    child = f"import subprocess, sys; sys.exit(subprocess.run([sys.executable, '-c', {grandchild!r}]).returncode)"
    env = {**os.environ, "REPRO_PARENT_PID": str(os.getpid())}
    result = subprocess.run([sys.executable, "-c", child], env=env, timeout=60, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # it did not signal itself (it used to, after 2 s)


@pytest.mark.slow
@pytest.mark.parametrize("rank", [0, 1])
def test_sigterm_to_either_rank_ends_the_pair_with_one_line_and_the_run_resumes_exactly(rank, data_env, tmp_path):
    args = [*DDP, "--variant", "none", "--seed", "0", "--set", "train.max_epochs=12"]
    reference = {**data_env, "REPRO_RUNS_DIR": str(tmp_path / "reference")}
    assert repro(*args, env=reference, timeout=400).returncode == 0
    runs = Path(data_env["REPRO_RUNS_DIR"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **data_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = runs / "bottleneck" / "smoke" / "none" / "seed0" / "progress"
    deadline = time.time() + 200
    while time.time() < deadline and not (progress.is_file() and int(progress.read_text().split("/")[0]) >= 2):
        time.sleep(0.3)
    target = proc.pid if rank == 0 else _children(proc.pid)[0]  # Lightning starts rank 1 from rank 0
    os.kill(target, signal.SIGTERM)
    start = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - start < 30 and proc.returncode == 143
    lines = [x for x in err.splitlines() if x.startswith("repro:")]
    assert len(lines) == 1 and "the same command resumes" in lines[0], err[-2000:]
    again = repro(*args, env=data_env, timeout=400)
    assert again.returncode == 0, again.stderr[-2000:]
    mine, ref = _records(runs)["none"], _records(tmp_path / "reference")["none"]
    assert mine["provenance"]["resumed"] is True
    drop = ("wall_time",)
    assert {k: v for k, v in mine["metrics"].items() if k not in drop} == {
        k: v for k, v in ref["metrics"].items() if k not in drop
    }


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]
