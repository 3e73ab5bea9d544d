"""`repro verify`: a committed cell rerun in a scratch folder is exact, within seed noise, or outside."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.verify import compare
from tests.conftest import repro_here

REPO = Path(__file__).resolve().parent.parent
CELL = ["verify", "rnn-examples", "--profile", "quick", "--variant", "summing", "--seed", "100"]


def _rec(**metrics) -> dict:
    return {"metrics": {"wall_time": 1.0, **metrics}}


def test_compare_says_exact_within_seed_noise_or_outside():
    seeds = [_rec(err=0.50), _rec(err=0.52), _rec(err=0.54)]  # sd 0.02
    assert compare(_rec(err=0.5), _rec(err=0.5, wall_time=9.0), seeds) == ("exact", [])  # timings aside
    outcome, lines = compare(_rec(err=0.5), _rec(err=0.53), seeds)
    assert outcome == "within seed noise" and "1.5 sd" in lines[0]
    assert compare(_rec(err=0.5), _rec(err=0.55), seeds)[0] == "outside"  # 2.5 sd
    assert compare(_rec(err=0.5), _rec(err=None), seeds)[0] == "outside"  # a score the rerun could not give
    assert compare(_rec(err=0.5), _rec(err=0.5000001), [_rec(err=0.5)] * 3)[0] == "outside"  # no spread to hide in


def test_verify_reruns_a_committed_cell_exactly_and_writes_nothing(data_env, capsys, monkeypatch):
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(REPO / "results"))
    before = sorted((p, p.stat().st_mtime_ns) for p in (REPO / "results").rglob("*"))
    code, out, err = repro_here(capsys, *CELL)
    assert code == 0, err
    assert "exact: every metric equals the committed record's" in out and "instruction set" in out
    assert sorted((p, p.stat().st_mtime_ns) for p in (REPO / "results").rglob("*")) == before
    assert not Path(data_env["REPRO_RUNS_DIR"]).exists()


def test_verify_of_a_default_profile_seed_its_pilot_ran_reruns_the_pilot_cell(data_env, capsys, monkeypatch):
    # the pilot runs the quick profile's settings on seeds 0-2, which the quick table no longer uses: quick seed 0
    # is the pilot's cell, said so, and verified against it
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(REPO / "results"))
    code, out, err = repro_here(capsys, *CELL[:-1], "0")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("seed 0 is not one of the quick table's seeds (100-104)") and "pilot" in lines[0]
    assert any(line.startswith("verify rnn-examples/pilot/summing/seed0:") for line in lines)
    assert "exact: every metric equals the committed record's" in out


def test_verify_says_outside_for_a_cell_the_code_cannot_reproduce(data_env, capsys, monkeypatch, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "results/runs/rnn-examples", results / "runs/rnn-examples")
    path = results / "runs/rnn-examples/quick/summing/seed100.json"
    record = json.loads(path.read_text())
    record["metrics"]["w_self"] += 0.5  # a number no run of this code gives (the summing weight is 1)
    path.write_text(json.dumps(record))
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(results))
    code, out, _ = repro_here(capsys, *CELL)
    assert code == 1 and out.splitlines()[-2].startswith("outside: 1 of") and "w_self" in out.splitlines()[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seed", "99"], "no committed record of rnn-examples --profile quick --variant summing --seed 99"),
        (
            ["--profile", "full", "--seed", "0"],
            "(the table's seeds are 100-109; seed 0 is a pilot's (of the quick profile): add --profile pilot)",
        ),
        (["--variant", "nope"], "unknown variant 'nope'"),
    ],
)
def test_verify_refusals(args, message, capsys, monkeypatch):
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(REPO / "results"))
    code, _, err = repro_here(capsys, *CELL, *args)
    assert code == 2 and message in err and err.count("\n") == 1
