"""Run folders and run records: what a run leaves on disk, how it is read back, and the compact copies
committed beside the tables.

A run folder ``$REPRO_RUNS_DIR/<experiment>/<profile>/<variant>/seed<k>/`` holds ``config.yaml`` (the run's
identity: its resolved config plus the world size and precision it trains with; written first),
``checkpoints/last.ckpt``, CSV logs, the W&B run, and ``record.json`` (final metrics, per-epoch history,
config, provenance; written atomically, last). A folder with a record is done; one with a checkpoint and no
record resumes from the checkpoint.

Every table in ``results/`` has the records of its runs committed beside it, as
``results/runs/<experiment>/<profile>/<variant>/seed<k>.json``: the same record, strict JSON. A fresh clone
rebuilds every table from them alone (``repro report --all``), and runs made on different machines and at
different times merge into one table.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from base.errors import ReproError
from base.files import write_atomic

REQUIRED = {"experiment": str, "profile": str, "variant": str, "seed": int, "metrics": dict, "provenance": dict}


def runs_root() -> Path:
    return Path(os.environ.get("REPRO_RUNS_DIR", "runs")).expanduser()


_STAGED: list[Path] = []  # the copy of the results folder a report is writing (see `staged_results`)


def results_dir() -> Path:
    return _STAGED[-1] if _STAGED else Path(os.environ.get("REPRO_RESULTS_DIR", "results"))


@contextlib.contextmanager
def staged_results():
    """`repro report` as one transaction: every table, plot, CSV, committed record and the index are written into a
    copy of the results folder, which replaces it whole at the end, or is removed if anything fails (a full disk,
    an interrupt): a table never cites records that were not committed with it. Yields the real folder."""
    from base.files import staged_folder

    real = results_dir()
    with staged_folder(real) as stage:
        _STAGED.append(stage)
        try:
            yield real
        finally:
            _STAGED.pop()


def run_dir(experiment: str, profile: str, variant: str, seed: int, point: str = "") -> Path:
    """A run's folder; ``point``: a sweep point's name (its runs are never a table's cells: they live apart, under
    ``sweeps/``)."""
    if point:
        return sweeps_dir(experiment, profile) / point / variant / f"seed{seed}"
    return runs_root() / experiment / profile / variant / f"seed{seed}"


def sweeps_dir(experiment: str, profile: str) -> Path:
    return runs_root() / "sweeps" / experiment / profile


def committed_dir(experiment: str, profile: str) -> Path:
    return results_dir() / "runs" / experiment / profile


# ----------------------------------------------------------------------------- files
def finite(obj: Any) -> Any:
    """The same structure with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def to_json(record: dict, compact: bool = False) -> str:
    """Strict JSON (non-finite floats become null); compact: one line, sorted keys, for committed copies."""
    if compact:
        return json.dumps(finite(record), allow_nan=False, sort_keys=True, separators=(",", ":")) + "\n"
    return json.dumps(finite(record), allow_nan=False, indent=1) + "\n"


def _sorted_dict(pairs: list[tuple[str, Any]]) -> dict:
    return dict(sorted(pairs))


MAX_RECORD_BYTES = 16 * 2**20  # the largest records (gradients' per-step traces) are about 0.3 MB
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+,=-]{0,199}$")  # experiment, profile and variant names
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]{0,199}$")  # metric, history and extra keys
PROVENANCE = {
    "commit": str,
    "finished": str,
    "hardware": str,
    "precision": str,
    "devices": int,
    "params": int,
    "data": dict,
    "versions": dict,
    "dirty": bool,
}


def parse_record(text: str | bytes, path: Path) -> dict:
    """A record from its JSON text, or a one-line error naming the file and the field: not JSON, or not a record.
    Records cross machines (merged from clusters and GPU windows), so they are input: types, ranges and sizes
    are checked, and a record that fails is refused (never read into a table, never committed again)."""
    if len(text) > MAX_RECORD_BYTES:
        raise ReproError(
            f"{path} is not a run record ({len(text) / 2**20:.0f} MiB, more than any run writes); "
            "delete it to rerun that run"
        )
    try:
        record = json.loads(text, object_pairs_hook=_sorted_dict)  # committed copies are key-sorted: so is every read
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        raise ReproError(f"{path} is corrupt (not JSON); delete it to rerun that run") from None
    bad = [k for k, kind in REQUIRED.items() if not isinstance(record, dict) or not isinstance(record.get(k), kind)]
    if bad:
        raise ReproError(f"{path} is not a run record (no valid {', '.join(bad)}); delete it to rerun that run")
    problem = record_problem(record)
    if problem:
        raise ReproError(f"{path} is not a valid run record ({problem}); delete it to rerun that run")
    return record


def _number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300)


def _depth(v: Any, limit: int = 12) -> int:
    if limit < 0:
        return 1
    if isinstance(v, dict):
        return 1 + max((_depth(x, limit - 1) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(x, limit - 1) for x in v), default=0)
    return 0


def record_problem(record: dict) -> str:
    """'' for a well-formed record, else the first field that is not (a name, a type, a range)."""
    for k in ("experiment", "profile", "variant"):
        if not NAME.match(record[k]):
            return f"{k} {record[k][:40]!r} is not a name"
    if isinstance(record["seed"], bool) or not 0 <= record["seed"] < 2**32:
        return f"seed {record['seed']!r} is out of range"
    for k, v in record["metrics"].items():
        if not KEY.match(k) or not _number(v):
            return f"metrics.{k[:40]}: {str(v)[:40]!r} is not a number"
    history = record.get("history", [])
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        return "history is not a list of rows"
    for row in history:
        for k, v in row.items():
            if not KEY.match(k) or not (_number(v) or isinstance(v, str) and len(v) < 1000):
                return f"history.{k[:40]}: {str(v)[:40]!r} is not a number"
    prov = record["provenance"]
    for k, kind in PROVENANCE.items():
        if k in prov and not (isinstance(prov[k], kind) and not (kind is int and isinstance(prov[k], bool))):
            return f"provenance.{k} is not a {kind.__name__}"
    if not isinstance(prov.get("commit"), str) or not isinstance(prov.get("finished"), str):
        return "provenance.commit and provenance.finished are required"
    for k, v in record.items():
        if not KEY.match(k):
            return f"the key {k[:40]!r} is not a name"
        if _depth(v) > 10:
            return f"{k} is nested more than 10 deep"
    for k in ("config", "sets"):
        if k in record and not isinstance(record[k], dict):
            return f"{k} is not a mapping"
    return ""


def read_record(folder: Path) -> dict | None:
    """The record of a run folder, None if it has none yet."""
    path = folder / "record.json"
    if not path.is_file():
        return None
    return parse_record(path.read_bytes(), path)


# ----------------------------------------------------------------------------- identity


def load_trained(exp, profile: str, variant: str, seed: int) -> tuple[Any, dict]:
    """The config and last checkpoint of a trained run (one line and exit 2 for every way there is none)."""
    import torch

    from engine.config import config_from_dict

    exp.variant(variant)
    folder = run_dir(exp.name, profile, variant, seed)
    ckpt = folder / "checkpoints" / "last.ckpt"
    if not (folder / "config.yaml").is_file():
        raise ReproError(
            f"no run at {folder}; train it first: repro run {exp.name} --profile {profile} --variant "
            f"{variant} --seed {seed}"
        )
    if not ckpt.is_file():
        raise ReproError(f"{folder} has no checkpoints/last.ckpt (the run has not finished an epoch yet)")
    saved = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    identity = ("experiment", "profile", "variant", "seed", "launch")
    cfg = config_from_dict(exp.config(), {k: v for k, v in saved.items() if k not in identity})
    try:
        return cfg, torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ReproError(f"{ckpt} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None


# ----------------------------------------------------------------------------- collections of records
Key = tuple[str, int]  # (variant, seed)


def local_records(experiment: str, profile: str) -> dict[Key, dict]:
    """Finished runs under the runs folder."""
    base = runs_root() / experiment / profile
    out = {}
    for path in sorted(base.glob("*/seed*/record.json")):
        record = parse_record(path.read_bytes(), path)
        out[(record["variant"], record["seed"])] = record
    return out


def committed_records(experiment: str, profile: str) -> dict[Key, dict]:
    """The records committed beside the table of (experiment, profile)."""
    out = {}
    for path in sorted(committed_dir(experiment, profile).glob("*/seed*.json")):
        record = parse_record(path.read_bytes(), path)
        out[(record["variant"], record["seed"])] = record
    return out


def committed_record(experiment: str, profile: str, variant: str, seed: int) -> dict | None:
    """The committed record of one cell, None if there is none."""
    path = committed_dir(experiment, profile) / variant / f"seed{seed}.json"
    return parse_record(path.read_bytes(), path) if path.is_file() else None


def profiles_with_records(experiment: str) -> list[str]:
    """Profiles of ``experiment`` with finished runs in the runs folder or committed records."""
    found = {p.parts[-4] for p in (runs_root() / experiment).glob("*/*/seed*/record.json")}  # profile/variant/seedK/
    found |= {p.parts[-3] for p in committed_dir(experiment, "x").parent.glob("*/*/seed*.json")}  # profile/variant/
    return sorted(found)


def save_committed(experiment: str, profile: str, records: list[dict]) -> None:
    """Make results/runs/<experiment>/<profile>/ hold exactly these records (one file per run)."""
    base = committed_dir(experiment, profile)
    keep = set()
    for r in records:
        path = base / r["variant"] / f"seed{r['seed']}.json"
        keep.add(path)
        text = to_json({**r, "profile": profile}, compact=True)
        if not path.is_file() or path.read_text() != text:
            write_atomic(path, text)
    for path in base.glob("*/seed*.json"):
        if path not in keep:
            path.unlink()
    for folder in base.glob("*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
