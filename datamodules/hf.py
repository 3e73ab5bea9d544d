"""Hugging Face ``datasets``: imported only by the functions that use it, its cache, and its offline mode.

The library serves two roles here (char-lm on any text corpus, ``datamodules/corpus.py``; Learning to
Execute's evaluation programs as a shareable data set, ``datamodules/program_sets.py``). Nothing else needs
it, and machines that run the other experiments may not have it: it is never imported at module level, and a
missing library is one line saying how to install it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from base.errors import ReproError
from datamodules.files import cache_dir

_TRUE = ("1", "true", "yes", "on")


def import_datasets(purpose: str):
    """The ``datasets`` module, its progress bars off (the suite prints its own one-line summaries)."""
    try:
        import datasets
    except ImportError:
        raise ReproError(f"{purpose} needs the Hugging Face datasets library: pip install datasets") from None
    datasets.disable_progress_bars()
    return datasets


def hf_cache_dir() -> str | None:
    """Where ``load_dataset`` keeps its Arrow files: ``HF_DATASETS_CACHE`` if the user set it (None: the library
    reads it itself), else ``REPRO_CACHE_DIR/hf``."""
    if os.environ.get("HF_DATASETS_CACHE"):
        return None
    return str(cache_dir() / "hf")


def shown_cache_dir() -> Path:
    return Path(os.environ.get("HF_DATASETS_CACHE") or cache_dir() / "hf").expanduser()


def offline() -> bool:
    """REPRO_OFFLINE=1, or the Hugging Face libraries' own switches (HF_DATASETS_OFFLINE, HF_HUB_OFFLINE)."""
    names = ("REPRO_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in names)


@contextlib.contextmanager
def hub_offline(datasets_module, on: bool):
    """Offline mode for the duration of a call. Both libraries read their switches once, at import, so an
    environment variable set now would come too late: their module-level flags are set, then restored."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    targets = [
        (datasets_module.config, "HF_HUB_OFFLINE"),
        (datasets_module.config, "HF_DATASETS_OFFLINE"),
        (constants, "HF_HUB_OFFLINE"),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name in targets if hasattr(obj, name)]
    for obj, name, _ in saved:
        setattr(obj, name, True)
    try:
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
