"""The SLURM launcher's parts that need no scheduler: the run handed over whole, the options and their one-line
errors, the signals a job stops on, and `repro status` read from the runs folder alone."""

from __future__ import annotations

import fcntl
import json
import os
import signal
from types import SimpleNamespace

import pytest

from base.errors import ReproError
from engine import slurm, status
from engine.cli import main
from engine.launch import Launch
from engine.plan import RunSpec, plan
from engine.registry import get
from engine.signals import StopOnSignal, stop_signals


def test_a_run_handed_over_as_data_is_the_same_run_with_the_same_identity():
    exp = get("rnn-examples")
    (spec,) = plan(exp, "smoke", ["summing"], [3], {"rnn.lr": "0.05", "train.max_epochs": "4"})
    again = RunSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert (again.label, again.sets, again.config) == (spec.label, spec.sets, spec.config)
    assert again.identity(2, "bf16-mixed") == spec.identity(2, "bf16-mixed")
    assert again.config.rnn.lr == 0.05 and again.config.train.max_epochs == 4


def test_a_sweep_points_run_keeps_its_point():
    (spec,) = plan(get("rnn-examples"), "smoke", ["summing"], [0], {"rnn.lr": "1e-2"}, sweep=True)
    again = RunSpec.from_dict(spec.to_dict())
    assert again.point == spec.point == "rnn.lr=0.01" and again.dir == spec.dir


def _args(**kw) -> SimpleNamespace:
    base = {k: None for k in slurm.FLAGS} | {"sbatch": None, "setup": None, "slurm_config": None, "wait": False}
    return SimpleNamespace(**{"launcher": "slurm", **base, **kw})


def test_slurm_options_come_from_the_file_and_the_flags_win(tmp_path):
    cfg = tmp_path / "slurm.yaml"
    cfg.write_text("partition: gpu\ntime_min: 30\nsetup: module load cuda\nsbatch: {constraint: a100}\n")
    opts = slurm.options_from_args(_args(slurm_config=str(cfg), time_min=90, sbatch=["exclusive", "comment=x y"]))
    assert (opts.partition, opts.time_min, opts.setup) == ("gpu", 90, ("module load cuda",))
    assert opts.sbatch == {"exclusive": True, "comment": "x y"}  # the flags' lines replace the file's
    params = opts.executor_parameters(Launch(devices="2", num_nodes=3), "repro-x")
    assert params["tasks_per_node"] == 2 and params["nodes"] == 3 and params["timeout_min"] == 90
    assert params["slurm_additional_parameters"] == {"requeue": True, "exclusive": True, "comment": "x y"}
    assert params["slurm_partition"] == "gpu" and "slurm_account" not in params  # unset: the cluster's default


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"launcher": "local", "partition": "gpu"}, "--partition goes with --launcher slurm"),
        ({"launcher": "local", "wait": True}, "--wait goes with --launcher slurm"),
        ({"launcher": "local", "signal_before_s": 60}, "--signal-before goes with --launcher slurm"),
        ({"time_min": 1, "signal_before_s": 60}, "--signal-before must be between 0 and the time limit"),
        ({"array_parallelism": 0}, "--array-parallelism must be >= 1"),
        ({"mem_gb": -1.0}, "--mem-gb must be > 0"),
        ({"sbatch": ["=x"]}, "--sbatch expects KEY=VALUE"),
    ],
)
def test_bad_slurm_options_are_one_line_errors(kw, message):
    with pytest.raises(ReproError, match=message):
        slurm.options_from_args(_args(**kw))


def test_a_config_file_with_an_unknown_key_or_no_yaml_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("partiton: gpu\n")
    with pytest.raises(ReproError, match="unknown key partiton"):
        slurm.options_from_args(_args(slurm_config=str(bad)))
    bad.write_text("time_min: an hour\n")
    with pytest.raises(ReproError, match="time_min must be a whole number, got 'an hour'"):
        slurm.options_from_args(_args(slurm_config=str(bad)))
    bad.write_text("mem_gb: true\n")
    with pytest.raises(ReproError, match="mem_gb must be a number, got True"):
        slurm.options_from_args(_args(slurm_config=str(bad)))
    bad.write_text("a: [\n")
    with pytest.raises(ReproError, match="is not YAML"):
        slurm.options_from_args(_args(slurm_config=str(bad)))
    with pytest.raises(ReproError, match="No such file"):
        slurm.options_from_args(_args(slurm_config=str(tmp_path / "missing.yaml")))


def test_without_sbatch_the_slurm_launcher_stops_in_one_line(data_env, monkeypatch, capsys):
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    assert main(["run", "rnn-examples", "--profile", "smoke", "--launcher", "slurm", "--wandb", "off"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("no SLURM here (sbatch is not on the PATH); run on a cluster's login node")
    )


def test_a_job_stops_on_the_schedulers_warning_and_nothing_else_does(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert signal.SIGUSR2 not in stop_signals()
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert stop_signals() == (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
    old = signal.getsignal(signal.SIGUSR2)
    with StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.received == signal.SIGUSR2  # the run now stops after its epoch, and the job requeues itself
    assert signal.getsignal(signal.SIGUSR2) == old


def test_status_reads_each_cells_state_from_the_runs_folder_without_a_scheduler(data_env, capsys, monkeypatch):
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)  # no squeue: a job it cannot see is over
    specs = {s.variant: s for s in plan(get("rnn-examples"), "smoke")}
    done, failed = specs["summing"], specs["comparing"]
    done.dir.mkdir(parents=True)
    (done.dir / "record.json").write_text(json.dumps(_record(done)))
    failed.dir.mkdir(parents=True)
    log = failed.dir / "job.err"
    log.write_text("training\nRuntimeError: out of luck\n")
    (failed.dir / "slurm.json").write_text(
        json.dumps({"job": "41_1", "log": str(failed.dir / "job.out"), "err": str(log)})
    )
    assert main(["status", "rnn-examples", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rnn-examples/smoke: 1 finished, 1 failed"
    assert out[1] == "  summing/seed0  finished"
    assert out[2].startswith("  comparing/seed0  failed  job 41_1") and out[2].endswith("RuntimeError: out of luck")


def test_status_names_a_run_a_local_process_holds_and_one_that_can_resume(data_env):
    (spec,) = plan(get("rnn-examples"), "smoke", ["summing"], [0])
    spec.dir.mkdir(parents=True)
    assert status.cell_state(spec, None, {}) == ("missing", "")
    (spec.dir / "checkpoints").mkdir()
    (spec.dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (spec.dir / "progress").write_text("1/2")
    assert status.cell_state(spec, None, {}) == ("stopped", "at epoch 1/2; the same run command resumes it")
    fd = os.open(spec.dir / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, b"4242", 0)
        assert status.cell_state(spec, None, {}) == ("running", "process 4242 on this machine, epoch 1/2")
    finally:
        os.close(fd)
    job = {"job": "9_0", "log": ""}
    assert status.cell_state(spec, job, {"9_0": ("PENDING", "")}) == ("queued", "job 9_0 (pending)")
    assert status.cell_state(spec, job, {"9_0": ("RUNNING", "node3")}) == ("running", "job 9_0 on node3, epoch 1/2")


def test_status_refuses_a_name_with_all_and_an_unknown_profile(capsys):
    assert main(["status", "augmentation", "--all"]) == 2
    assert main(["status", "--all", "--profile", "no-such"]) == 2
    assert "no experiment has a profile 'no-such'" in capsys.readouterr().err


def _record(spec: RunSpec) -> dict:
    prov = {"commit": "abc", "finished": "2026-12-06T00:00:00+00:00"}
    return {
        "experiment": spec.experiment.name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seed": spec.seed,
        "metrics": {"test_loss": 1.0},
        "provenance": prov,
    }


def test_a_warning_outside_the_run_requeues_the_same_task_through_submitit():
    pytest.importorskip("submitit")
    job = slurm.SlurmRun({"experiment": "rnn-examples"}, {"devices": "1"})
    again = job.checkpoint()
    assert again.function is job and again.args == () and again.kwargs == {}
