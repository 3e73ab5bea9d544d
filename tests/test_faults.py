"""Fault injection: what a user, a scheduler or a crash can do to a run, and what the suite must do about it.

Each case is caught (one line, exit code 2) or survived (the run ends with the same metrics as an undisturbed
one, nothing lost, half-written or duplicated).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import repro, repro_here

# a smoke run of a few seconds an epoch, long enough to be interrupted
SLOW = [
    "run",
    "augmentation",
    "--profile",
    "smoke",
    "--variant",
    "flip+translate",
    "--seed",
    "0",
    "--wandb",
    "off",
    "--set",
    "train.max_epochs=5",
    "--set",
    "data.batch_size=16",
]


def folder(env, variant="flip+translate", profile="smoke") -> Path:
    return Path(env["REPRO_RUNS_DIR"]) / "augmentation" / profile / variant / "seed0"


def start(args, env, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(path: Path, proc: subprocess.Popen | None = None, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.exists() and (proc is None or proc.poll() is None) and time.time() < deadline:
        time.sleep(0.01)
    assert path.exists(), f"{path} never appeared"


def without_time(record: dict):
    drop = {"wall_time", "seconds"}
    return (
        {k: v for k, v in record["metrics"].items() if k not in drop},
        [{k: v for k, v in row.items() if k not in drop} for row in record["history"]],
    )


@pytest.fixture
def reference(data_env, tmp_path_factory):
    """The undisturbed run every survived case must equal."""
    env = {**data_env, "REPRO_RUNS_DIR": str(tmp_path_factory.mktemp("whole"))}
    done = repro(*SLOW, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder(env) / "record.json").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ----------------------------------------------------------------------------- signals and resume
@pytest.mark.parametrize(
    "sig,code",
    [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)],  # one handler for both
    ids=["sigterm", "sigint"],
)
def test_a_signal_saves_the_epoch_stops_with_one_line_and_the_run_resumes_exactly(sig, code, data_env, reference):
    d = folder(data_env)
    proc = start(SLOW, data_env)
    wait_for(d / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(sig)  # a scheduler's preemption (SIGTERM), or Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("repro: augmentation/smoke/flip+translate/seed0: stopped after epoch") and "resumes" in last
    assert "Traceback" not in err and not (d / "record.json").exists()
    resumed = repro(*SLOW, env=data_env)
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout, resumed.stderr[-2000:]
    record = json.loads((d / "record.json").read_text())
    assert record["provenance"]["resumed"] and without_time(record) == without_time(reference)
    # the per-epoch log kept the epochs trained before the signal
    rows = list(csv.DictReader(open(d / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4", "5"]


# ----------------------------------------------------------------------------- one trainer per run folder
def test_a_second_command_for_a_live_run_is_refused_and_names_the_process(data_env):
    from engine.runner import folder_lock

    d = folder(data_env)
    live = [*SLOW, "--set", "train.max_epochs=200"]  # still training whatever the second command's start-up costs
    first = start(live, data_env)
    wait_for(d / "config.yaml", first)  # the lock is taken before anything is written
    second = repro(*live, env=data_env)
    assert second.returncode == 2 and f"is being trained by process {first.pid}" in second.stderr
    assert second.stderr.count("\n") == 1 and first.poll() is None  # refused while the first one trains
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    assert first.returncode == 143
    with folder_lock(d, "the same run"):  # the lock went with the process that held it
        assert (d / ".lock").read_text() == str(os.getpid())


def test_killing_the_jobs_parent_takes_its_children_with_it(data_env):
    args = [
        "run",
        "augmentation",
        "--profile",
        "smoke",
        "--variant",
        "none",
        "--variant",
        "flip+translate",
        "--jobs",
        "2",
        "--wandb",
        "off",
        "--set",
        "train.max_epochs=20",
        "--set",
        "data.batch_size=16",
    ]
    parent = start(args, data_env)
    locks = [folder(data_env, v) / ".lock" for v in ("none", "flip+translate")]
    for lock in locks:
        wait_for(lock, parent)
    time.sleep(1)
    children = [int(lock.read_text()) for lock in locks]
    assert all(alive(pid) for pid in children)
    parent.kill()  # kill -9: no chance to clean up
    parent.communicate(timeout=60)
    deadline = time.time() + 30
    while any(alive(pid) for pid in children) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in children), "orphans kept training"
    # nothing half-written, and a rerun finishes each run once
    rerun = repro(*args, env=data_env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert len(list(Path(data_env["REPRO_RUNS_DIR"]).rglob("record.json"))) == 2


# ----------------------------------------------------------------------------- run identity
def test_a_checkpoint_of_another_run_is_refused_in_one_line(data_env):
    args = ["run", "augmentation", "--profile", "smoke", "--variant", "none", "--seed", "0", "--wandb", "off"]
    assert repro(*args, env=data_env).returncode == 0
    d = folder(data_env, "none")
    (d / "record.json").unlink()
    (d / "config.yaml").unlink()  # the config guard's file is gone: the checkpoint itself says what it is
    other = repro(*args, "--set", "optim.lr=0.01", env=data_env)
    assert other.returncode == 2 and other.stderr.count("\n") == 1 and "Traceback" not in other.stderr
    assert "last.ckpt belongs to another run (optim.lr: 0.05 there, 0.01 now)" in other.stderr
    assert "delete it to start this run afresh" in other.stderr
    assert not (d / "record.json").exists()


# ----------------------------------------------------------------------------- damaged files
def test_damaged_records_are_one_line_errors(data_env, capsys):
    d = folder(data_env, "none")
    d.mkdir(parents=True)
    args = ["run", "augmentation", "--profile", "smoke", "--variant", "none", "--seed", "0", "--wandb", "off"]
    for content, message in (
        (b"\x00\xff\xfe binary", "is corrupt (not JSON)"),
        (b"[1, 2]", "is not a run record"),
        (b"{}", "is not a run record"),
    ):
        (d / "record.json").write_bytes(content)
        for command in (args, ["report", "augmentation", "--profile", "quick", "--partial"]):
            if command[0] == "report":  # the report reads the quick folder
                q = folder(data_env, "none", "quick")
                q.mkdir(parents=True, exist_ok=True)
                (q / "record.json").write_bytes(content)
            code, _, err = repro_here(capsys, *command)
            assert code == 2 and message in err and err.count("\n") == 1, (content, command, err)


def test_temp_files_of_a_killed_writer_are_removed(data_env):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)  # a process that has exited
    d = folder(data_env, "none")
    (d / "checkpoints").mkdir(parents=True)
    left = [d / f".progress.tmp{dead}", d / "checkpoints" / f"last.ckpt.tmp{dead}"]
    for p in left:
        p.write_bytes(b"half")
    live = d / f"record.json.tmp{os.getpid()}"  # a live writer's file is never touched
    live.write_bytes(b"mine")
    args = ["run", "augmentation", "--profile", "smoke", "--variant", "none", "--seed", "0", "--wandb", "off"]
    assert repro(*args, env=data_env).returncode == 0
    assert not any(p.exists() for p in left) and live.exists()


# ----------------------------------------------------------------------------- divergence
def test_a_diverging_run_stops_and_is_marked_in_the_record_and_the_table(data_env):
    args = [
        "run",
        "augmentation",
        "--profile",
        "smoke",
        "--variant",
        "none",
        "--seed",
        "0",
        "--wandb",
        "off",
        "--set",
        "optim.lr=1e9",
        "--set",
        "train.max_epochs=4",
    ]
    result = repro(*args, env=data_env)
    assert result.returncode == 0 and "DIVERGED" in result.stdout, result.stderr[-2000:]
    text = (folder(data_env, "none") / "record.json").read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in a record: not JSON"))
    assert record["metrics"]["diverged"] == 1.0 and record["provenance"]["steps"] < 4 * 4  # stopped early
    # the exploded model's scores are no result (null); what the run did measure stays
    assert record["metrics"]["test_error"] is None and record["metrics"]["gen_error"] is None
    assert record["metrics"]["epochs"] >= 1 and record["metrics"]["params_k"] > 0
    preview = (Path(data_env["REPRO_RUNS_DIR"]) / "augmentation/smoke/report/augmentation-smoke.md").read_text()
    assert "**Diverged** | 1 of 1 runs" in preview


# ----------------------------------------------------------------------------- bad launch choices
def test_launch_choices_that_cannot_work_are_one_line_before_any_run(data_env, tmp_path, capsys, monkeypatch):
    runs = Path(data_env["REPRO_RUNS_DIR"])
    # rnn-examples' data is one in-memory batch: it cannot be split between 2 processes
    code, _, err = repro_here(capsys, "run", "rnn-examples", "--profile", "smoke", "--devices", "2", "--wandb", "off")
    assert code == 2 and err.splitlines() == [
        "repro: error: rnn-examples's data cannot be split across processes; run it on one device (without --devices)"
    ]
    assert not list(runs.glob("rnn-examples/smoke/*/seed0/checkpoints/*"))  # nothing trained
    # --wandb online without a key: refused before the first run (W&B would raise in it)
    for name, value in {"WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc"), "WANDB_MODE": ""}.items():
        monkeypatch.setenv(name, value)
    code, _, err = repro_here(capsys, "run", "rnn-examples", "--profile", "smoke", "--wandb", "online")
    assert code == 2 and err.count("\n") == 1 and err.startswith("repro: error: --wandb online: no W&B API key here")
    assert not list(runs.glob("rnn-examples/smoke/*/seed0/record.json"))
