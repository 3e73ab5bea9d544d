"""Files written so that nothing is ever half-written: a temporary
name per writer, an atomic rename, and the removal of temporary files whose writer was killed mid-write."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path

# <name>.tmp<PID>@<host>; names without a host (from before hosts were part of them) are this machine's
_TEMP_NAME = re.compile(r"^(?P<name>.+)\.tmp(?P<pid>\d+)(?:@(?P<host>[A-Za-z0-9_-]+))?$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "localhost"


def temp_path(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place: ``<name>.tmp<PID>@<host>``, so that a file a killed
    process left behind can be told from one a live process (on this or another machine) is still writing."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}@{_host()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temp_files(folder: Path) -> None:
    """Remove the ``*.tmp<PID>`` files in ``folder`` whose writer on this machine is gone (killed mid-write). A file
    written on another machine (a cache shared between nodes) is left alone: its PID means nothing here."""
    if not folder.is_dir():
        return
    for p in folder.glob("*.tmp*"):
        m = _TEMP_NAME.match(p.name)
        if m is None or m["host"] not in (None, _host()) or _alive(int(m["pid"])):
            continue
        size = p.stat().st_size if p.exists() else 0
        p.unlink(missing_ok=True)
        print(f"removed {p} ({size / 1e6:.0f} MB), left by process {m['pid']}, which is gone", flush=True)


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write a file so that readers see the old content or the new one, never half of it (text as UTF-8, whatever
    the locale); a write that fails (disk full, a file size limit) leaves no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


@contextlib.contextmanager
def staged_folder(folder: Path):
    """Change ``folder`` as one transaction: the changes go to a copy (hard links: files left as they are share their
    data; every write here replaces a file, so the original's never change), which replaces the folder whole at the
    end, or is removed on any failure. Readers see the old folder or the new one; a process killed between the two
    renames leaves the old one aside, and the next transaction puts it back."""
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    _recover(folder)
    stage, old = (parent / f".{folder.name}.{kind}{os.getpid()}@{_host()}" for kind in ("staged", "old"))
    shutil.rmtree(stage, ignore_errors=True)
    try:
        if folder.exists():
            shutil.copytree(folder, stage, copy_function=_link_or_copy, symlinks=True)
        else:
            stage.mkdir()
        yield stage
        if folder.exists():
            os.rename(folder, old)
        os.rename(stage, folder)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _recover(folder: Path) -> None:
    """What a killed transaction on this folder left: its copy is removed, and an old folder set aside just before
    the new one took its place is put back where no new one did."""
    for p in folder.parent.glob(f".{folder.name}.*"):
        m = re.match(rf"^\.{re.escape(folder.name)}\.(staged|old)(\d+)@(.+)$", p.name)
        if m is None or m[3] != _host() or _alive(int(m[2])):
            continue
        if m[1] == "old" and not folder.exists():
            os.rename(p, folder)
        else:
            shutil.rmtree(p, ignore_errors=True)
