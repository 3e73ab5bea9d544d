"""Verdict statistics on hand-computed cases, and reports rebuilt from run records alone."""

from __future__ import annotations

import csv
import json
import math

import pytest

from experiments import get, stats
from experiments.report import fmt_mean_std, write_index, write_report


def test_t_interval_matches_a_hand_computation():
    mean, lo, hi = stats.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) * sd (=1) / sqrt(n)
    assert mean == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)


def test_positive_uses_the_interval_from_three_seeds():
    # mean 0.02, half-width 0.0248: the interval contains 0, so three seeds are not enough evidence
    assert stats.positive([0.01, 0.02, 0.03]) is None
    assert stats.positive([0.020, 0.021, 0.022]) is True
    assert stats.positive([-0.020, -0.021, -0.022]) is False


def test_few_seeds_fall_back_to_the_sign_and_one_seed_decides_nothing():
    assert stats.positive([0.01, 0.03]) is True
    assert stats.positive([0.01, -0.03]) is None
    assert stats.positive([-0.01, -0.03]) is False
    assert stats.positive([0.5]) is None
    v = stats.expect_positive([0.01, 0.03], [0, 1], "x")
    assert v.status == "supported" and "sign over 2 seeds" in v.statistic and v.weak
    assert v.label == "supported (weak: few seeds)"
    assert not stats.expect_positive([0.02, 0.021, 0.022], [0, 1, 2], "x").weak
    assert not stats.expect_positive([0.01, -0.03], [0, 1], "x").weak  # inconclusive is never "weak"
    assert stats.expect_not_positive([0.01, 0.03], [0, 1], "x").status == "contradicted"
    assert stats.expect_not_positive([-0.01, -0.03], [0, 1], "x").status == "supported"


def _record(variant, seed, test_error, dataset="CIFAR-10 (JPEG q75 mirror)"):
    return {
        "experiment": "augmentation",
        "profile": "quick",
        "variant": variant,
        "seed": seed,
        "metrics": {
            "test_error": test_error,
            "best_val_error": test_error + 0.01,
            "train_error": 0.1,
            "gap": test_error - 0.1,
            "epochs": 3.0,
            "wall_time": 12.0,
        },
        "history": [{"epoch": e + 1, "val_error": 0.5 - 0.1 * e} for e in range(3)],
        "config": {},
        "sets": {},
        "provenance": {
            "commit": "abcdef1234567",
            "dirty": False,
            "finished": "2026-11-26T10:00:00+00:00",
            "hardware": "CPU Test (2 threads)",
            "precision": "32-true",
            "devices": 1,
            "resumed": False,
            "params": 75290,
            "data": {"name": dataset, "fingerprint": "f00d", "source": "x"},
            "versions": {"torch": "2.x"},
        },
    }


def test_cells_show_percentages_and_plain_counts():
    assert fmt_mean_std([0.25, 0.35], "test_acc") == "30.00 ± 7.07"  # accuracies and errors in %
    assert fmt_mean_std([0.1], "test_error") == "10.00"
    assert fmt_mean_std([24800.4, 22000.2], "chars_per_second") == "23400 ± 1980"  # no decimals above 1000
    assert fmt_mean_std([3.0, 5.0], "level_length") == "4 ± 1"  # whole numbers stay whole
    assert fmt_mean_std([float("nan")], "test_acc") == "–"


def test_report_is_rebuilt_from_records(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    errors = {
        "none": [0.40, 0.42, 0.44],
        "flip+translate": [0.30, 0.33, 0.33],
        "mnist-none": [0.020, 0.021, 0.019],
        "mnist-flip": [0.025, 0.026, 0.027],
        "flip": [0.35, 0.36, 0.37],
    }
    for variant, errs in errors.items():
        for seed, e in enumerate(errs):
            d = tmp_path / "runs" / "augmentation" / "quick" / variant / f"seed{seed}"
            d.mkdir(parents=True)
            (d / "record.json").write_text(
                json.dumps(_record(variant, seed, e, "MNIST" if "mnist" in variant else "CIFAR-10 (JPEG q75 mirror)"))
            )
    out = tmp_path / "results"
    md = write_report(get("augmentation"), None, out)
    text = md.read_text()
    # mean +- std over seeds, in percent
    assert "| `none` | 3 | 42.00 ± 2.00 |" in text
    assert "| `flip+translate` | 3 | 32.00 ± 1.73 |" in text
    # provenance: profile, hardware, data sets, seeds, date, commit
    for needle in (
        "`quick`",
        "CPU Test (2 threads)",
        "CIFAR-10 (JPEG q75 mirror)",
        "MNIST",
        "0, 1, 2",
        "2026-11-26",
        "abcdef1234",
    ):
        assert needle in text
    assert "Overrides" not in text and "Stopped by time" not in text  # neither happened
    # published figures beside the measured ones
    assert "13.63" in text and "8.75" in text
    # verdicts: augmentation helps (diffs .10,.09,.11 -> CI excludes 0); flip hurts digits (supported)
    lines = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| 6 |")}
    assert "**supported**" in lines["Augmenting the training set (flip + translation) lowers test error"]
    assert "**supported**" in lines["Horizontal flips do not help digit recognition (MNIST)"]
    assert "**inconclusive**" in lines["Translation alone lowers test error on CIFAR-10"]  # no translate runs
    assert (out / "augmentation.png").stat().st_size > 10_000
    rows = list(csv.DictReader(open(out / "augmentation.csv")))
    assert len(rows) == 15 and {r["variant"] for r in rows} == set(errors)
    assert float(next(r for r in rows if r["variant"] == "none" and r["seed"] == "1")["test_error"]) == 0.42
    # the index reads verdicts back from the committed CSV
    index = write_index([get("augmentation")], out).read_text()
    assert "[augmentation.md](augmentation.md) (quick)" in index and "supported" in index


def test_a_table_names_the_profile_it_was_read_from(tmp_path, monkeypatch):
    # records made under an earlier name of the same settings (here "quick") and moved to the "full" folder
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    for seed, e in enumerate([0.40, 0.42, 0.44]):
        d = tmp_path / "runs" / "augmentation" / "full" / "none" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(_record("none", seed, e, "CIFAR-10 (JPEG q75 mirror)")))
    out = tmp_path / "results"
    md = write_report(get("augmentation"), "full", out)
    assert md.name == "augmentation-full.md" and "`full`:" in md.read_text()
    rows = list(csv.DictReader(open(out / "augmentation-full.csv")))
    assert [r["profile"] for r in rows] == ["full"] * 3
    assert "(full)" in write_index([get("augmentation")], out).read_text()


def test_overrides_and_time_capped_runs_are_named_in_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    for seed, e in enumerate([0.40, 0.42]):
        rec = _record("none", seed, e)
        rec["sets"] = {"train.max_minutes": 8.0, "optim.lr": 0.05}
        rec["provenance"]["stopped_by_time"] = seed == 1
        d = tmp_path / "runs" / "augmentation" / "quick" / "none" / f"seed{seed}"
        d.mkdir(parents=True)
        (d / "record.json").write_text(json.dumps(rec))
    text = write_report(get("augmentation"), "quick", tmp_path / "results").read_text()
    assert "| **Overrides (`--set`)** | optim.lr=0.05 train.max_minutes=8.0 |" in text
    assert "| **Stopped by time** | 1 of 2 runs (`train.max_minutes`): none/s1 |" in text
