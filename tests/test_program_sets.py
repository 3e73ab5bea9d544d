"""Learning to Execute's evaluation programs as a datasets.DatasetDict: the data module's programs in its order,
a stable fingerprint, what transformed runs read, and `repro programs --save` (refusals in one line, exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from datamodules.configs import ProgramDataConfig
from datamodules.execute import ProgramDataModule, collate
from datamodules.program_sets import evaluation_dataset, save_evaluation_programs, saved_fingerprint
from datamodules.programs import encode, scramble_table
from engine.cli import main

SMALL = {"task": "program", "length": 2, "nesting": 2, "val_size": 12, "test_size": 20}


@pytest.fixture
def hf():
    return pytest.importorskip("datasets")


def rows_of(dm: ProgramDataModule, name: str, split: str) -> list[dict]:
    length, nesting = dm.curriculum.target
    return [
        {"input": e.input, "target": e.target, "split": split, "length": length, "nesting": nesting}
        for e in dm.examples(name)
    ]


@pytest.mark.parametrize("target", [SMALL, {**SMALL, "task": "addition", "length": 3, "nesting": 4}])
def test_the_saved_set_holds_the_data_modules_programs_in_its_order(hf, tmp_path, target):
    cfg = ProgramDataConfig(**target)
    path, counts, fingerprint, written = save_evaluation_programs(cfg, tmp_path / "set")
    back = hf.load_from_disk(str(path))
    assert written and set(back) == {"validation", "test"} and counts == {"validation": 12, "test": 20}
    assert back["validation"].column_names == ["input", "target", "split", "length", "nesting"]
    dm = ProgramDataModule(ProgramDataConfig(**target), seed=7)  # a run's seed does not change them
    assert back["validation"].to_list() == rows_of(dm, "val", "validation")
    assert back["test"].to_list() == rows_of(dm, "test", "test")
    assert {r["nesting"] for r in back["test"]} == {1 if target["task"] == "addition" else 2}  # as the module uses it
    assert saved_fingerprint(back) == saved_fingerprint(back["test"]) == fingerprint and len(fingerprint) == 64


def test_the_fingerprint_is_stable_and_names_the_target_the_sizes_and_the_input(hf, tmp_path):
    first = save_evaluation_programs(ProgramDataConfig(**SMALL), tmp_path / "a")[2]
    again = save_evaluation_programs(ProgramDataConfig(**SMALL), tmp_path / "b")[2]
    assert first == again == saved_fingerprint(hf.load_from_disk(str(tmp_path / "b")))
    others = [
        {**SMALL, "length": 3},
        {**SMALL, "nesting": 3},
        {**SMALL, "task": "copy"},
        {**SMALL, "test_size": 21},
        {**SMALL, "reverse": True},
        {**SMALL, "scramble": 2},
    ]
    prints = {evaluation_dataset(ProgramDataConfig(**o))[1] for o in others}
    assert len(prints) == len(others) and first not in prints
    # the settings that do not change the programs do not change the fingerprint either
    same = {**SMALL, "curriculum": "naive", "batch_size": 7, "eval_batch_size": 3, "mix_share": 0.5}
    assert evaluation_dataset(ProgramDataConfig(**same))[1] == first
    # a smaller set is the start of a larger one
    larger = evaluation_dataset(ProgramDataConfig(**{**SMALL, "val_size": 30, "test_size": 40}))[0]
    smaller = hf.load_from_disk(str(tmp_path / "a"))
    assert larger["test"].to_list()[:20] == smaller["test"].to_list()


def test_an_input_option_adds_what_the_network_reads_as_collate_encodes_it(hf):
    cfg = ProgramDataConfig(**SMALL, reverse=True, double=True, scramble=5)
    dataset, _ = evaluation_dataset(cfg)
    test = dataset["test"]
    assert test.column_names[-2:] == ["model_input", "model_target"]
    examples = ProgramDataModule(cfg).examples("test")
    batch = collate(examples, cfg.reverse, cfg.double, scramble_table(cfg.scramble))
    for i, row in enumerate(test):
        assert (row["input"], row["target"]) == (examples[i].input, examples[i].target)  # stored plain
        assert encode(row["model_input"]) == batch["src"][i, : batch["src_len"][i]].tolist()
        assert encode(row["model_target"]) == batch["tgt"][i, : batch["tgt_len"][i]].tolist()
    plain = ProgramDataConfig(**SMALL, reverse=True)
    rows = evaluation_dataset(plain)[0]["validation"]
    assert all(r["model_input"] == r["input"][::-1] and r["model_target"] == r["target"] for r in rows)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["programs", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_repro_programs_save_writes_once_and_refuses_another_set_in_one_line(hf, tmp_path, capsys):
    target = ["--length", "2", "--nesting", "2", "--val-size", "12", "--test-size", "20"]
    folder = str(tmp_path / "eval")
    code, out, err = cli(capsys, "--save", folder, *target)
    fingerprint = evaluation_dataset(ProgramDataConfig(**SMALL))[1]
    assert code == 0 and err == "" and out.count("\n") == 1
    assert out.startswith(f"saved: {folder}: 12 validation and 20 test programs") and fingerprint in out
    back = hf.load_from_disk(folder)
    assert back["test"].to_list() == rows_of(ProgramDataModule(ProgramDataConfig(**SMALL)), "test", "test")
    code, out, _ = cli(capsys, "--save", folder, *target)  # the same set again: kept as it is
    assert code == 0 and out.startswith("already there (same fingerprint)") and fingerprint in out
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    for argv, message in [
        (["--save", folder, "--length", "3"], "the folder holds another set"),
        (["--save", str(tmp_path / "full")], "the folder holds other files"),
        (["--save", str(tmp_path / "file")], "a file is there"),
        (["--save", str(tmp_path / "file" / "sub")], "is a file, not a folder"),
        (["--save", str(tmp_path / "x"), "--seed", "1"], "--seed does not apply to --save"),
        (["--save", str(tmp_path / "x"), "--count", "3", "--split", "val"], "--count, --split do not apply"),
        (["--save", str(tmp_path / "x"), "--nesting", "11"], "nesting must be an integer in"),
        (["--reverse"], "--reverse goes with --save"),
        (["--save", str(tmp_path / "x"), "--variant", "addition-2-combined", "--length", "3"], "drop --length"),
        (["--save", str(tmp_path / "x"), "--variant", "no-such"], "unknown variant"),
    ]:
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "x").exists() and hf.load_from_disk(folder)["test"].num_rows == 20


def test_an_unwritable_folder_is_one_line(hf, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    folders = [locked, locked / "sub"]
    if os.geteuid() == 0:  # root writes into read-only folders; nobody creates folders in /proc
        if not Path("/proc/self").is_dir():
            pytest.skip("no folder here refuses root")
        folders = [Path("/proc/lecture7-repro-programs")]
    for folder in folders:
        code, out, err = cli(capsys, "--save", str(folder), "--val-size", "3", "--test-size", "3")
        assert code == 2 and err.count("\n") == 1 and "cannot be written" in err, err


def test_save_takes_a_learning_to_execute_run_s_target_sizes_and_input(hf, tmp_path, capsys):
    from engine.registry import get

    folder = tmp_path / "smoke"
    variant = "addition-2-baseline-scrambled"
    code, out, err = cli(capsys, "--save", str(folder), "--variant", variant, "--profile", "smoke")
    cfg = get("learning-to-execute").resolve(variant, "smoke").data
    assert code == 0 and cfg.scramble and f"{cfg.val_size} validation and {cfg.test_size} test programs" in out
    back = hf.load_from_disk(str(folder))
    table = scramble_table(cfg.scramble)
    expected = ProgramDataModule(cfg).examples("val")
    assert [r["input"] for r in back["validation"]] == [e.input for e in expected]
    assert [encode(r["model_input"]) for r in back["validation"]] == [
        table[np.array(encode(e.input))].tolist() for e in expected
    ]
