"""What the machine can refuse a user (a full disk, read-only folders, a file size limit, broken links, memory, an
unwritable HOME, a locale without '±'), bad launch choices, damaged records and an interrupted report: each ends in
one line and a documented exit code, leaves no temporary file, and loses nothing finished."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from base.errors import ReproError
from base.files import write_atomic
from engine.records import parse_record
from engine.report import md_table
from tests.conftest import repro_here

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "rnn-examples", "--profile", "smoke", "--variant", "summing", "--seed", "0", "--wandb", "off"]


def _one_line(err: str) -> str:
    # an in-process run after another test's may meet a logging handler whose stream that test's capture closed:
    # Python prints "--- Logging error ---" with a traceback of its own; that noise is the harness's, not ours
    ours = re.sub(r"--- Logging error ---.*?Arguments: \(\)\n", "", err, flags=re.S)
    lines = [x for x in ours.splitlines() if x.startswith("repro:")]
    assert len(lines) == 1 and "Traceback" not in ours, err[-3000:]
    return lines[0]


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp" in p.name or ".staged" in p.name]


@pytest.fixture
def tmpfs(tmp_path):
    """A small file system of its own (root only: CI runs as root), unmounted afterwards."""
    made = []

    def mount(name: str, options: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)]).returncode:
            pytest.skip("needs root to mount a tmpfs")
        made.append(where)
        return where

    yield mount
    for where in made:
        subprocess.run(["umount", "-l", str(where)])


def test_a_file_size_limit_is_one_line_and_leaves_no_temporary_file(data_env):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-m", "engine", *RUN],
        env={**os.environ, **data_env},
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit,
    )
    assert result.returncode == 2 and "[EFBIG]" in _one_line(result.stderr) and "ulimit -f" in result.stderr
    assert _temp_files(Path(data_env["REPRO_RUNS_DIR"])) == []


def test_a_full_disk_for_the_preview_keeps_the_finished_run(data_env, tmpfs, capsys, monkeypatch):
    runs = tmpfs("runs", "size=64k")
    monkeypatch.setenv("REPRO_RUNS_DIR", str(runs))
    code, _, err = repro_here(capsys, *RUN)
    assert code == 0 and "preview not written" in _one_line(err) and "[ENOSPC]" in err
    assert (runs / "rnn-examples/smoke/summing/seed0/record.json").is_file() and _temp_files(runs) == []


def test_read_only_runs_and_results_folders_are_one_line(data_env, tmpfs, capsys, monkeypatch):
    runs = tmpfs("runs", "size=1m,ro")
    monkeypatch.setenv("REPRO_RUNS_DIR", str(runs))
    code, _, err = repro_here(capsys, *RUN)
    assert code == 2 and "[EROFS]" in _one_line(err) and str(runs) in err
    checkout = tmpfs("checkout", "size=8m")  # a read-only checkout: the results folder and the one around it
    results = checkout / "results"
    shutil.copytree(REPO / "results/runs/ensembles", results / "runs/ensembles")
    subprocess.run(["mount", "-o", "remount,ro", str(checkout)], check=True)
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(results))
    monkeypatch.setenv("REPRO_RUNS_DIR", str(Path(data_env["REPRO_RUNS_DIR"])))
    code, _, err = repro_here(capsys, "report", "ensembles", "--wandb", "off")
    assert code == 2 and "[EROFS]" in _one_line(err)


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_a_broken_runs_folder_link_is_one_line(kind, data_env, tmp_path, capsys, monkeypatch):
    link = tmp_path / "link"
    if kind == "dangling":
        link.symlink_to(tmp_path / "nowhere")
    else:
        (tmp_path / "other").symlink_to(link)
        link.symlink_to(tmp_path / "other")
    monkeypatch.setenv("REPRO_RUNS_DIR", str(link))
    code, _, err = repro_here(capsys, *RUN)
    assert code == 2 and ("[ELOOP]" if kind == "loop" else "[EEXIST]") in _one_line(err) and str(link) in err


def test_an_unwritable_home_without_a_cache_folder_is_one_line(data_env, capsys, monkeypatch):
    monkeypatch.setenv("HOME", "/proc")
    monkeypatch.delenv("REPRO_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    code, _, err = repro_here(
        capsys, "run", "bottleneck", "--profile", "smoke", "--variant", "none", "--seed", "0", "--wandb", "off"
    )
    assert code == 2 and "/proc/.cache" in _one_line(err) and "REPRO_CACHE_DIR" in err


def test_out_of_memory_for_a_huge_setting_is_one_line(data_env, capsys):
    code, _, err = repro_here(
        capsys,
        "run",
        "bottleneck",
        "--profile",
        "smoke",
        "--variant",
        "none",
        "--seed",
        "0",
        "--wandb",
        "off",
        "--set",
        "model.hidden=2000000000",
    )
    assert code == 2 and "out of memory" in _one_line(err)


def test_a_locale_that_cannot_write_the_tables_characters_still_works(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "REPRO_RUNS_DIR": str(tmp_path / "runs")}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "compare", "ensembles"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "\\xb1" in result.stdout, result.stderr
    write_atomic(tmp_path / "t.md", "5.12 ± 0.06 – ok")  # files are UTF-8 whatever the locale
    assert (tmp_path / "t.md").read_bytes() == "5.12 ± 0.06 – ok".encode()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--precision", "8-bit"], "--precision must be one of"),
        (["--accelerator", "gpu"], "no GPU here"),
    ],
)
def test_launch_choices_that_cannot_work_leave_no_folder(args, message, data_env, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = repro_here(capsys, *RUN, *args)
    assert code == 2 and message in _one_line(err)
    assert not Path(data_env["REPRO_RUNS_DIR"]).exists()


def test_devices_that_do_not_split_the_batch_are_refused_before_any_run(data_env, capsys):
    code, _, err = repro_here(
        capsys,
        "run",
        "bottleneck",
        "--profile",
        "smoke",
        "--devices",
        "3",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        "--wandb",
        "off",
    )
    assert code == 2 and "does not split evenly over 3 processes" in _one_line(err)
    assert not list(Path(data_env["REPRO_RUNS_DIR"]).rglob("config.yaml"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "ensembles", "--all"], "report needs an experiment name or --all (not both)"),
        (["report", "--all", "--wandb", "off"], "no run records under"),
    ],
)
def test_report_refusals(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside a checkout: no results/runs here
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("REPRO_RESULTS_DIR", raising=False)
    code, _, err = repro_here(capsys, *args)
    assert code == 2 and message in _one_line(err)
    assert list(tmp_path.iterdir()) == []


def test_a_report_that_fails_midway_writes_nothing_and_a_rerun_writes_all(capsys, tmp_path, monkeypatch):
    from engine import report

    results = tmp_path / "results"
    shutil.copytree(REPO / "results/runs/ensembles", results / "runs/ensembles")
    monkeypatch.setenv("REPRO_RESULTS_DIR", str(results))
    monkeypatch.setenv("REPRO_RUNS_DIR", str(tmp_path / "runs"))
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    real = report.write_index

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(results / "README.md"))

    monkeypatch.setattr(report, "write_index", full_disk)
    code, _, err = repro_here(capsys, "report", "ensembles", "--wandb", "off")
    assert code == 2 and "[ENOSPC]" in _one_line(err)
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before  # the table was not half-written
    assert list(tmp_path.glob(".results*")) == [] and _temp_files(tmp_path) == []
    monkeypatch.setattr(report, "write_index", real)
    code, _, err = repro_here(capsys, "report", "ensembles", "--wandb", "off")
    assert code == 0, err
    assert {p.name for p in results.iterdir()} >= {"ensembles.md", "ensembles.png", "ensembles.csv", "README.md"}
    assert (REPO / "results/ensembles.md").read_text() == (results / "ensembles.md").read_text()


def _record(**changes) -> dict:
    record = json.loads((REPO / "results/runs/ensembles/quick/init/seed100.json").read_text())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = record
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[leaf]
        else:
            node[leaf] = value
    return record


@pytest.mark.parametrize(
    "record, field",
    [
        (_record(provenance__commit=KeyError), "provenance.commit"),
        (_record(provenance__finished=1), "provenance.finished"),
        (_record(metrics__test_error=10**400), "metrics.test_error"),
        (_record(metrics__test_error="0.1"), "metrics.test_error"),
        (_record(metrics__test_error=True), "metrics.test_error"),
        (_record(history={"epoch": 1}), "history"),
        (_record(history=[{"val_error": [1, 2]}]), "history.val_error"),
        (_record(seed=-1), "seed"),
        (_record(variant="../../etc"), "variant"),
        (_record(deep=json.loads("[" * 12 + "1" + "]" * 12)), "deep"),
    ],
)
def test_a_record_that_is_not_well_formed_is_refused_naming_the_field(record, field, tmp_path):
    path = tmp_path / "seed0.json"
    text = json.dumps(record)
    with pytest.raises(ReproError, match=rf"{path}.*{field.replace('.', '[.]')}"):
        parse_record(text, path)


def test_records_too_large_or_too_deep_for_json_are_refused(tmp_path):
    with pytest.raises(ReproError, match="MiB"):
        parse_record(b" " * (17 * 2**20), tmp_path / "a.json")
    with pytest.raises(ReproError, match="corrupt"):
        parse_record("[" * 100_000 + "]" * 100_000, tmp_path / "b.json")
    for path in (REPO / "results/runs").rglob("*.json"):  # every committed record is well formed
        parse_record(path.read_bytes(), path)


def test_text_from_records_cannot_break_a_table_or_inject_html():
    table = md_table(["", ""], [["Hardware", "CPU\n# INJECTED <script>alert(1)</script>"], ["rank", "<= k"]])
    assert table.count("\n") == 3 and "# INJECTED" in table and "<script" not in table and "<= k" in table


def test_a_checkpoint_that_cannot_be_read_for_a_disk_error_is_kept(tmp_path, monkeypatch):
    from engine import runner

    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"a checkpoint")
    spec = SimpleNamespace(dir=tmp_path, label="x/y/z/seed0")

    def io_error(path):
        raise OSError(errno.EIO, "Input/output error", str(path))

    monkeypatch.setattr(runner, "checkpoint_identity", io_error)
    with pytest.raises(ReproError, match="it is kept"):
        runner._resume_point(spec, "identity", "")
    assert ckpt.read_bytes() == b"a checkpoint"
    monkeypatch.setattr(runner, "checkpoint_identity", lambda path: (_ for _ in ()).throw(EOFError("truncated")))
    assert runner._resume_point(spec, "identity", "") is None and not ckpt.exists()  # damaged: the run starts afresh
