"""`--launcher slurm` against a real SLURM (the one-node cluster of scripts/start_slurm.sh): smoke runs through
jobs, a run that outlives its time limit and is requeued, a failing job, `repro status` while jobs wait and
run, and one run over two tasks. Marked `cluster`: `pytest -m cluster` (about 4 minutes), run by .ci/run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import repro

pytestmark = pytest.mark.cluster

SUMMING = ["rnn-examples", "--profile", "smoke", "--variant", "summing", "--wandb", "off", "--no-report"]
# a run of about 50 s at a steady pace (0.3 s an epoch), one thread, so that two machines' records can be equal
LONG = ["--set", "rnn.steps_per_epoch=200", "--set", "rnn.lr=0.001", "--set", "train.threads=1"]


@pytest.fixture(scope="module", autouse=True)
def slurm_is_up():
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM here: start one with scripts/start_slurm.sh (as root)")
    states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30).stdout.split()
    if not {"idle", "mix", "alloc"} & set(states):
        pytest.skip(f"SLURM's node is not up ({' '.join(states) or 'no node'}): scripts/start_slurm.sh")


def _records(root: Path) -> dict[str, dict]:
    return {f"{p.parent.parent.name}/{p.parent.name}": json.loads(p.read_text()) for p in root.rglob("record.json")}


def _same_run(a: dict, b: dict) -> bool:
    """Two records of one run, equal but for what the clock and the session say."""

    def numbers(r):
        timeless = lambda row: {k: v for k, v in row.items() if "time" not in k and k != "seconds"}  # noqa: E731
        return timeless(r["metrics"]), [timeless(h) for h in r["history"]], r["config"], r["seed"]

    return numbers(a) == numbers(b)


def _job_of(run_dir: Path) -> str:
    return json.loads((run_dir / "slurm.json").read_text())["job"]


def test_smoke_runs_go_through_slurm_jobs_and_their_records_read_as_local_ones(data_env, tmp_path):
    args = ["rnn-examples", "--profile", "smoke", "--wandb", "off", "--set", "train.threads=1"]
    result = repro("run", *args, "--launcher", "slurm", "--wait", "--time-min", "5", env=data_env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "submitted 2 run(s) as SLURM job array" in result.stdout and "(complete)" in result.stdout  # its preview
    runs = Path(data_env["REPRO_RUNS_DIR"])
    records = _records(runs)
    assert set(records) == {"summing/seed0", "comparing/seed0"}
    for folder in (runs / "rnn-examples" / "smoke").glob("*/seed0"):
        assert (folder / "slurm.log").is_symlink() and "Job completed successfully" in (
            folder / "slurm.log"
        ).read_text()
    status = repro("status", "rnn-examples", "--profile", "smoke", env=data_env)
    assert status.stdout.splitlines()[0] == "rnn-examples/smoke: 2 finished", status.stdout
    again = repro("run", *args, "--launcher", "slurm", env=data_env)
    assert "2 runs: 2 finished, 0 to run" in again.stdout and "submitted" not in again.stdout
    # the same runs made here, without a scheduler: the same numbers, and report treats both alike
    local_env = {**data_env, "REPRO_RUNS_DIR": str(tmp_path / "local")}
    assert repro("run", *args, env=local_env, timeout=300).returncode == 0
    local = _records(tmp_path / "local")
    assert all(_same_run(records[k], local[k]) for k in records)
    for env in (data_env, local_env):
        report = repro("report", "rnn-examples", "--profile", "smoke", env=env)
        assert report.returncode == 2 and "smoke runs check the plumbing only" in report.stderr


def test_a_run_past_its_time_limit_is_requeued_and_ends_as_an_uninterrupted_run(data_env, tmp_path):
    cmd = ["run", *SUMMING, *LONG, "--set", "train.max_epochs=150", "--launcher", "slurm", "--time-min", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *cmd, "--signal-before", "30", "--wait"],
        env={**os.environ, **data_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    local_env = {**data_env, "REPRO_RUNS_DIR": str(tmp_path / "local")}
    assert repro(*["run", *SUMMING, *LONG, "--set", "train.max_epochs=150"], env=local_env, timeout=400).returncode == 0
    deadline = time.time() + 480
    while proc.poll() is None and time.time() < deadline:
        _nudge()
        time.sleep(2)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    folder = Path(data_env["REPRO_RUNS_DIR"]) / "rnn-examples" / "smoke" / "summing" / "seed0"
    assert f"requeueing job {_job_of(folder)} to resume from the saved epoch" in (folder / "slurm.log").read_text()
    (mine,), (theirs,) = _records(folder.parents[2]).values(), _records(tmp_path / "local").values()
    assert mine["provenance"]["resumed"] and not theirs["provenance"]["resumed"]
    assert _same_run(mine, theirs) and mine["history"][-1]["epoch"] == 150


def _nudge() -> None:
    """SLURM holds a requeued job back for two minutes (its BeginTime): let it go now, the tests are of the run."""
    pending = subprocess.run(["squeue", "-h", "-o", "%i %r"], capture_output=True, text=True).stdout.split("\n")
    for job in [line.split()[0] for line in pending if line.endswith("BeginTime")]:
        subprocess.run(["scontrol", "update", f"jobid={job}", "starttime=now"], capture_output=True)


def _job_catches_usr2() -> bool:
    """Whether a job's Python process (submitit's runner) has a SIGUSR2 handler yet (/proc: SigCgt)."""
    pids = subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            fields = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        except (OSError, ValueError):
            continue
        if int(fields.get("SigCgt", "0"), 16) >> (signal.SIGUSR2 - 1) & 1:
            return True
    return False


def test_the_schedulers_warning_while_a_job_starts_requeues_it_as_well(data_env):
    submitted = repro("run", *SUMMING, "--launcher", "slurm", "--time-min", "5", env=data_env)
    assert submitted.returncode == 0, submitted.stderr
    folder = Path(data_env["REPRO_RUNS_DIR"]) / "rnn-examples" / "smoke" / "summing" / "seed0"
    job, deadline = _job_of(folder), time.time() + 60
    while not _job_catches_usr2():  # before that, the interpreter is still starting and the signal's default kills it
        assert time.time() < deadline, "the job did not start"
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)  # while it imports: before the run's own handler
    deadline = time.time() + 240
    while not (folder / "record.json").is_file() and time.time() < deadline:
        _nudge()
        time.sleep(1)
    assert (folder / "record.json").is_file(), (folder / "slurm.log").read_text()[-2000:]
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "Restarts=1" in shown


def test_a_failing_job_ends_the_wait_with_its_log_tail_and_status_names_it(data_env):
    setup = ["--setup", "echo 'module load cuda: no such module' >&2; exit 3"]
    result = repro("run", *SUMMING, "--launcher", "slurm", "--wait", *setup, env=data_env, timeout=120)
    assert result.returncode == 1
    assert "rnn-examples/smoke/summing/seed0: FAILED (job" in result.stdout
    assert "module load cuda: no such module" in result.stdout  # the log's tail
    assert result.stderr.strip().splitlines()[-1] == "repro: 1 of 1 SLURM runs failed: rnn-examples/smoke/summing/seed0"
    status = repro("status", "rnn-examples", "--profile", "smoke", env=data_env).stdout
    line = next(line for line in status.splitlines() if "summing/seed0" in line)
    assert line.startswith("  summing/seed0  failed  job") and line.endswith(": module load cuda: no such module")


def test_status_shows_jobs_that_wait_and_run_and_a_second_submission_adds_none(data_env):
    cmd = ["run", "rnn-examples", "--profile", "smoke", "--wandb", "off", "--no-report", *LONG]
    cmd += ["--set", "train.max_epochs=40", "--launcher", "slurm", "--array-parallelism", "1"]
    submitted = repro(*cmd, env=data_env)
    assert submitted.returncode == 0 and "submitted 2 run(s)" in submitted.stdout, submitted.stderr
    seen, deadline = set(), time.time() + 240
    while time.time() < deadline:
        text = repro("status", "rnn-examples", "--profile", "smoke", env=data_env).stdout
        seen.add(text.splitlines()[0])
        if "1 running" in text and "1 queued" in text:
            assert " running  job " in text and " on " in text and ", epoch " in text
            again = repro(*cmd, env=data_env).stdout  # neither is submitted twice
            assert "SLURM job" in again and "is queued or running it, skipped" in again and "submitted" not in again
        if text.splitlines()[0] == "rnn-examples/smoke: 2 finished":
            break
        time.sleep(2)
    assert "rnn-examples/smoke: 1 running, 1 queued" in seen or "rnn-examples/smoke: 1 queued, 1 running" in seen
    assert "rnn-examples/smoke: 2 finished" in seen


def test_one_run_over_two_tasks_of_a_job(data_env):
    ddp = ["--devices", "2", "--num-nodes", "1", "--strategy", "ddp", "--accelerator", "cpu", "--cpus-per-task", "1"]
    cmd = ["run", "bottleneck", "--profile", "smoke", "--variant", "none", "--wandb", "off", "--no-report", *ddp]
    result = repro(*cmd, "--launcher", "slurm", "--wait", "--set", "train.max_epochs=2", env=data_env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (record,) = _records(Path(data_env["REPRO_RUNS_DIR"])).values()
    assert record["provenance"]["devices"] == 2 and record["metrics"]["epochs"] == 2
