"""The CPU benchmarks in bench/ still run against the code they measure: each at its smallest size, its table
read back. (Two had stopped running when the code they time was renamed: nothing ran them.)"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(script: str, *args: str, env: dict) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1))


def test_execute_speed_times_the_steps_and_projects_the_quick_profile(data_env):
    out = bench("execute_speed.py", "--steps", "3", "--repeats", "1", env=data_env)
    assert number(r"two runs at once, 1 thread each\s+([\d.]+)", out) > 0
    assert number(r"quick: 9 runs x 4600 steps at [\d.]+ steps/s in all .*: ([\d.]+) minutes", out) > 0


def test_augment_throughput_times_every_augmentation(data_env):
    from datamodules.configs import AUGMENTATIONS

    out = bench("augment_throughput.py", "--images", "128", "--repeats", "1", "--workers", "0", env=data_env)
    assert number(r"ratio batched / PIL: ([\d.]+)x", out) > 0
    assert all(number(rf"\n{name}\s+(\d+)", out) > 0 for name in AUGMENTATIONS)


def test_loop_overhead_compares_the_suite_with_a_hand_written_loop(data_env):
    out = bench("loop_overhead.py", "--depth", "8", "--images", "128", "--epochs", "2", "--repeats", "1", env=data_env)
    assert number(r"ratio suite / hand-written: ([\d.]+)", out) > 0


def test_program_generation_times_every_task(data_env):
    out = bench("program_generation.py", "--seconds", "1", env=data_env)
    assert number(r"addition 9/1: ([\d.]+) ms", out) > 0


@pytest.mark.slow
def test_compile_speed_runs_both_paths(data_env):
    args = ["--depth", "20", "--images", "128", "--runs", "1", "--epochs", "2"]
    out = bench("compile_speed.py", *args, env=data_env)
    assert number(r"\neager\s+1\s+(\d+)", out) > 0 and number(r"\nreduce-overhead\s+1\s+(\d+)", out) > 0


@pytest.mark.parametrize(
    "script,args",
    [
        ("execute_speed.py", ["--profile", "nope"]),
        ("compile_speed.py", ["--modes", "fast"]),
        ("compile_speed.py", ["--accelerator", "gpu"]),
        ("loop_overhead.py", ["--accelerator", "gpu"]),
        ("jpeg_roundtrip.py", ["char-lm", "--profile", "smoke", "--variant", "lstm"]),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2_before_any_run_starts(script, args, data_env, capsys, monkeypatch):
    if "gpu" in args:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is here")
    monkeypatch.setattr(sys, "argv", [script, *args])  # in this process: a subprocess spends seconds importing torch
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # as when the script runs: its folder first on the path
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(ROOT / "bench" / script), run_name="__main__")
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
