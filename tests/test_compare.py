"""Comparing runs where users compare them: W&B runs that say what the tables say, `repro compare` without W&B,
and `repro sweep`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.config import read_overrides_file
from engine.plan import plan, point_name
from engine.registry import get
from engine.sweep import grid_name, parse_grid, points, wandb_sweep_config
from engine.tracking import curves, group_name
from tests.conftest import repro, repro_here

REPO = Path(__file__).resolve().parent.parent
CELL = ["rnn-examples", "--profile", "smoke", "--variant", "summing", "--seed", "0", "--no-report"]


def _leet(folder: Path) -> tuple[dict, dict]:
    """An offline W&B run read back as a user would: `wandb leet inspect` (summary, and the run record)."""
    (run,) = folder.glob("wandb/offline-run-*")
    out = subprocess.run(
        ["wandb", "leet", "inspect", "--summary", "--json", str(run)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = subprocess.run(
        ["wandb", "leet", "inspect", "--json", str(run)], capture_output=True, text=True, timeout=120
    ).stdout.splitlines()
    run_rec = next(json.loads(x) for x in lines if '"type":"run"' in x.replace(" ", ""))["run"]
    return json.loads(out.stdout), run_rec


def test_two_precisions_of_one_cell_are_two_wandb_groups_whose_configs_name_precision_and_sets(data_env, tmp_path):
    folders = {}
    for name, extra in (("plain", []), ("bf16", ["--precision", "bf16-mixed", "--set", "rnn.lr=0.02"])):
        env = {**data_env, "REPRO_RUNS_DIR": str(tmp_path / name)}
        result = repro("run", *CELL, "--wandb", "offline", "--accelerator", "cpu", *extra, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        folders[name] = tmp_path / name / "rnn-examples" / "smoke" / "summing" / "seed0"
    (plain, plain_run), (other, other_run) = _leet(folders["plain"]), _leet(folders["bf16"])
    assert plain_run["run_group"] == "rnn-examples/smoke" and plain_run["job_type"] == "summing"
    assert other_run["run_group"] == "rnn-examples/smoke [--set rnn.lr=0.02, precision bf16-mixed]"
    assert other_run["job_type"] == "summing" and "other-settings" in other["tags"]
    assert plain["config"]["launch"]["precision"] == "32-true" and plain["config"].get("sets", {}) == {}
    assert other["config"]["launch"]["precision"] == "bf16-mixed" and other["config"]["sets"] == {"rnn.lr": "0.02"}
    assert other["config"]["rnn"]["lr"] == 0.02 and other["config"]["launch"]["world_size"] == 1
    record = json.loads((folders["bf16"] / "record.json").read_text())
    assert record["provenance"]["cpu_capability"] == other["config"]["cpu_capability"] != ""
    assert other["config"]["provenance"]["data"] == record["provenance"]["data"]
    assert other["config"]["cell"]["key"] == "summing/seed0" and len(other["config"]["cell"]["identity_sha256"]) == 64
    assert plain["config"]["cell"]["settings"] == "the profile's"
    # logged while it trained: the W&B run spans the training (the record's epochs take less than its runtime)
    assert other["summary"]["_runtime"] >= other["summary"]["train_seconds"] > 0
    assert other["summary"]["group"] == other_run["run_group"]
    # the curve a plot draws: the hidden unit's trace, as a W&B table
    assert "curves/trace" in other["summary"]


def test_a_long_group_keeps_within_wandbs_limit_and_stays_distinct():
    a, b = group_name("x", "quick", "--set " + "a" * 200), group_name("x", "quick", "--set " + "a" * 199 + "b")
    assert len(a) <= 128 and len(b) <= 128 and a != b
    assert group_name("x", "quick") == "x/quick" and group_name("x", "quick", "2 processes") == "x/quick [2 processes]"


def test_curves_finds_every_per_run_curve_a_plot_draws():
    extras = {
        "curve": {"error": [0.3, 0.2, 0.1], "nll": [1.0, 0.9, 0.8]},  # the ensemble-size curve: one table
        "lr_scales": [1.0, 0.5],
        "trace": [{"step": 0, "h": 1.5}, {"step": 10, "h": 2.0}],
        "sample": {"text": "ROMEO:", "seed": 0},
        "weight_histogram": {"counts": [1, 2], "log10_edges": [0.0, 1.0, 2.0]},
    }
    out = curves(extras)
    assert out["curve"] == (["n", "error", "nll"], [[1, 0.3, 1.0], [2, 0.2, 0.9], [3, 0.1, 0.8]])
    assert out["lr_scales"] == (["n", "lr_scales"], [[1, 1.0], [2, 0.5]])
    assert out["trace"] == (["step", "h"], [[0, 1.5], [10, 2.0]])
    assert out["sample"] == (["text", "seed"], [["ROMEO:", 0]])
    # lists of different lengths stay apart
    assert set(out) >= {"weight_histogram/counts", "weight_histogram/log10_edges"}


def test_compare_prints_the_committed_table_per_variant_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    before = sorted((p, p.stat().st_mtime_ns) for p in (REPO / "results").rglob("*"))
    code, out, err = repro_here(capsys, "compare", "ensembles")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "ensembles --profile quick: 12 runs (12 committed)"
    rows = {line.split()[0]: line.split() for line in lines[4:] if line.strip()}
    assert set(rows) == {"init", "bagging", "bagging-same-init", "architectures"}
    records = [json.loads(p.read_text()) for p in (REPO / "results/runs/ensembles/quick/init").glob("seed*.json")]
    mean = sum(r["metrics"]["ensemble_error"] for r in records) / 3 * 100
    assert rows["init"][1:4] == ["profile", "3", "100,101,102"] and rows["init"][4] == f"{mean:.2f}"
    assert not (tmp_path / "runs").exists()
    assert sorted((p, p.stat().st_mtime_ns) for p in (REPO / "results").rglob("*")) == before


def test_compare_shows_a_run_of_other_settings_on_a_row_of_its_own(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    runs = tmp_path / "runs"
    monkeypatch.setenv("REPRO_RUNS_DIR", str(runs))
    committed = json.loads((REPO / "results/runs/ensembles/quick/init/seed100.json").read_text())
    mine = {**committed, "sets": {"optim.lr": "0.05"}, "config": {**committed["config"]}}
    mine["config"]["optim"] = {**committed["config"]["optim"], "lr": 0.05}
    mine["metrics"] = {**committed["metrics"], "ensemble_error": 0.5}
    folder = runs / "ensembles" / "quick" / "init" / "seed100"
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(mine))
    code, out, err = repro_here(
        capsys, "compare", "ensembles", "--variant", "init", "--metric", "ensemble_error", "--runs"
    )
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[4:] if line.strip() and not line.startswith("not shown")]
    assert ["init", "profile", "100", "committed", f"{committed['metrics']['ensemble_error'] * 100:.2f}"] in rows
    assert rows[-1][0] == "init" and rows[-1][-1] == "50.00" and "optim.lr=0.05" in " ".join(rows[-1])
    assert "kept" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "ensembles", "--metric", "bogus"], "unknown metric 'bogus'"),
        (["compare", "ensembles", "--variant", "nope"], "unknown variant 'nope'"),
        (["compare", "ensembles", "--profile", "smoke"], "no finished runs of ensembles --profile smoke"),
        (["sweep", "rnn-examples", "--profile", "smoke"], "sweep needs at least one --set"),
        (["sweep", "rnn-examples", "--profile", "smoke", "--set", "rnn.lr=0.01,"], "an empty value"),
        (["sweep", "rnn-examples", "--profile", "smoke", "--set", "rnn.nope=1,2"], "unknown config key 'rnn.nope'"),
        (["sweep", "rnn-examples", "--profile", "smoke", "--set", "rnn.lr=0.01,x"], "bad value for rnn.lr: 'x'"),
        (
            [
                "sweep",
                "rnn-examples",
                "--profile",
                "smoke",
                "--set",
                "rnn.lr=0.01",
                "--wandb",
                "offline",
                "--wandb-sweep",
            ],
            "--wandb-sweep registers the grid",
        ),
        (["run", "rnn-examples", "--config", "/nonexistent.yaml"], "--config /nonexistent.yaml: cannot be read"),
    ],
)
def test_bad_compare_and_sweep_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    code, _, err = repro_here(capsys, *args)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_grid_values_split_by_commas_and_for_list_keys_by_semicolons():
    cfg = get("augmentation").config()
    grid = parse_grid(cfg, ["optim.lr=0.1, 0.05", "data.augment=flip;flip,translate", "optim.lr=0.1,0.2"])
    assert grid == {"optim.lr": ["0.1", "0.05", "0.2"], "data.augment": ["flip", "flip,translate"]}
    pts = points(grid, {"train.max_epochs": "3", "optim.lr": "9"})
    assert len(pts) == 6 and pts[0] == {"train.max_epochs": "3", "optim.lr": "0.1", "data.augment": "flip"}
    assert grid_name(grid) == "optim.lr=0.1,0.05,0.2__data.augment=flip,flip,translate"
    assert len(grid_name({"optim.lr": [str(i) for i in range(200)]})) <= 120


def test_a_sweep_point_is_named_by_its_values_as_the_config_holds_them():
    exp = get("rnn-examples")
    (a,) = plan(exp, "smoke", ["summing"], [0], {"rnn.lr": "1e-2"}, sweep=True)
    (b,) = plan(exp, "smoke", ["summing"], [0], {"rnn.lr": "0.01"}, sweep=True)
    (c,) = plan(exp, "smoke", ["summing"], [0], {"rnn.lr": "0.01"})
    assert a.dir == b.dir and a.point == "rnn.lr=0.01" and "sweeps" in a.dir.parts and "sweep" in a.tags
    assert "sweeps" not in c.dir.parts and c.point == "" and c.tags == ()
    with pytest.raises(Exception, match="at least one --set"):
        point_name(exp.resolve("summing", "smoke"), {})


def test_the_wandb_sweep_stands_for_the_grid():
    cfg = wandb_sweep_config(get("rnn-examples"), "smoke", {"rnn.lr": ["0.01", "0.03"]}, "test_loss")
    assert cfg["method"] == "grid" and cfg["metric"] == {"name": "test_loss", "goal": "minimize"}
    assert cfg["parameters"] == {"rnn.lr": {"values": ["0.01", "0.03"]}}


def test_a_config_file_gives_overrides_nested_or_dotted_and_set_wins(tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.05\ndata.augment: [flip, translate]\ntrain: {channels_last: false}\n")
    assert read_overrides_file(str(f)) == {
        "optim.lr": "0.05",
        "data.augment": "flip,translate",
        "train.channels_last": "false",
    }
    code, out, err = repro_here(
        capsys, "show", "augmentation", "--profile", "smoke", "--config", str(f), "--set", "optim.lr=0.2"
    )
    assert code == 0, err
    assert "lr: 0.2" in out and "- translate" in out and "channels_last: false" in out
    f.write_text("- a list\n")
    code, _, err = repro_here(capsys, "show", "augmentation", "--config", str(f))
    assert code == 2 and "expected a mapping" in err


def test_sweep_runs_the_grid_as_runs_of_their_own_and_writes_a_sweep_table(data_env):
    results = Path(data_env["REPRO_RESULTS_DIR"])
    args = [
        "sweep",
        "rnn-examples",
        "--profile",
        "smoke",
        "--variant",
        "summing",
        "--set",
        "rnn.lr=0.01,0.03",
        "--seeds",
        "2",
        "--wandb",
        "off",
    ]
    result = repro(*args, env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = Path(data_env["REPRO_RUNS_DIR"])
    records = sorted(runs.rglob("record.json"))
    assert len(records) == 4 and all("sweeps" in p.parts for p in records)
    lrs = sorted(json.loads(p.read_text())["config"]["rnn"]["lr"] for p in records)
    assert lrs == [0.01, 0.01, 0.03, 0.03]
    base = runs / "sweeps" / "rnn-examples" / "smoke"
    md = (base / "rnn.lr=0.01,0.03.md").read_text()
    assert "| `summing` | 0.01 | 2 |" in md and "| `summing` | 0.03 | 2 |" in md and "Seeds | 0, 1" in md
    assert (base / "rnn.lr=0.01,0.03.png").stat().st_size > 1000
    assert len((base / "rnn.lr=0.01,0.03.csv").read_text().splitlines()) == 5
    assert not results.exists() and not (runs / "rnn-examples").exists()  # no table, no profile cell touched
    again = repro(*args, env=data_env)  # a point already trained is skipped
    assert again.returncode == 0 and "4 runs: 4 finished, 0 to run" in again.stdout
    shutil.rmtree(base)


def test_report_logs_the_tables_verdicts_and_summary_to_wandb_beside_the_runs(capsys, tmp_path, monkeypatch):
    results, runs = tmp_path / "results", tmp_path / "runs"
    shutil.copytree(REPO / "results/runs/ensembles", results / "runs" / "ensembles")
    for k, v in {"REPRO_RESULTS_DIR": results, "REPRO_RUNS_DIR": runs, "WANDB_SILENT": "true"}.items():
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    code, out, err = repro_here(capsys, "report", "ensembles", "--wandb", "offline")
    assert code == 0, err
    folder = runs / "ensembles" / "quick" / "report"
    summary, run = _leet(folder)
    assert run["run_group"] == "ensembles/quick" and run["job_type"] == "report"
    assert summary["name"] == "ensembles-quick-verdicts"
    (table,) = folder.glob("wandb/offline-run-*/files/media/table/verdicts_*.table.json")
    verdicts = json.loads(table.read_text())
    md = (results / "ensembles.md").read_text()
    assert verdicts["columns"] == ["slide", "claim", "verdict", "measured", "test"]
    for slide, claim, status, _, _ in verdicts["data"]:
        assert f"| {slide} | {claim} | **{status}** |" in md
    assert summary["summary"]["supported"] == sum(row[2] == "supported" for row in verdicts["data"]) > 0
    (table,) = folder.glob("wandb/offline-run-*/files/media/table/summary_*.table.json")
    rows = {row[0]: row for row in json.loads(table.read_text())["data"]}
    assert set(rows) == {"init", "bagging", "bagging-same-init", "architectures"}
    assert rows["init"][1:3] == ["profile", 3]


def test_a_resumed_offline_run_replays_the_epochs_it_restored():
    from types import SimpleNamespace

    from engine.tracking import replay_callback

    logged = []
    logger = SimpleNamespace(log_metrics=lambda values, step: logged.append((step, values)))
    trainer = SimpleNamespace(loggers=[logger], is_global_zero=True, global_step=12, current_epoch=3)
    history = [{"epoch": e, "train_loss": 1.0 / e, "seconds": float(e)} for e in (1, 2, 3)]
    replay_callback().on_train_start(trainer, SimpleNamespace(history=history))
    assert [step for step, _ in logged] == [4, 8, 12]  # each epoch at the step it ended (4 steps an epoch)
    assert logged[1][1] == {"epoch/train_loss": 0.5, "epoch/seconds": 2.0}
    logged.clear()
    fresh = SimpleNamespace(**{**vars(trainer), "current_epoch": 0})
    replay_callback().on_train_start(fresh, SimpleNamespace(history=[]))
    assert logged == []  # a fresh run replays nothing
