"""Verdict statistics on hand-computed cases, and tables written only from complete, matching run records."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from engine import registration, stats
from engine.config import config_to_dict
from engine.evidence import gather
from engine.records import committed_records, to_json
from engine.registry import get
from engine.report import citable_profiles, fmt_mean_std, write_all, write_index, write_report
from engine.spec import ReproError


# ----------------------------------------------------------------------------- statistics
def test_t_interval_matches_a_hand_computation():
    mean, lo, hi = stats.interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, df=2) * sd (=1) / sqrt(n)
    assert mean == 2.0 and lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    lo1, hi1 = stats.one_sided([1.0, 2.0, 3.0])
    half1 = 2.919985580355516 / math.sqrt(3)  # t(0.95, df=2)
    assert lo1 == pytest.approx(2 - half1) and hi1 == pytest.approx(2 + half1)


def test_a_bound_above_zero_never_reads_as_zero():
    # char-lm's LSTM-vs-RNN interval was printed "+0.00 to +0.03" though its lower bound is +0.0006
    v = stats.difference([0.0010, 0.0011, 0.0012], [0, 1, 2], "x", scale=1.0, unit="")  # CI +0.0009 to +0.0014
    assert v.status == "supported" and "(95% CI +0.0009 to +0.001)" in v.statistic, v.statistic
    assert [stats.signed(x) for x in (0.00058, -0.004, 0.0051, 0.0, 1.234, 3e-9)] == [
        "+0.0006",
        "-0.004",
        "+0.01",
        "+0.00",
        "+1.23",
        "+3.0e-09",
    ]


def test_a_difference_needs_three_seeds_and_an_interval_that_excludes_zero():
    # mean 0.02, half-width 0.0248: the interval contains 0
    assert stats.difference([0.01, 0.02, 0.03], [0, 1, 2], "x").status == "inconclusive"
    assert stats.difference([0.020, 0.021, 0.022], [0, 1, 2], "x").status == "supported"
    assert stats.difference([-0.020, -0.021, -0.022], [0, 1, 2], "x").status == "contradicted"
    # two seeds decide nothing however clear the sign, and say which way they point
    two = stats.difference([0.5, 0.6], [0, 1], "x")
    assert two.status == "inconclusive" and "points positive" in two.statistic and "2 of the 3" in two.test
    assert stats.difference([], [], "x").status == "inconclusive"
    # every run diverged in one variant and none in the other: no spread, the difference is exact
    assert stats.difference([1.0, 1.0, 1.0], [0, 1, 2], "x").status == "supported"


def test_a_second_look_at_the_same_seeds_splits_the_five_percent():
    diffs = [0.010, 0.013, 0.016, 0.011, 0.006]  # 97.5% CI +0.0054 to +0.0170: still supported
    close = [0.010, 0.020, 0.001, 0.015, 0.004]  # 95% CI +0.0003 to +0.0197; the 97.5% one, -0.0022 to +0.0222
    assert stats.difference(close, list(range(5)), "x").status == "supported"
    with stats.looks(2):
        v = stats.difference(close, list(range(5)), "x")
        assert v.status == "inconclusive" and "97.5% CI" in v.statistic
        assert v.test == "97.5% CI of the mean, 5 pairs; 2 looks at these seeds, 2.5% each (Bonferroni)"
        assert stats.difference(diffs, list(range(5)), "x").status == "supported"
        eq = stats.equivalent([0.001, -0.001, 0.0], [0, 1, 2], "x", 0.003)
        assert "95% interval" in eq.statistic and "TOST, 2.5% each side" in eq.test
    assert stats.alpha() == pytest.approx(0.05)  # the context is left as it was
    with pytest.raises(ValueError):
        with stats.looks(0):
            pass


def test_a_yes_no_outcome_is_decided_by_the_exact_mcnemar_test():
    assert stats.mcnemar_p(18, 0) == 2 / 2**18 and stats.mcnemar_p(3, 0) == 0.25
    assert stats.mcnemar_p(5, 1) == 2 * (1 + 6) / 2**6 and stats.mcnemar_p(0, 0) == 1.0  # C(6,0) + C(6,1)
    yes, no = {s: 1.0 for s in range(8)}, {s: 0.0 for s in range(8)}
    assert stats.more_often(yes, no, "x").status == "supported"  # 8 : 0, p = 0.0078
    assert stats.more_often(no, yes, "x").status == "contradicted"
    assert stats.more_often(yes, yes, "x").status == "inconclusive"  # no pair differs
    assert stats.more_often({0: 1.0, 1: 1.0}, {0: 0.0, 1: 0.0}, "x").status == "inconclusive"  # 2 seeds


def test_a_no_effect_claim_is_decided_against_its_margin():
    # "does not help": the gain must stay below the margin 0.01 (one-sided 95% bounds)
    assert stats.below_margin([0.0, 0.001, -0.001], [0, 1, 2], "x", 0.01).status == "supported"
    assert stats.below_margin([0.05, 0.051, 0.052], [0, 1, 2], "x", 0.01).status == "contradicted"
    assert stats.below_margin([0.0, 0.02, -0.01], [0, 1, 2], "x", 0.01).status == "inconclusive"
    # a large effect the other way (flips hurt digits) supports "does not help"
    assert stats.below_margin([-0.03, -0.028, -0.031], [0, 1, 2], "x", 0.005).status == "supported"
    # a tie on every seed (both fit every training image) supports "at least as well"
    assert stats.below_margin([0.0, 0.0, 0.0], [0, 1, 2], "x", 0.005).status == "supported"
    with pytest.raises(ValueError):
        stats.below_margin([0.0] * 3, [0, 1, 2], "x", 0.0)


def test_equivalence_is_two_one_sided_tests():
    assert stats.equivalent([0.001, -0.001, 0.0], [0, 1, 2], "x", 0.003).status == "supported"
    assert stats.equivalent([0.01, 0.011, 0.012], [0, 1, 2], "x", 0.003).status == "contradicted"
    assert stats.equivalent([-0.01, -0.011, -0.012], [0, 1, 2], "x", 0.003).status == "contradicted"
    assert stats.equivalent([0.0, 0.004, -0.004], [0, 1, 2], "x", 0.003).status == "inconclusive"


def test_combinations_every_part_and_some_part():
    yes, no, open_ = (stats.Verdict(s, s, "t") for s in ("supported", "contradicted", "inconclusive"))
    missing = stats.Verdict("inconclusive", "no runs", "needs runs")
    assert stats.combine_all([yes, yes]).status == "supported"
    assert stats.combine_all([yes, no]).status == "contradicted"
    assert stats.combine_all([yes, open_]).status == "inconclusive"
    assert stats.combine_all([yes, missing]).status == "supported"  # a part the profile did not run
    assert stats.combine_any([no, yes]).status == "supported"
    assert stats.combine_any([no, open_]).status == "inconclusive"
    assert stats.combine_any([no, no, missing]).status == "contradicted"
    assert stats.every_seed([0, 1], [], "x").status == "inconclusive"
    assert stats.every_seed([0, 1, 2], [], "x").status == "supported"
    assert stats.every_seed([0, 1, 2], [2], "x").status == "contradicted"


def test_a_claim_no_run_measured_is_told_apart_from_an_undecided_one():
    # no runs: no verdict at all (a profile may run none of a claim's variants); a few runs: undecided
    for none in (
        stats.difference([], [], "x"),
        stats.equivalent([], [], "x", 0.003),
        stats.every_seed([], [], "x"),
        stats.below_margin([], [], "x", 0.01),
        stats.more_often({}, {}, "x"),
        stats.combine_any([stats.no_runs("a"), stats.no_runs("b")]),
    ):
        assert none.status == "inconclusive" and not none.has_runs, none
    partly = stats.combine_any([stats.no_runs("a"), stats.difference([1.0], [0], "x")])
    for few in (
        stats.difference([0.1, 0.2], [0, 1], "x"),
        stats.equivalent([0.0], [0], "x", 0.003),
        stats.every_seed([0], [], "x"),
        partly,
    ):
        assert few.status == "inconclusive" and few.has_runs, few


def test_cells_show_percentages_and_plain_counts():
    assert fmt_mean_std([0.25, 0.35], "test_acc") == "30.00 ± 7.07"  # accuracies and errors in %
    assert fmt_mean_std([0.1], "test_error") == "10.00"
    assert fmt_mean_std([24800.4, 22000.2], "chars_per_second") == "23400 ± 1980"  # no decimals above 1000
    assert fmt_mean_std([3.0, 5.0], "level_length") == "4 ± 1"  # whole numbers stay whole
    assert fmt_mean_std([1.0] * 9 + [0.0], "diverged") == "0.90 ± 0.32"  # a flag's mean is a share, not "1 ± 0"
    assert fmt_mean_std([1.0, 1.0], "diverged") == "1 ± 0"
    assert fmt_mean_std([0.0018, 0.0014, 0.0013], "train_loss") == "0.0015 ± 0.0003"  # not 0.00 ± 0.00
    assert fmt_mean_std([0.0, 0.0], "train_loss") == "0 ± 0"
    assert fmt_mean_std([2e-15, 4e-15], "train_rmse") == "3.0e-15 ± 1.4e-15"  # an exact fit's rounding noise
    assert fmt_mean_std([float("nan"), None], "test_acc") == "–"


# ----------------------------------------------------------------------------- records -> tables
def record(variant, i, test_error, profile="quick", sets=None, **prov):
    """A run record of augmentation's i-th seed of the profile (the quick table's seeds start at 100), whose config
    is what the profile resolves to and whose claims are registered as they stand (as a real run's are)."""
    exp = get("augmentation")
    seed = exp.profile(profile).first_seed + i
    return {
        "experiment": "augmentation",
        "profile": profile,
        "variant": variant,
        "seed": seed,
        "metrics": {
            "test_error": test_error,
            "best_val_error": test_error + 0.01,
            "train_error": 0.1,
            "gap": test_error - 0.1,
            "epochs": 3.0,
            "wall_time": 12.0,
            "diverged": 0.0,
        },
        "history": [{"epoch": e + 1, "val_error": 0.5 - 0.1 * e} for e in range(3)],
        "config": config_to_dict(exp.resolve(variant, profile, sets or {})),
        "sets": sets or {},
        "registration": registration.for_record(exp, None),
        "provenance": {
            "commit": "abcdef1234567",
            "dirty": False,
            "finished": "2026-11-26T10:00:00+00:00",
            "hardware": "CPU Test (1 thread per run)",
            "precision": "32-true",
            "devices": 1,
            "resumed": False,
            "params": 75290,
            "data": {"name": "MNIST" if "mnist" in variant else "CIFAR-10 (JPEG q75 mirror)", "fingerprint": "f00d"},
            "versions": {"torch": "2.x", "python": "3.x"},  # not in sorted order, as a run writes them
            **prov,
        },
    }


ERRORS = {
    "none": [0.40, 0.42, 0.44],
    "flip": [0.35, 0.36, 0.37],
    "translate": [0.36, 0.38, 0.37],
    "flip+translate": [0.30, 0.33, 0.33],
    "noise": [0.41, 0.40, 0.43],
    "vflip": [0.41, 0.43, 0.42],
    "pixelflip": [0.40, 0.41, 0.43],
    "elastic": [0.38, 0.40, 0.40],
    "rotate": [0.37, 0.38, 0.39],
    "mnist-none": [0.020, 0.021, 0.019],
    "mnist-flip": [0.025, 0.026, 0.027],
    "mnist-elastic": [0.015, 0.016, 0.015],
}
RUNS = 3 * len(ERRORS)  # the quick profile's variants x its 3 seeds


@pytest.fixture
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def put(folders, rec):
    d = folders / "runs" / rec["experiment"] / rec["profile"] / rec["variant"] / f"seed{rec['seed']}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "record.json").write_text(to_json(rec))


def fill(folders, errors=ERRORS, skip=()):
    for variant, errs in errors.items():
        for seed, e in enumerate(errs):
            if (variant, seed) not in skip:
                put(folders, record(variant, seed, e))


def test_a_table_is_written_from_complete_records(folders):
    fill(folders)
    md = write_report(get("augmentation"), "quick").md
    text = md.read_text()
    assert md == folders / "results" / "augmentation.md"
    assert "| `none` | 3 | 42.00 ± 2.00 |" in text and "| `flip+translate` | 3 | 32.00 ± 1.73 |" in text
    for needle in (
        "`quick`",
        "CPU Test (1 thread per run)",
        "CIFAR-10 (JPEG q75 mirror)",
        "MNIST",
        "100, 101, 102",
        "2026-11-26",
        "abcdef1234",
    ):
        assert needle in text
    assert "PARTIAL" not in text and "Other settings" not in text and "Stopped by time" not in text
    # a published figure only where comparable: the quick profile is not He et al.'s setting
    assert "8.75" not in text and "not comparable: ResNet-20 on 45,000 images" in text
    lines = {line.split("|")[2].strip(): line for line in text.splitlines() if line.startswith("| 6 |")}
    assert "**supported**" in lines["Augmenting the training set (flip + translation) lowers test error"]
    # flips hurt digits here (-0.6 pts): "do not help" holds against its margin
    assert "**supported**" in next(v for k, v in lines.items() if k.startswith("Horizontal flips do not help"))
    assert "weak" not in text
    rows = list(csv.DictReader(open(folders / "results" / "augmentation.csv")))
    assert len(rows) == RUNS and {r["variant"] for r in rows} == set(ERRORS)
    assert {r["sets"] for r in rows} == {""} and {r["dirty"] for r in rows} == {"0"}
    # the records are committed beside the table, one file per run
    assert len(committed_records("augmentation", "quick")) == RUNS
    assert (folders / "results" / "runs" / "augmentation" / "quick" / "none" / "seed101.json").is_file()
    index = write_index([get("augmentation")]).read_text()
    assert "[augmentation.md](augmentation.md)" in index and "supported" in index


def test_a_claim_a_table_has_no_runs_for_is_named_beneath_its_verdicts_and_counted_where_it_ran(folders):
    cifar = {k: v for k, v in ERRORS.items() if not k.startswith("mnist")}
    fill(folders, cifar)  # the quick table without its MNIST runs
    text = write_report(get("augmentation"), "quick", partial=True).md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 6 |")]
    assert len(rows) == 11 - 3 and not any("needs runs" in line or "MNIST" in line for line in rows)
    (untested,) = [line for line in text.splitlines() if line.startswith("No verdict here")]
    for claim in ("Horizontal flips do not help digit", "flip helps CIFAR-10 more than MNIST", "lowers MNIST test"):
        assert claim in untested
    index = write_index([get("augmentation")]).read_text()
    assert (
        "5 supported, 3 inconclusive, 3 without runs here" in index and "in the default tables: 5 of 8 (62%)" in index
    )
    for variant in ("mnist-none", "mnist-flip", "mnist-elastic"):  # another table runs them: counted from there
        for seed, error in enumerate(ERRORS[variant]):
            put(folders, record(variant, seed, error, profile="full"))
    write_report(get("augmentation"), "full", partial=True)
    index = write_index([get("augmentation")]).read_text()
    assert "in the default tables: 7 of 10 (70%)" in index  # the two MNIST claims; the contrast needs both in one


def test_report_all_finds_the_profiles_in_the_runs_folder(folders):
    fill(folders)  # quick runs in the runs folder, nothing committed yet
    put(folders, record("none", 0, 0.5, profile="smoke"))
    assert citable_profiles(get("augmentation")) == ["quick"]  # the profile's folder, never a variant's name
    assert [w.md for w in write_all([get("augmentation")])] == [folders / "results" / "augmentation.md"]
    assert len(committed_records("augmentation", "quick")) == RUNS


def test_a_missing_run_stops_the_report_unless_partial(folders):
    fill(folders, skip={("noise", 0)})
    n = len(gather(get("augmentation"), "quick").expected)  # variants x the profile's seeds
    with pytest.raises(ReproError, match=rf"1 of {n} runs missing \(noise/seed100\).*--partial"):
        write_report(get("augmentation"), "quick")
    assert not (folders / "results").exists()  # nothing written
    text = write_report(get("augmentation"), "quick", partial=True).md.read_text()
    assert f"runs: 1 of {n} runs missing (noise/seed100)" in text and "**PARTIAL**" in text


def test_smoke_runs_never_reach_results(folders):
    put(folders, record("none", 0, 0.5, profile="smoke"))
    with pytest.raises(ReproError, match="never written to results"):
        write_report(get("augmentation"), "smoke")
    assert write_all([get("augmentation")]) == []  # --all skips smoke too
    assert not (folders / "results").exists()


def test_a_record_made_with_another_config_is_stale(folders):
    fill(folders)
    path = folders / "runs" / "augmentation" / "quick" / "none" / "seed100" / "record.json"
    rec = json.loads(path.read_text())
    epochs = rec["config"]["train"]["max_epochs"]
    rec["config"]["train"]["max_epochs"] = epochs - 1  # the profile has changed since this run
    path.write_text(json.dumps(rec))
    with pytest.raises(
        ReproError, match=f"made with another config .*train.max_epochs: {epochs - 1} there, {epochs} now"
    ):
        write_report(get("augmentation"), "quick")
    # a key the record lacks was added later: it must be at the field's default to match
    rec["config"]["train"]["max_epochs"] = epochs
    del rec["config"]["train"]["threads"]
    path.write_text(json.dumps(rec))
    evidence = gather(get("augmentation"), "quick")
    assert [k for k, _ in evidence.stale] == [("none", 100)] and "predates" in evidence.stale[0][1]


def test_runs_with_other_settings_get_rows_of_their_own_and_no_verdict(folders):
    fill(folders)
    put(folders, record("none", 2, 0.90, sets={"optim.lr": "0.2"}))  # one run made with --set, in none/seed102
    # the profile's own run of that cell is gone
    with pytest.raises(ReproError, match=rf"1 of {RUNS} runs missing \(none/seed102\)"):
        write_report(get("augmentation"), "quick")
    text = write_report(get("augmentation"), "quick", partial=True).md.read_text()
    assert "| `none` | 2 | 41.00 ± 1.41 |" in text and "| `none` (--set optim.lr=0.2) | 1 | 90.00 |" in text
    assert "1 run(s) with other settings are shown in rows of their own" in text
    assert f"Other settings** | 1 of {RUNS} runs: none/s102: --set optim.lr=0.2" in text


def test_a_set_run_of_a_committed_cell_leaves_the_citable_table_and_its_record_alone(folders, capsys):
    fill(folders)
    write_report(get("augmentation"), "quick")  # the citable table, its records committed beside it
    committed = folders / "results/runs/augmentation/quick/none/seed100.json"
    table, record_before = (folders / "results/augmentation.md").read_text(), committed.read_text()
    put(folders, record("none", 0, 0.90, sets={"optim.lr": "0.2"}))  # this machine's --set run of that cell
    evidence = gather(get("augmentation"), "quick")
    assert evidence.complete and [k for k, _ in evidence.aside] == [("none", 100)]
    assert "kept out of the table: none/seed100: this machine's run (--set optim.lr=0.2)" in evidence.aside_note()
    write_report(get("augmentation"), "quick")
    assert (folders / "results/augmentation.md").read_text() == table and committed.read_text() == record_before
    # the other way round, a committed --set run of a cell is replaced by the profile's own run of it
    shutil.rmtree(folders / "runs")
    put(folders, record("none", 1, 0.90, sets={"optim.lr": "0.2"}))
    write_report(get("augmentation"), "quick", partial=True)  # commits it, in a row of its own
    put(folders, record("none", 1, 0.42))
    evidence = gather(get("augmentation"), "quick")
    assert evidence.complete and not evidence.aside


def test_a_time_cap_is_not_a_setting_that_splits_the_table(folders):
    # GPU windows cap each run at the time they have left: 2 min in one window, 3.5 in the next
    for variant, errs in ERRORS.items():
        for seed, e in enumerate(errs):
            put(folders, record(variant, seed, e, sets={"train.max_minutes": 2.0 if seed else 3.5}))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert "Other settings" not in text and "rows of their own" not in text and "| `none` | 3 | 42.00 ± 2.00 |" in text


def test_a_fresh_clone_rebuilds_every_table_byte_for_byte_from_the_committed_records(folders):
    fill(folders)
    write_report(get("augmentation"), "quick")
    write_index([get("augmentation")])
    before = {p.name: p.read_bytes() for p in (folders / "results").glob("*") if p.is_file()}
    shutil.rmtree(folders / "runs")  # a clone has no runs folder
    for p in (folders / "results").glob("*"):
        if p.is_file():
            p.unlink()
    write_all([get("augmentation")])
    write_index([get("augmentation")])
    after = {p.name: p.read_bytes() for p in (folders / "results").glob("*") if p.is_file()}
    assert set(after) == set(before) == {"augmentation.md", "augmentation.csv", "augmentation.png", "README.md"}
    assert after == before


def test_git_tracks_the_committed_records_and_ignores_the_runs_folder():
    """The records beside the tables are what a clone rebuilds them from: a pattern that ignores every
    ``runs/`` folder would keep them out of every commit without a word."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=repo).returncode == 0

    assert not ignored("results/runs/augmentation/quick/none/seed100.json")
    assert ignored("runs/augmentation/quick/none/seed0/record.json")  # the default runs folder stays local


def test_runs_from_two_machines_merge_and_a_rerun_replaces_its_cell(folders):
    fill(folders, skip={(v, 2) for v in ERRORS})
    write_report(get("augmentation"), "quick", partial=True)
    shutil.rmtree(folders / "runs")
    for variant, errs in ERRORS.items():  # seed 2 of every variant, made on a GPU later
        put(folders, record(variant, 2, errs[2], hardware="1x NVIDIA H200", finished="2026-11-27T10:00:00+00:00"))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert "CPU Test (1 thread per run); 1x NVIDIA H200" in text and "2026-11-26 to 2026-11-27" in text
    assert "PARTIAL" not in text and len(committed_records("augmentation", "quick")) == RUNS


def test_runs_that_predate_the_stop_flag_under_a_time_cap_are_said_to_be_unknown(folders):
    fill(folders)
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert "Stopped by time" not in text  # no cap (the quick profile's): nothing to say
    for variant, errs in ERRORS.items():  # every run under a 2-minute cap (`--set train.max_minutes=2`)
        for seed, e in enumerate(errs):
            put(folders, record(variant, seed, e, sets={"train.max_minutes": 2.0}))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert (
        "| **Stopped by time** | not recorded by runs made before the records said so; they ran under a cap of 2 "
        in text
    )
    put(folders, record("none", 0, 0.40, sets={"train.max_minutes": 2.0}, stopped_by_time=False))
    put(folders, record("none", 1, 0.42, sets={"train.max_minutes": 2.0}, stopped_by_time=True))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert f"| **Stopped by time** | 1 of {RUNS} runs (`train.max_minutes`): none/s101; not recorded by " in text


def test_time_capped_and_diverged_runs_are_named(folders):
    fill(folders)
    put(folders, record("none", 1, 0.42, stopped_by_time=True))
    diverged = record("noise", 0, float("nan"))  # its scores are NaN (null): the module's UNDEFINED_WHEN_DIVERGED
    diverged["metrics"].update(diverged=1.0, epochs=1.0, wall_time=3.0)
    put(folders, diverged)
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert f"| **Stopped by time** | 1 of {RUNS} runs (`train.max_minutes`): none/s101 |" in text
    assert (
        f"| **Diverged** | 1 of {RUNS} runs (scores a diverged model cannot give are left out of means): noise/s100 |"
        in text
    )
    # the scores average the 2 runs that have them; what the diverged run did measure (its 1 epoch) counts
    row = next(line for line in text.splitlines() if line.startswith("| `noise` |"))
    assert row.startswith("| `noise` | 3 (s100 diverged) | 41.50 ± 2.12 |") and "| 2 ± 1 | 9 ± 5 |" in row, row
    # strict JSON: the diverged run's NaN is a null in its committed record
    assert '"test_error":null' in (folders / "results/runs/augmentation/quick/noise/seed100.json").read_text()


def test_runs_made_under_another_version_of_a_claim_give_it_no_verdict_and_are_never_counted(folders):
    fill(folders)
    changed = record("none", 0, ERRORS["none"][0])
    changed["registration"]["claims"] = {k: "0" * 12 for k in changed["registration"]["claims"]}
    put(folders, changed)
    text = write_report(get("augmentation"), "quick").md.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 6 |")]
    note = f"changed after its runs (1 of {RUNS} runs carry another version)"
    assert len(rows) == 11 and all(note in r for r in rows)
    # no verdict, whatever the test reads; the measurement is shown as it is ...
    assert all(r.split(" | ")[2].startswith(f"**no verdict** ({note.split(' (')[0]}; its test reads ") for r in rows)
    assert any("its test reads supported)" in r for r in rows) and not any("| **supported** |" in r for r in rows)
    index = write_index([get("augmentation")]).read_text()
    assert "in the default tables: 0 of 11 (0%); 11 of them were not registered" in index  # ... and never counted
    assert "| 11 no verdict (not registered before their runs) |" in index


def test_runs_older_than_registration_decide_nothing_and_earlier_versions_count_as_looks(folders):
    for variant, errs in ERRORS.items():
        for i, e in enumerate(errs):
            rec = record(variant, i, e)
            rec.pop("registration")
            put(folders, rec)
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert text.count(f"runs predate registration ({RUNS} of {RUNS} runs carry no fingerprints)") == 11
    assert text.count("| **no verdict** (runs predate registration; its test reads ") == 11
    # every run replaced one made under an earlier version of each claim: two looks at these seeds
    for variant, errs in ERRORS.items():
        for i, e in enumerate(errs):
            rec = record(variant, i, e)
            rec["registration"]["earlier"] = {k: ["0" * 12] for k in rec["registration"]["claims"]}
            put(folders, rec)
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert text.count("registered before its runs; 2 looks at these seeds") == 11
    assert "97.5% CI of the mean, 3 pairs; 2 looks at these seeds, 2.5% each (Bonferroni)" in text


def test_a_pilot_table_lists_its_runs_decides_nothing_and_stays_out_of_the_index(folders):
    fill(folders)
    put(folders, record("rotate", 0, 0.55, profile="pilot"))  # one cell of a pilot: a grid is not needed
    written = write_all([get("augmentation")])
    pilot = (folders / "results" / "augmentation-pilot.md").read_text()
    assert [w.md.name for w in written] == ["augmentation.md", "augmentation-pilot.md"]
    assert "None: a pilot sizes a table" in pilot and "| 6 |" not in pilot and "**PARTIAL**" in pilot
    assert (folders / "results/runs/augmentation/pilot/rotate/seed0.json").is_file()  # kept beside the tables
    index = write_index([get("augmentation")]).read_text()
    assert "augmentation-pilot.md" not in index and "[augmentation.md](augmentation.md)" in index


def test_a_claim_only_a_larger_profile_decides_is_marked_and_counted_from_that_profile_alone(folders):
    import dataclasses

    exp = get("augmentation")
    claims = exp.claims
    first = dataclasses.replace(claims[0], decided_by="full")  # flip + translation, decided by the GPU profile
    object.__setattr__(exp, "claims", (first, *claims[1:]))
    try:
        fill(folders)
        text = write_report(exp, "quick").md.read_text()
        row = next(line for line in text.splitlines() if "flip + translation" in line)
        assert "**supported** (decided only by the `full` profile: not counted here)" in row
        index = write_index([exp]).read_text()
        assert "in the default tables: 7 of 10 (70%)" in index and "1 claim(s) that only a larger profile" in index
        assert "not counted; counted as undecided, they make it 7 of 11 (63.6%)." in index
    finally:
        object.__setattr__(exp, "claims", claims)


def test_a_table_names_the_instruction_set_and_gpu_stack_its_runs_recorded(folders):
    fill(folders)
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert "**Instruction set**" not in text and "**GPU stack**" not in text  # these records name neither
    put(folders, record("none", 0, 0.40, cpu_capability="AVX512"))
    put(folders, record("none", 1, 0.42, cpu_capability="AVX2"))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert f"| **Instruction set** | AVX2; AVX512 ({RUNS - 2} runs predate it) |" in text  # two kinds of machine
    h100 = {"hardware": "1x NVIDIA H100 80GB HBM3", "cpu_capability": "AVX512"}
    stack = {"device": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "driver": "580.1", "cuda": "13.0"}
    put(folders, record("none", 2, 0.44, **h100))  # a GPU run made before records named the stack
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert "| **GPU stack** | not recorded: these GPU runs predate it (2026-12-06);" in text
    put(folders, record("flip", 0, 0.35, **h100, gpu={**stack, "cudnn": "91002"}))
    text = write_report(get("augmentation"), "quick").md.read_text()
    assert (
        "| **GPU stack** | NVIDIA H100 80GB HBM3 (compute 9.0), driver 580.1, CUDA 13.0, cuDNN 91002 "
        "(1 GPU runs predate it) |" in text
    )
