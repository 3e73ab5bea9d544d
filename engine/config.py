"""Typed run configs: trees of plain dataclasses, overridden by dotted keys and checked against field types.

Variants and profiles are dictionaries of dotted-key overrides (``{"data.augment": ("flip",)}``) applied to
an experiment's default config, and so is the user's ``--set key=value``: every value is checked against the
field's declared type, and a dataclass's ``validate()`` (if any) runs after each change.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from base.errors import ReproError, unknown_name

# A field added after runs were recorded, whose default reproduces what they did: it is left out of the config's
# dict (so of run identities and records) while it has that default, and runs recorded before it existed keep
# their identity: their folders resume and their records stay current.
ADDED_LATER = {"added_later": True}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested dataclass -> plain dict (tuples become lists), for YAML, JSON and W&B; a field marked
    ``ADDED_LATER`` only when it differs from its default."""

    def kept(x: Any, f: dataclasses.Field) -> bool:
        return not (f.metadata.get("added_later") and getattr(x, f.name) == f.default)

    def plain(x: Any) -> Any:
        if dataclasses.is_dataclass(x):
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x) if kept(x, f)}
        if isinstance(x, (tuple, list)):
            return [plain(v) for v in x]
        return x

    return plain(cfg)


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            keys += flat_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], from_text: bool = False) -> None:
    """Set dotted keys on a nested dataclass in place, checking each value against its field type.

    ``from_text`` parses strings as the command line gives them ("0.1", "true", "flip,translate").
    """
    for key, value in overrides.items():
        *path, leaf = key.split(".")
        node = cfg
        for part in path:
            child = getattr(node, part, None) if dataclasses.is_dataclass(node) else None
            if child is None or not dataclasses.is_dataclass(child):
                raise ReproError(unknown_name("config key", key, flat_keys(cfg)))
            node = child
        fields = {f.name: f for f in dataclasses.fields(node)}
        if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
            raise ReproError(unknown_name("config key", key, flat_keys(cfg)))
        hint = typing.get_type_hints(type(node))[leaf]
        try:
            checked = _parse(value, hint) if from_text else _check(value, hint)
        except (TypeError, ValueError) as e:
            raise ReproError(f"bad value for {key}: {value!r} ({e})") from None
        setattr(node, leaf, checked)
        validate = getattr(node, "validate", None)
        if validate is not None:
            try:
                validate()
            except ValueError as e:
                raise ReproError(f"bad value for {key}: {value!r} ({e})") from None


def field_hint(cfg: Any, key: str) -> Any:
    """The declared type of a dotted key (one line and exit 2 for an unknown key)."""
    *path, leaf = key.split(".")
    node = cfg
    for part in path:
        node = getattr(node, part, None) if dataclasses.is_dataclass(node) else None
    fields = {f.name for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else set()
    if leaf not in fields or dataclasses.is_dataclass(getattr(node, leaf)):
        raise ReproError(unknown_name("config key", key, flat_keys(cfg)))
    return typing.get_type_hints(type(node))[leaf]


def is_list_key(cfg: Any, key: str) -> bool:
    """Whether a key holds a list (``data.augment=flip,translate``): its commas separate items, not values."""
    hint = field_hint(cfg, key)
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(typing.get_origin(a) is tuple for a in args)


def as_text(value: Any) -> str:
    """A YAML value as ``--set`` would give it: lists joined by commas, booleans lower case, None as none."""
    if isinstance(value, (list, tuple)):
        return ",".join(as_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def read_overrides_file(path: str) -> dict[str, str]:
    """``--config FILE``: a YAML mapping of overrides, nested (``optim: {lr: 0.05}``) or dotted (``optim.lr:
    0.05``), as ``--set`` texts; one line for a file that is missing or not such a mapping."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ReproError(f"--config {path}: cannot be read ({e.strerror or e})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ReproError(f"--config {path}: not YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ReproError(f"--config {path}: expected a mapping of config keys to values, got {type(data).__name__}")
    out: dict[str, str] = {}

    def walk(d: Mapping, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = as_text(v)

    walk(data, "")
    return out


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _parse(text: Any, hint: Any) -> Any:
    """Parse command-line text into a value of type ``hint``."""
    if not isinstance(text, str):
        return _check(text, hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(text, arg)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        items = [s.strip() for s in text.split(",") if s.strip()] if text.strip() not in ("", "()") else []
        item_type = args[0] if args else str
        return tuple(_parse(s, item_type) for s in items)
    if hint is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        return _check(value, float)
    if hint is str:
        return text
    raise TypeError(f"cannot parse {_type_name(hint)}")


def _check(value: Any, hint: Any) -> Any:
    """Check (and lightly coerce: int -> float, list -> tuple) a Python value against ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg)
            except (TypeError, ValueError):
                pass
        raise TypeError(f"expected {_type_name(hint)}")
    if origin is tuple:
        if not isinstance(value, (tuple, list)):
            raise TypeError("expected a tuple")
        item_type = args[0] if args else object
        return tuple(_check(v, item_type) if item_type is not object else v for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ValueError("expected a finite number")  # nan or inf: no run can mean that
    if hint is int and isinstance(value, bool):
        raise TypeError("expected int")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError(f"expected {hint.__name__}")
    return value


def config_from_dict(cfg: Any, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Load a plain dict (as saved in config.yaml) back onto a default config, type-checked."""
    flat: dict[str, Any] = {}

    def walk(d: Mapping[str, Any], pre: str) -> None:
        for k, v in d.items():
            if isinstance(v, Mapping):
                walk(v, f"{pre}{k}.")
            else:
                flat[pre + k] = v

    walk(data, prefix)
    apply_overrides(cfg, flat)
    return cfg


# torch.compile's modes ("reduce-overhead" and "max-autotune" replay CUDA graphs: no kernel launches from Python)
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    """How long and how a run trains; the Trainer's hardware options come from the command line."""

    max_epochs: int = 10
    channels_last: bool = True  # NHWC activations: faster convolutions on CPUs and tensor cores
    log_every_n_steps: int = 50
    # a wall-clock cap on training (0: none), for a run that must fit a lent machine's time: when it is
    # reached the run stops after the current step, evaluates and records as usual (the record's steps
    # and `stopped_by_time` say how far it got)
    max_minutes: float = 0.0
    # CPU threads of each run's process (torch.set_num_threads; OMP_NUM_THREADS of child processes). It changes
    # the order of floating-point sums, so the numbers, and is part of the run's identity: a profile fixes it
    # (quick: 1, two runs at once on two cores) so that a cell reruns bit for bit alone or beside others.
    # 0: the machine's cores divided by the runs at once (the actual count is recorded in the provenance).
    threads: int = 0
    # torch.compile of the run's network, for speed on a GPU ("": eager, the default). Compiled kernels sum in
    # another order, so the numbers differ in their last bits (the same within seed noise: tests/test_compile.py)
    # and the mode is part of the run's identity. Compiled, the optimizer step is fused on a GPU and the training
    # loss is read back once per epoch instead of every few steps: nothing waits for the device inside an epoch.
    compile: str = dataclasses.field(default="", metadata=ADDED_LATER)

    def validate(self) -> None:
        if self.max_epochs < 1:
            raise ValueError("max_epochs must be >= 1")
        if not self.max_minutes >= 0:
            raise ValueError("max_minutes must be >= 0 (0: no limit)")
        if self.log_every_n_steps < 1:
            raise ValueError("log_every_n_steps must be >= 1")
        if self.threads < 0:
            raise ValueError("threads must be >= 0 (0: the cores divided by the runs at once)")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(repr(m) for m in COMPILE_MODES)} ('': eager)")
