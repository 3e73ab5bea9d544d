"""Where the suite's data and caches live: ``$REPRO_DATA_DIR`` and ``$REPRO_CACHE_DIR``, else folders under the
user's cache."""

from __future__ import annotations

import os
from pathlib import Path


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lecture7-repro"


def data_dir() -> Path:
    return Path(os.environ.get("REPRO_DATA_DIR") or _user_cache() / "data").expanduser()


def cache_dir() -> Path:
    return Path(os.environ.get("REPRO_CACHE_DIR") or _user_cache() / "cache").expanduser()
