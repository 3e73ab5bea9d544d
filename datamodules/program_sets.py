"""Learning to Execute's fixed evaluation programs as a Hugging Face ``datasets.DatasetDict``, to share and reuse.

Every run of a target (task, length, nesting) is validated and tested on the same programs, whatever its seed,
curriculum or input option: ``ProgramDataModule.examples`` draws them from a generator seeded by the task, the
split and the difficulty alone. This module writes exactly those programs, in the same order, as
``{"validation": Dataset, "test": Dataset}`` with the columns

- ``input``: the program as generated (plain characters, before any reversal, doubling or scrambling);
- ``target``: its printed output followed by the end mark ".";
- ``split``: "validation" or "test"; ``length``, ``nesting``: the target's difficulty (the nesting of addition
  and copy is 1, as the data module uses it).

The programs are stored plain, since every input option of a target is evaluated on the same programs. With an
input option (``reverse``, ``double``, ``scramble``) two more columns hold what the network then reads and must
write: ``model_input`` (the input reversed and/or doubled, then scrambled) and ``model_target`` (the target,
scrambled); without one they are left out.

A set of n validation programs is the first n of any larger one (the generator draws them one after another), so
the paper-scale sizes (1,000 and 2,000) hold every smaller profile's sets as prefixes.

Fingerprint: the sha256 of a header (format, task, input options) and of every row as canonical JSON, validation
then test; it is written into each split's ``info.description`` (``datasets.Dataset.from_dict`` takes no
fingerprint of its own, and the library's internal one is random for in-memory data), and read back by
``saved_fingerprint``. The same target and sizes give the same fingerprint on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from base.errors import ReproError
from base.files import temp_path
from datamodules.configs import ProgramDataConfig
from datamodules.hf import import_datasets

SPLITS = {"validation": "val", "test": "test"}  # the DatasetDict's split -> the data module's name for it
FORMAT = "lecture7-repro/learning-to-execute/evaluation-programs/1"
_FINGERPRINT = re.compile(r"fingerprint: sha256:([0-9a-f]{64})")


def _transformed(cfg: ProgramDataConfig) -> bool:
    return bool(cfg.reverse or cfg.double or cfg.scramble or cfg.blind)


def evaluation_rows(cfg: ProgramDataConfig) -> dict[str, list[dict]]:
    """The rows of each split: the data module's validation and test programs at the target, in its order."""
    from datamodules.execute import ProgramDataModule  # (torch: only when the rows are made)
    from datamodules.programs import decode, encode, scramble_table, transform_input

    dm = ProgramDataModule(cfg)
    length, nesting = dm.curriculum.target
    table = scramble_table(cfg.scramble) if cfg.scramble else None

    def scrambled(text: str) -> str:
        return decode(table[encode(text)]) if table is not None else text

    out = {}
    for split, name in SPLITS.items():
        rows = []
        for ex in dm.examples(name):
            row = {"input": ex.input, "target": ex.target, "split": split, "length": length, "nesting": nesting}
            if _transformed(cfg):
                row["model_input"] = scrambled(transform_input(ex.input, cfg.reverse, cfg.double, cfg.blind))
                row["model_target"] = scrambled(ex.target)
            rows.append(row)
        out[split] = rows
    return out


def _header(cfg: ProgramDataConfig) -> dict:
    return {"format": FORMAT, "task": cfg.task, "reverse": cfg.reverse, "double": cfg.double, "scramble": cfg.scramble}


def rows_fingerprint(cfg: ProgramDataConfig, rows: dict[str, list[dict]]) -> str:
    h = hashlib.sha256(json.dumps(_header(cfg), sort_keys=True).encode() + b"\n")
    for split in SPLITS:
        for row in rows[split]:
            h.update(json.dumps(row, sort_keys=True, ensure_ascii=True).encode() + b"\n")
    return h.hexdigest()


def describe(cfg: ProgramDataConfig, counts: dict[str, int], fingerprint: str) -> str:
    options = [k for k in ("reverse", "double") if getattr(cfg, k)] + (
        [f"scramble {cfg.scramble}"] * bool(cfg.scramble)
    )
    shown = f"input options: {', '.join(options)} (model_input, model_target)" if options else "plain input"
    length, nesting = cfg.length, cfg.target_nesting
    return (
        f"Learning to Execute (Zaremba & Sutskever 2014) evaluation programs of lecture7-repro: task {cfg.task}, "
        f"length {length}, nesting {nesting}; {counts['validation']} validation and {counts['test']} test programs, "
        f"as ProgramDataModule.examples draws them for every run of this target; {shown}; format {FORMAT}; "
        f"fingerprint: sha256:{fingerprint}"
    )


def evaluation_dataset(cfg: ProgramDataConfig):
    """(DatasetDict {validation, test}, fingerprint) of a target's evaluation programs."""
    cfg.validate()
    datasets = import_datasets("repro programs --save")
    rows = evaluation_rows(cfg)
    fingerprint = rows_fingerprint(cfg, rows)
    columns = ["input", "target", "split", "length", "nesting"] + ["model_input", "model_target"] * _transformed(cfg)
    types = {"length": "int32", "nesting": "int32"}
    features = datasets.Features({c: datasets.Value(types.get(c, "string")) for c in columns})
    counts = {split: len(r) for split, r in rows.items()}
    info = datasets.DatasetInfo(description=describe(cfg, counts, fingerprint), features=features)
    parts = {}
    for split, split_rows in rows.items():
        mapping = {c: [row[c] for row in split_rows] for c in columns}
        parts[split] = datasets.Dataset.from_dict(mapping, features=features, info=info.copy(), split=split)
    return datasets.DatasetDict(parts), fingerprint


def saved_fingerprint(dataset) -> str | None:
    """The fingerprint a saved set carries (a DatasetDict or one of its splits); None when there is none."""
    part = next(iter(dataset.values())) if hasattr(dataset, "values") else dataset
    m = _FINGERPRINT.search(part.info.description or "")
    return m[1] if m else None


def _existing_fingerprint(folder: Path) -> str | None:
    datasets = import_datasets("repro programs --save")
    try:
        return saved_fingerprint(datasets.load_from_disk(str(folder)))
    except Exception:  # not a saved data set (or a damaged one): it is not ours to overwrite
        return None


def save_evaluation_programs(cfg: ProgramDataConfig, folder: str | Path) -> tuple[Path, dict[str, int], str, bool]:
    """Write a target's evaluation programs into ``folder`` (new or empty) with ``save_to_disk``; a folder that
    already holds the same set (same fingerprint) is kept. Returns (path, counts, fingerprint, written)."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ReproError(f"--save {folder}: a file is there; give a new or empty folder")
    blocked = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise ReproError(f"--save {folder}: {blocked} is a file, not a folder")
    dataset, fingerprint = evaluation_dataset(cfg)
    counts = {split: len(part) for split, part in dataset.items()}
    if folder.is_dir() and any(folder.iterdir()):
        there = _existing_fingerprint(folder)
        if there == fingerprint:
            return folder, counts, fingerprint, False
        what = f"another set (fingerprint {there[:16]})" if there else "other files"
        raise ReproError(f"--save {folder}: the folder holds {what}; give a new or empty folder")
    tmp = temp_path(folder)  # written beside it, then renamed into place (over the empty folder, if one is there)
    try:
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise PermissionError(13, "the folder is not writable")
        folder.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_to_disk(str(tmp))
        os.replace(tmp, folder)
    except Exception as e:
        why = getattr(e, "strerror", None) or str(e).strip().splitlines()[0][:200]
        raise ReproError(f"--save {folder} cannot be written: {type(e).__name__}: {why}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder, counts, fingerprint, True


def evaluation_config(**options) -> ProgramDataConfig:
    """The data config of a target given by its options (task, length, nesting, sizes, input transforms; the
    default target, programs of length 4 and nesting 2, for what is left out), validated: one line if not."""
    cfg = ProgramDataConfig(**{"task": "program", "length": 4, "nesting": 2, **options})
    try:
        cfg.validate()
    except ValueError as e:
        raise ReproError(str(e)) from None
    return cfg
