"""GPU windows that add up (bench/gpu_window.py): committed records count as finished runs, and a window hands
back what the next one resumes from, no more. And the JPEG round trip (bench/jpeg_roundtrip.py) that estimates
what the JPEG copy of CIFAR-10 costs at paper scale."""

from __future__ import annotations

import importlib.util
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from engine.config import config_to_dict
from engine.records import committed_dir, read_record, run_dir, to_json
from engine.registry import get

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_window", ROOT / "bench" / "gpu_window.py")
gpu_window = sys.modules["gpu_window"] = importlib.util.module_from_spec(_spec)  # (its dataclass looks itself up)
_spec.loader.exec_module(gpu_window)


def commit_record(variant: str, seed: int, **config_changes) -> dict:
    exp = get("resnet-ablation")
    config = config_to_dict(exp.resolve(variant, "smoke"))
    for key, value in config_changes.items():
        section, name = key.split("__")
        config[section][name] = value
    record = {
        "experiment": exp.name,
        "profile": "smoke",
        "variant": variant,
        "seed": seed,
        "sets": {},
        "metrics": {"test_error": 0.5},
        "config": config,
        "provenance": {"commit": "x", "finished": "2026-12-06T00:00:00+00:00"},
    }
    path = committed_dir(exp.name, "smoke") / variant / f"seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(record, compact=True))
    return record


def test_committed_records_of_the_current_config_count_as_finished_and_stale_ones_do_not(data_env):
    commit_record("plain-20", 0)
    commit_record("residual-20", 0, model__width=99)  # made with another config: that run must train again
    assert gpu_window.seed("resnet-ablation", "smoke") == 1
    assert read_record(run_dir("resnet-ablation", "smoke", "plain-20", 0))["metrics"] == {"test_error": 0.5}
    assert read_record(run_dir("resnet-ablation", "smoke", "residual-20", 0)) is None
    st = gpu_window.status("resnet-ablation", "smoke")
    assert (len(st.finished), len(st.resumable), len(st.not_started)) == (1, 0, 1)
    assert gpu_window.seed("resnet-ablation", "smoke") == 0  # already there: nothing copied twice


def test_a_window_packs_records_of_finished_runs_and_checkpoints_of_unfinished_ones(data_env, tmp_path):
    commit_record("plain-20", 0)
    gpu_window.seed("resnet-ablation", "smoke")
    done = run_dir("resnet-ablation", "smoke", "plain-20", 0)
    (done / "checkpoints").mkdir()
    (done / "checkpoints" / "last.ckpt").write_bytes(b"not needed once the record exists")
    (done / "wandb").mkdir()
    (done / "wandb" / "run.wandb").write_bytes(b"stays behind")
    half = run_dir("resnet-ablation", "smoke", "residual-20", 0)
    (half / "checkpoints").mkdir(parents=True)
    (half / "config.yaml").write_text("identity\n")
    (half / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    statuses = gpu_window.pack(tmp_path / "w.tar.gz", [("resnet-ablation", "smoke")])
    assert "1 finished, 1 resumable, 0 not started" in statuses[0].line()
    with tarfile.open(tmp_path / "w.tar.gz") as tar:
        names = set(tar.getnames())
    assert names == {
        "resnet-ablation/smoke/plain-20/seed0/record.json",
        "resnet-ablation/smoke/residual-20/seed0/config.yaml",
        "resnet-ablation/smoke/residual-20/seed0/checkpoints/last.ckpt",
    }
    assert not (tmp_path / "w.tar.gz.part").exists()


def test_an_unknown_plan_item_is_one_line_and_exit_2(data_env, capsys):
    assert gpu_window.main(["status", "resnet-ablation:paper"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "paper" in err


def test_a_jpeg_round_trip_keeps_shape_and_type_and_changes_a_jpeg_image_little():
    _spec2 = importlib.util.spec_from_file_location("jpeg_roundtrip", ROOT / "bench" / "jpeg_roundtrip.py")
    jr = importlib.util.module_from_spec(_spec2)
    _spec2.loader.exec_module(jr)
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8, generator=g), size=32, mode="bilinear")
    rgb = (smooth * 255).to(torch.uint8)
    once = jr.jpeg_roundtrip(rgb)
    twice = jr.jpeg_roundtrip(once)
    assert once.shape == rgb.shape and once.dtype == torch.uint8 and not torch.equal(once, rgb)
    # a second generation at the same quality moves the pixels less than the first did
    assert jr.psnr(once, twice) > jr.psnr(rgb, once) > 25
    gray = rgb[:, :1]
    assert jr.jpeg_roundtrip(gray).shape == gray.shape  # MNIST's one channel
    assert jr.psnr(rgb, rgb) == float("inf")


def test_a_pack_too_large_for_one_returned_file_is_split_into_parts_that_join_back(tmp_path):
    data = bytes(range(256)) * 41  # 10,496 bytes
    big = tmp_path / "w.tar.gz"
    big.write_bytes(data)
    parts = gpu_window.split(big, part_bytes=4000)
    assert [p.name for p in parts] == ["w.tar.gz.00", "w.tar.gz.01", "w.tar.gz.02"] and not big.exists()
    assert max(p.stat().st_size for p in parts) <= 4000
    assert b"".join(p.read_bytes() for p in sorted(tmp_path.glob("w.tar.gz*"))) == data  # cat w.tar.gz* joins them
    small = tmp_path / "s.tar.gz"
    small.write_bytes(b"x" * 10)
    assert gpu_window.split(small, part_bytes=4000) == [small] and small.read_bytes() == b"x" * 10


def test_the_session_scripts_print_their_usage_and_refuse_a_budget_that_is_not_seconds(tmp_path):
    import os
    import subprocess

    env = {**os.environ, "ACC": "cpu", "OUT": str(tmp_path / "out"), "WINDOW": str(tmp_path / "window")}
    for script in ("gpu_execute.sh", "gpu_window.sh", "gpu_recurrent.sh", "gpu_resnet_ablation.sh"):
        run = ["bash", str(ROOT / "bench" / script)]
        usage = subprocess.run([*run, "--help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert usage.returncode == 0 and "one command" in usage.stdout and not usage.stderr, (script, usage.stderr)
        bad = subprocess.run([*run, "help"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert (
            bad.returncode == 2
            and bad.stderr == "error: the first argument is the time budget in seconds, not 'help'\n"
        )
    assert not (tmp_path / "out").exists() and not (tmp_path / "window").exists()  # nothing started


@pytest.mark.slow
def test_a_dry_window_on_the_cpu_packs_every_record_and_the_next_window_has_nothing_left(data_env, tmp_path):
    import os
    import subprocess

    window = tmp_path / "window"  # an absolute folder is used as given, not put beside the code
    env = {
        **os.environ,
        **data_env,
        "ACC": "cpu",
        "PREC": "32-true",
        "PLAN": "resnet-ablation:smoke",
        "WINDOW": str(window),
        "STOP": "30",
    }
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        out.mkdir()
        done = subprocess.run(
            ["bash", str(ROOT / "bench" / "gpu_window.sh"), "120"],
            capture_output=True,
            text=True,
            env={**env, "OUT": str(out)},
            cwd=ROOT,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        with tarfile.open(out / "gpu-window.tar.gz") as tar:
            names = sorted(n for n in tar.getnames() if n.endswith("record.json"))
        assert names == [f"resnet-ablation/smoke/{v}/seed0/record.json" for v in ("plain-20", "residual-20")]
    assert "2 runs, 2 finished, 0 resumable, 0 not started" in done.stdout
    assert "2 finished, 0 to run" in (tmp_path / "second" / "window.log").read_text()  # nothing trained twice
    assert (window / "runs" / "resnet-ablation").is_dir() and not (ROOT / str(window).lstrip("/")).exists()
