"""The path of a run through the CLI: records, skipping, resuming after kill -9, DDP, W&B, bad input."""

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
import torch

from engine.cli import main
from engine.registry import get
from tests.conftest import repro

SMOKE = ["--profile", "smoke", "--seed", "0"]


def run_dir(env, variant="none", seed=0, profile="smoke"):
    return Path(env["REPRO_RUNS_DIR"]) / "augmentation" / profile / variant / f"seed{seed}"


def test_run_writes_a_complete_record_and_skips_it_next_time(data_env, capsys):
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off"]) == 0
    d = run_dir(data_env)
    rec = json.loads((d / "record.json").read_text())
    m = rec["metrics"]
    assert set(m) >= {"test_error", "best_val_error", "train_error", "gap", "epochs", "wall_time"}
    assert 0 <= m["test_error"] <= 1 and m["epochs"] == 2 and len(rec["history"]) == 2
    assert m["best_val_error"] == min(h["val_error"] for h in rec["history"])
    assert m["gap"] == pytest.approx(rec["history"][-1]["val_error"] - m["train_error"])
    assert rec["provenance"]["params"] == 19_218  # ResNet-8 of width 8
    assert rec["provenance"]["steps"] == 2 * 4  # 256 images / batch 64, 2 epochs
    assert (
        rec["config"]["model"]["depth"] == 8
        and (d / "config.yaml").is_file()
        and (d / "checkpoints" / "last.ckpt").is_file()
    )
    # a run never writes tracked files: a preview table under the runs folder, nothing in results/
    assert not Path(data_env["REPRO_RESULTS_DIR"]).exists()
    assert (Path(data_env["REPRO_RUNS_DIR"]) / "augmentation" / "smoke" / "report" / "augmentation-smoke.md").is_file()
    assert [row["epoch"] for row in csv.DictReader(open(d / "history.csv"))] == ["1", "2"]
    stamp = (d / "record.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off"]) == 0
    assert "1 runs: 1 finished, 0 to run" in capsys.readouterr().out
    assert (d / "record.json").stat().st_mtime_ns == stamp
    # the same folder with a different config is refused, not silently reused
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", "--set", "optim.lr=0.01"]) == 2
    assert "different config (optim.lr: 0.05 there, 0.01 now)" in capsys.readouterr().err


def test_a_run_stopped_by_bad_input_before_training_does_not_block_the_corrected_command(data_env, capsys):
    bad = ["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", "--set", "data.train_size=100000000"]
    assert main(bad) == 2
    assert "data.train_size=100,000,000 is more than" in capsys.readouterr().err
    d = run_dir(data_env)
    assert (d / "config.yaml").is_file() and not (d / "checkpoints" / "last.ckpt").exists()  # nothing trained
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off"]) == 0
    assert "replacing the config of a run that never saved a checkpoint (data.train_size: 100000000 there" in (
        capsys.readouterr().out
    )
    assert json.loads((d / "record.json").read_text())["config"]["data"]["train_size"] == 256


def test_a_cell_reruns_bit_for_bit_alone_or_beside_others(data_env, tmp_path):
    """Threads per run are part of the config: two runs at once (--jobs 2) and one run alone compute the same."""
    threads = ["--set", "train.threads=1", "--wandb", "off"]
    both = repro(
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
        *threads,
        env=data_env,
    )
    assert both.returncode == 0, both.stderr[-2000:]
    alone_env = {**data_env, "REPRO_RUNS_DIR": str(tmp_path / "alone")}
    alone = repro(
        "run",
        "augmentation",
        "--profile",
        "smoke",
        "--variant",
        "flip+translate",
        "--seed",
        "0",
        *threads,
        env=alone_env,
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    together = json.loads(run_dir(data_env, "flip+translate").joinpath("record.json").read_text())
    single = json.loads(run_dir(alone_env, "flip+translate").joinpath("record.json").read_text())
    assert _metrics_without_time(together) == _metrics_without_time(single)
    assert together["provenance"]["threads"] == single["provenance"]["threads"] == 1


def _metrics_without_time(rec):
    drop = {"wall_time", "seconds"}
    return (
        {k: v for k, v in rec["metrics"].items() if k not in drop},
        [{k: v for k, v in row.items() if k not in drop} for row in rec["history"]],
    )


@pytest.mark.parametrize(
    "sig",
    [signal.SIGKILL, pytest.param(signal.SIGINT, marks=pytest.mark.slow)],  # Ctrl-C: also in test_faults
    ids=["kill-9", "ctrl-c"],
)
def test_a_run_stopped_mid_way_resumes_and_equals_an_uninterrupted_run(sig, data_env, tmp_path):
    args = [
        "run",
        "augmentation",
        *SMOKE,
        "--variant",
        "flip+translate",
        "--wandb",
        "off",
        "--no-report",
        "--set",
        "train.max_epochs=5",
        "--set",
        "data.batch_size=16",
    ]
    whole = repro(*args, env={**data_env, "REPRO_RUNS_DIR": str(tmp_path / "whole")})
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = json.loads(
        run_dir({"REPRO_RUNS_DIR": str(tmp_path / "whole")}, "flip+translate").joinpath("record.json").read_text()
    )

    d = run_dir(data_env, "flip+translate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **data_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt = d / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(sig)  # right after the first checkpoint
    proc.wait(timeout=120)
    assert not (d / "record.json").exists(), "the run finished before it could be stopped"
    epoch_at_kill = torch.load(ckpt, weights_only=False)["epoch"]
    assert epoch_at_kill < 4
    resumed = repro(*args, env=data_env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout
    record = json.loads((d / "record.json").read_text())
    assert record["provenance"]["resumed"] is True
    assert _metrics_without_time(record) == _metrics_without_time(reference)  # exactly equal on CPU


def test_wandb_offline_run_reads_back_with_leet(data_env):
    result = repro(
        "run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "offline", "--no-report", env=data_env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    d = run_dir(data_env)
    runs = list((d / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    leet = subprocess.run(
        ["wandb", "leet", "inspect", "--summary", "--json", str(runs[0])], capture_output=True, text=True, timeout=120
    )
    assert leet.returncode == 0, leet.stderr
    summary = json.loads(leet.stdout)
    record = json.loads((d / "record.json").read_text())
    assert summary["name"] == "none-s0" and summary["project"] == "lecture7-repro" and summary["state"] == "finished"
    assert set(summary["tags"]) == {"augmentation", "smoke", "none"}
    assert summary["config"]["model"]["depth"] == 8 and summary["config"]["seed"] == 0
    assert summary["config"]["provenance"]["commit"] == record["provenance"]["commit"]
    for k in ("test_error", "best_val_error", "train_error"):
        assert summary["summary"][k] == pytest.approx(record["metrics"][k])
    # the summary names the run's group (experiment/profile), job type (variant) and seed
    assert summary["summary"]["group"] == "augmentation/smoke" and summary["summary"]["job_type"] == "none"
    assert summary["summary"]["seed"] == 0
    records = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(runs[0])], capture_output=True, text=True, timeout=120
    ).stdout.splitlines()
    run_rec = next(json.loads(line) for line in records if '"type": "run"' in line or '"type":"run"' in line)
    assert run_rec["run"]["run_group"] == "augmentation/smoke" and run_rec["run"]["job_type"] == "none"


def test_ddp_on_two_cpu_processes_shards_batches_and_syncs_metrics(data_env):
    result = repro(
        "run",
        "augmentation",
        *SMOKE,
        "--variant",
        "none",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--wandb",
        "offline",
        "--no-report",
        env=data_env,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    root = Path(data_env["REPRO_RUNS_DIR"])
    assert len(list(root.rglob("record.json"))) == 1
    assert len(list(root.rglob("offline-run-*"))) == 1
    d = run_dir(data_env)
    record = json.loads((d / "record.json").read_text())
    assert record["provenance"]["devices"] == 2
    # data.batch_size is the global batch: each rank takes 32 of every 64, so the steps are those of one device
    assert record["provenance"]["steps"] == 2 * 4
    # the synced test error is the error of the final model on the whole test set
    exp = get("augmentation")
    cfg = exp.resolve("none", "smoke")
    module, dm = exp.build(cfg, 0)
    state = torch.load(d / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    module.load_state_dict(state)
    module.eval()
    dm.setup()
    with torch.no_grad():
        for (x, y), key in ((dm.test, "test_error"), (dm.train_eval, "train_error")):
            logits = module(dm.transform(x, train=False))
            wrong = int((logits.argmax(1) != y).sum())
            assert record["metrics"][key] * len(y) == pytest.approx(wrong, abs=1e-6), key
    # the folder holds a 2-process run: a 1-process run of the same cell is refused, not mixed in
    again = repro("run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", env=data_env)
    assert again.returncode == 2 and "launch.world_size: 2 there, 1 now" in again.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "nope"], "unknown experiment 'nope'"),
        (["run", "augmentation", "--set", "data.batchsize=3"], "did you mean 'data.batch_size'"),
        (["run", "augmentation", "--set", "optim.lr"], "--set expects KEY=VALUE"),
        (["run", "augmentation", "--variant", "flipp"], "unknown variant 'flipp'"),
        (["run", "augmentation", "--profile", "huge"], "unknown profile 'huge'"),
        (["run", "augmentation", "--seed", "-1"], "seeds must be in 0..4294967295"),
        (["run", "augmentation", "--jobs", "0"], "--jobs must be auto or a number >= 1"),
        (["run", "augmentation", "--num-nodes", "0"], "--num-nodes must be >= 1"),
        (["run", "augmentation", "--wandb", "maybe"], "invalid choice"),
        (["show", "augmentation", "--variant", "x"], "unknown variant"),
        (["report"], "report needs an experiment name or --all (not both)"),
        (["report", "augmentation"], "no finished runs of augmentation"),
        (["report", "augmentation", "--profile", "smoke"], "never written to results"),
        (["run", "augmentation", "--seed", "4294967296"], "seeds must be in 0..4294967295"),
        (["run", "augmentation", "--devices", "abc"], "--devices must be a number"),
        (["run", "augmentation", "--accelerator", "tpu"], "--accelerator must be auto, cpu, gpu"),
        (["run", "augmentation", "--set", "optim.lr=nan"], "expected a finite number"),
        (["run", "augmentation", "--set", "optim.lr=inf"], "expected a finite number"),
        (["run", "augmentation", "--set", "optim.weight_decay=nan"], "expected a finite number"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message, data_env, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_asked_for_on_a_cpu_machine_is_a_one_line_error(data_env, capsys):
    assert main(["run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", "--accelerator", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repro: error: --accelerator gpu: no GPU here") and err.count("\n") == 1


def test_missing_and_corrupt_data_through_the_cli(tmp_path, tiny_data_dir):
    env = {
        "REPRO_DATA_DIR": str(tmp_path / "empty"),
        "REPRO_CACHE_DIR": str(tmp_path / "cache"),
        "REPRO_RUNS_DIR": str(tmp_path / "runs"),
        "REPRO_RESULTS_DIR": str(tmp_path / "results"),
        "REPRO_OFFLINE": "1",
    }
    (tmp_path / "empty").mkdir()
    missing = repro("run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", env=env)
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0, missing.stderr
    assert "CIFAR-10 not found" in missing.stderr and "Traceback" not in missing.stderr
    blob = (tiny_data_dir / "cifar10-jpeg.tar.gz").read_bytes()
    (tmp_path / "empty" / "cifar10-jpeg.tar.gz").write_bytes(blob[: len(blob) // 3])
    corrupt = repro("run", "augmentation", *SMOKE, "--variant", "none", "--wandb", "off", env=env)
    assert corrupt.returncode == 2 and "corrupt or truncated" in corrupt.stderr and "Traceback" not in corrupt.stderr
    assert not list((tmp_path / "cache").glob("*.pt"))
    assert not list((tmp_path / "runs").rglob("record.json"))


def test_show_prints_the_resolved_config_and_parameter_count(capsys):
    assert main(["show", "augmentation", "--variant", "flip+translate", "--profile", "full"]) == 0
    out = capsys.readouterr().out
    assert "depth: 20" in out and "- flip" in out and "- translate" in out and "# parameters: 269,722" in out


def test_list_shows_every_experiment(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "augmentation  (slides 6)" in out and "flip+translate" in out and "quick" in out


def test_every_experiment_runs_its_smoke_profile(data_env, capsys):
    from engine.registry import registry

    for name, exp in registry().items():
        assert main(["run", name, "--profile", "smoke", "--wandb", "off", "--no-report"]) == 0
        records = list((Path(data_env["REPRO_RUNS_DIR"]) / name / "smoke").rglob("record.json"))
        assert len(records) == len(exp.variant_names("smoke")) * exp.profile("smoke").seeds


def test_run_all_runs_each_experiment_as_its_profile_says_and_sums_up(data_env, capsys, monkeypatch):
    """``repro run --all`` over a lecture of two experiments (registry cut down): every run in a child, one bar
    over the lecture's runs, a preview per experiment and an index of them; a rerun skips everything."""
    from engine import registry

    two = {k: v for k, v in registry.registry().items() if k in ("rnn-examples", "bottleneck")}
    monkeypatch.setattr(registry, "registry", lambda: two)
    assert main(["run", "--all", "--profile", "smoke", "--wandb", "off"]) == 0
    out = capsys.readouterr().out
    runs = Path(data_env["REPRO_RUNS_DIR"])
    assert "the lecture: 2 experiments, 4 runs: 0 finished, 4 to run" in out
    assert "[1/2] bottleneck/smoke: 2 runs, 2 to run" in out and "[2/2] rnn-examples/smoke" in out  # slide order
    assert len(list(runs.rglob("record.json"))) == 4
    index = (runs / "lecture-smoke.md").read_text()
    assert "| `bottleneck` | 2 inconclusive; checks: 3 of 3 hold |" in index  # one seed decides no claim
    assert (runs / "rnn-examples" / "smoke" / "report" / "rnn-examples-smoke.md").is_file()
    # smoke profiles run one at a time: in this process, each run's output in its own log
    assert (
        "bottleneck/smoke/none/seed0: done"
        in (runs / "bottleneck" / "smoke" / "none" / "seed0" / "run.log").read_text()
    )
    assert main(["run", "--all", "--profile", "smoke", "--wandb", "off", "--no-report"]) == 0
    assert "4 runs: 4 finished, 0 to run" in capsys.readouterr().out


def test_run_all_refuses_a_name_or_variant_and_a_profile_no_experiment_has(data_env, capsys):
    assert main(["run", "augmentation", "--all"]) == 2
    assert "no name, --variant, --set or --config with it" in capsys.readouterr().err
    assert main(["run", "--all", "--profile", "no-such"]) == 2
    assert "no experiment has a profile 'no-such'" in capsys.readouterr().err
    assert main(["run"]) == 2
    assert "run needs an experiment name (see `repro list`) or --all" in capsys.readouterr().err


@pytest.mark.slow
def test_a_ddp_run_killed_mid_way_resumes_and_equals_an_uninterrupted_ddp_run(data_env, tmp_path):
    args = [
        "run",
        "augmentation",
        *SMOKE,
        "--variant",
        "flip+translate",
        "--wandb",
        "off",
        "--no-report",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--set",
        "train.max_epochs=4",
        "--set",
        "data.batch_size=16",
    ]
    whole_dir = tmp_path / "whole"
    whole = repro(*args, env={**data_env, "REPRO_RUNS_DIR": str(whole_dir)}, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = json.loads(
        run_dir({"REPRO_RUNS_DIR": str(whole_dir)}, "flip+translate").joinpath("record.json").read_text()
    )
    d = run_dir(data_env, "flip+translate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env={**os.environ, **data_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpt = d / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # both ranks
    proc.wait(timeout=60)
    assert not (d / "record.json").exists()
    resumed = repro(*args, env=data_env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _metrics_without_time(json.loads((d / "record.json").read_text())) == _metrics_without_time(reference)


def test_auto_jobs_follows_the_profile_on_cpus_and_one_run_per_multi_device_job(monkeypatch):
    from engine.launch import auto_jobs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    exp = get("augmentation")
    assert auto_jobs(exp.profile("smoke"), "auto", "auto", 1) == 1  # seconds-long runs: no process per run
    assert auto_jobs(exp.profile("quick"), "auto", "auto", 1) == 2
    assert auto_jobs(exp.profile("quick"), "cpu", "2", 1) == 1  # each run is already a 2-process DDP job
    assert auto_jobs(exp.profile("quick"), "auto", "auto", 2) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert auto_jobs(exp.profile("quick"), "auto", "auto", 1) == 1


def test_jobs_run_children_in_parallel_with_logs_and_a_progress_bar(data_env):
    result = repro("run", "augmentation", "--profile", "smoke", "--jobs", "2", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    for variant in get("augmentation").variant_names("smoke"):  # 3 runs, 2 at a time
        d = run_dir(data_env, variant, 0)
        assert (d / "record.json").is_file() and (d / "progress").read_text() == "2/2"
        log = (d / "run.log").read_text()
        assert "training" in log and "preview:" not in log  # the child's output went to its log; no report
    assert "[3/3] augmentation/smoke/" in result.stdout + result.stderr
    assert "6/6" in result.stderr  # the parent's bar, in epochs over all runs
    assert result.stdout.count("preview: ") == 1  # the parent wrote the preview, once
    assert (Path(data_env["REPRO_RUNS_DIR"]) / "augmentation/smoke/report/augmentation-smoke.png").is_file()


def test_a_gpu_runs_record_names_its_stack_and_a_cpu_runs_none(monkeypatch, tmp_path):
    import types

    import torch

    from engine.provenance import gpu_stack

    class CUDAAccelerator:  # Lightning's class name is what the runner reads
        pass

    assert gpu_stack(types.SimpleNamespace(accelerator=object())) == {}
    gpu = types.SimpleNamespace(accelerator=CUDAAccelerator(), strategy=types.SimpleNamespace(root_device="cuda:0"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 580.65.06\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    expected = {"device": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda": "13.0", "cudnn": "91002"}
    assert gpu_stack(gpu) == {**expected, "driver": "580.65.06"}
    smi.unlink()  # no nvidia-smi: the driver is unknown, said so
    assert gpu_stack(gpu)["driver"] == "unknown"
