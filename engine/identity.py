"""What a run is: its identity (``config.yaml``: the resolved config with the world size and precision it
trains with), the check that a run folder holds no other run, and how a record's config differs from
today's. Two runs with the same identity compute the same numbers on the same kind of machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from base.errors import ReproError
from engine.config import config_to_dict


def identity_text(experiment: str, profile: str, variant: str, seed: int, config: Any, world: int, precision) -> str:
    """config.yaml: what the run is. Two runs with the same text compute the same numbers on the same kind
    of machine; a folder holding another text is refused, never reused."""
    head = {"experiment": experiment, "profile": profile, "variant": variant, "seed": seed}
    launch = {"world_size": world, "precision": str(precision or "32-true")}
    return yaml.safe_dump({**head, "launch": launch, **config_to_dict(config)}, sort_keys=False)


def check_identity(folder: Path, text: str, say: bool = False) -> None:
    """A folder whose config.yaml holds another identity is refused, unless nothing was trained there: no
    checkpoint and no record (a run stopped by bad input before its first epoch), which the new run replaces
    (``say``: with a line naming the difference)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return
    try:
        old = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        old = {}
    old, new = old if isinstance(old, dict) else {}, yaml.safe_load(text)
    if old == new:
        return
    diff = first_difference(old, new)
    if not (folder / "record.json").exists() and not (folder / "checkpoints" / "last.ckpt").exists():
        if say:
            print(f"{folder}: replacing the config of a run that never saved a checkpoint ({diff})")
        return
    raise ReproError(
        f"{folder} holds a run with a different config ({diff}); delete that folder or set REPRO_RUNS_DIR to "
        "another folder"
    )


def first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}{k}.")
    return f"{path.rstrip('.')}: {a!r} there, {b!r} now"


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_mismatch(record: dict, resolved: Any, defaults: Any) -> str | None:
    """How a record's config differs from what its profile resolves to today (with the record's own
    ``--set`` values), or None. A key the record lacks was added to the code later: the run used that
    field's default (a new field must default to the old behaviour), so the resolved value must equal it."""
    ran = flatten(record.get("config") or {})
    now, default = flatten(config_to_dict(resolved)), flatten(config_to_dict(defaults))
    for key in sorted(now):
        expected = ran[key] if key in ran else default.get(key)
        if _plain(expected) != _plain(now[key]):
            origin = "there" if key in ran else "there (the field's default: the record predates it)"
            return f"{key}: {expected!r} {origin}, {now[key]!r} now"
    return None


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v
