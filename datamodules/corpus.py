"""Any text corpus for char-lm, through Hugging Face ``datasets``: ``data.dataset=hf:<name>[:<config>]`` or a path.

- ``hf:<name>[:<config>]``: ``datasets.load_dataset(name, config)`` from the hub, its Arrow cache under
  ``REPRO_CACHE_DIR/hf`` (or ``HF_DATASETS_CACHE`` if set). Offline (``REPRO_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1``
  or ``HF_HUB_OFFLINE=1``) only the cache is read; a name not in it is one line, never a traceback.
- a folder saved with ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``: ``datasets.load_from_disk``;
- any other folder: ``datasets.load_dataset(folder)``, which picks the reader by the files' suffix and the splits
  by their names (``train.txt``, ``test.txt``, ...);
- a file: ``.txt``/``.text`` (the ``text`` reader: one row per line), ``.parquet``, ``.json``/``.jsonl``, ``.csv``
  or ``.arrow``, as the train split.

The text column (``data.text_column``; empty: detected) is the only string column, else the one named "text",
else an error listing the string columns. The corpus is one string: every row of every split joined by "\\n",
the splits in the order train, validation, test, then any others by name (empty rows are kept: a .txt file's
blank lines; missing values are skipped). A .txt file comes back as its text with universal newlines and no
newline at the end. ``TextDataModule`` then splits it as it splits Tiny Shakespeare: the vocabulary is the
sorted set of its characters and the last ``val_fraction`` of them are the validation text, whatever splits
the source had. Its name says which corpus, which splits and how many characters, e.g.
"hf:tiny_shakespeare (train+validation+test, 1,115,396 characters)"; the record adds the text's sha256.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from base.errors import ReproError
from datamodules.hf import hf_cache_dir, hub_offline, import_datasets, offline, shown_cache_dir

DEFAULT = "tinyshakespeare"
_HF_NAME = re.compile(r"hf:(?P<name>[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?)(?::(?P<config>[\w.-]+))?")
STRING_DTYPES = ("string", "large_string")
SPLIT_ORDER = ("train", "validation", "test")
FILE_READERS = {
    ".txt": "text",
    ".text": "text",
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".arrow": "arrow",
}
FORMS = "tinyshakespeare, hf:<name>[:<config>] (a Hugging Face hub data set) or the path of a local file or folder"


def check_form(spec: str) -> None:
    """The form of ``data.dataset`` alone (no file is looked at: configs are also read back on other machines)."""
    if spec == DEFAULT:
        return
    if spec.startswith("hf:"):
        if not _HF_NAME.fullmatch(spec):
            raise ValueError(f"an hf: data set is hf:<name>[:<config>], e.g. hf:tiny_shakespeare; got {spec!r}")
        return
    if not spec.strip() or any(ord(c) < 32 for c in spec):
        raise ValueError(f"dataset must be {FORMS}")


def parse_hf(spec: str) -> tuple[str, str | None]:
    m = _HF_NAME.fullmatch(spec)
    if m is None:
        raise ReproError(f"data.dataset={spec!r}: an hf: data set is hf:<name>[:<config>]")
    return m["name"], m["config"]


@dataclass
class Corpus:
    text: str
    name: str  # as results tables print it
    source: str  # hf:<name>[:<config>] or the absolute path
    splits: tuple[str, ...]  # in the order they were joined
    column: str  # the text column


def string_columns(features) -> list[str]:
    """The columns whose feature is a ``Value`` of dtype string or large_string."""
    return [name for name, f in features.items() if getattr(f, "dtype", None) in STRING_DTYPES]


def pick_column(features, wanted: str = "") -> str:
    """``wanted`` if it is a string column; empty: the only string column, else "text", else a one-line error."""
    strings = string_columns(features)
    listed = ", ".join(repr(s) for s in strings) or "none"
    if wanted:
        if wanted in strings:
            return wanted
        what = f"holds {features[wanted]}, not text" if wanted in features else "is not a column"
        raise ReproError(f"data.text_column={wanted!r} {what}; the string columns: {listed}")
    if len(strings) == 1:
        return strings[0]
    if "text" in strings:
        return "text"
    raise ReproError(
        f"cannot tell which column holds the text (string columns: {listed}); choose one with "
        "--set data.text_column=<name>"
    )


def ordered_splits(splits: dict) -> list[str]:
    return [s for s in SPLIT_ORDER if s in splits] + sorted(s for s in splits if s not in SPLIT_ORDER)


def join_splits(splits: dict, wanted_column: str = "") -> tuple[str, tuple[str, ...], str]:
    """(the corpus, the splits in the order joined, the text column) of ``{split name: Dataset}``."""
    order = ordered_splits(splits)
    if not order:
        raise ReproError("the data set has no splits")
    column = pick_column(splits[order[0]].features, wanted_column)
    rows: list[str] = []
    for name in order:
        ds = splits[name]
        if column not in string_columns(ds.features):
            raise ReproError(f"the {name} split has no string column {column!r} (its columns: {ds.column_names})")
        if len(ds):
            values = ds.select_columns([column]).with_format("arrow")[:].column(column).to_pylist()
            rows += [v for v in values if v is not None]
    return "\n".join(rows), tuple(order), column


def _as_splits(loaded) -> dict:
    if hasattr(loaded, "features"):  # one Dataset: its own split name, else train
        return {str(loaded.split) if loaded.split else "train": loaded}
    return dict(loaded)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def _load_hf(datasets, spec: str):
    name, config = parse_hf(spec)
    off = offline()
    try:
        with hub_offline(datasets, off):
            return datasets.load_dataset(name, config, cache_dir=hf_cache_dir())
    except Exception as e:
        cache = shown_cache_dir()
        if off:
            raise ReproError(
                f"{spec} is not in the datasets cache ({cache}) and downloads are off (REPRO_OFFLINE, "
                f"HF_DATASETS_OFFLINE or HF_HUB_OFFLINE): load it once online ({_first_line(e)})"
            ) from None
        if isinstance(e, ConnectionError):
            raise ReproError(
                f"{spec}: the Hugging Face hub cannot be reached and the data set is not in the cache ({cache}): "
                f"go online once to download it ({_first_line(e)})"
            ) from None
        raise ReproError(f"{spec} cannot be loaded: {_first_line(e)}") from None


def _load_path(datasets, spec: str, path: Path):
    cache = hf_cache_dir()
    try:
        with hub_offline(datasets, True):  # local files never need the hub
            if path.is_dir():
                if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                    return datasets.load_from_disk(str(path))
                return datasets.load_dataset(str(path), cache_dir=cache)
            reader = FILE_READERS.get(path.suffix.lower())
            if reader is None:
                raise ReproError(
                    f"data.dataset={spec!r}: a file must end in one of {', '.join(FILE_READERS)} (or give a folder "
                    "saved with save_to_disk)"
                )
            return datasets.load_dataset(reader, data_files={"train": str(path)}, cache_dir=cache)
    except ReproError:
        raise
    except Exception as e:
        raise ReproError(f"data.dataset={spec!r} cannot be read as a data set: {_first_line(e)}") from None


def load_corpus(spec: str, text_column: str = "") -> Corpus:
    """The corpus ``spec`` names (``hf:<name>[:<config>]`` or a path), joined as the module docstring says."""
    if spec.startswith("hf:"):
        parse_hf(spec)  # the form, before the library is needed
        datasets = import_datasets(f"data.dataset={spec}")
        splits = _as_splits(_load_hf(datasets, spec))
        source, label = spec, spec
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise ReproError(f"data.dataset={spec!r} is no file or folder; it must be {FORMS}")
        datasets = import_datasets(f"data.dataset={spec}")
        splits = _as_splits(_load_path(datasets, spec, path))
        source, label = str(path.resolve()), path.resolve().name
    text, order, column = join_splits(splits, text_column)
    if not text:
        raise ReproError(f"{spec}: the column {column!r} holds no text")
    return Corpus(text, f"{label} ({'+'.join(order)}, {len(text):,} characters)", source, order, column)
