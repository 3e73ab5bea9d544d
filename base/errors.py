"""The suite's two kinds of failure, defined in its lowest layer so that every layer can raise them."""

from __future__ import annotations


class ReproError(Exception):
    """A user-facing error (bad input, missing or corrupt data): the CLI prints its message on one line and
    exits with code 2, no traceback."""


class RunsFailed(Exception):
    """Some runs crashed (not a user error): the CLI reports them on one line and exits with code 1."""


def unknown_name(kind: str, name: str, choices: list[str], where: str = "") -> str:
    """'unknown variant 'flipp' of augmentation (did you mean 'flip'?)': the one-line error for a bad name."""
    import difflib

    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (choose from: {', '.join(choices)})"
    return f"unknown {kind} {name!r}{' ' + where if where else ''}{hint}"


_WHAT_TO_DO = {
    "ENOSPC": "the disk is full: free some space and run the same command again (finished work is kept)",
    "EDQUOT": "the disk quota is used up: free some space and run the same command again (finished work is kept)",
    "EROFS": "a read-only file system: point REPRO_RUNS_DIR, REPRO_RESULTS_DIR or REPRO_CACHE_DIR at a writable folder",
    "EACCES": "not allowed here: point REPRO_RUNS_DIR, REPRO_RESULTS_DIR or REPRO_CACHE_DIR (the default cache is "
    "under your HOME) at a folder you can write",
    "EPERM": "not allowed here: point REPRO_RUNS_DIR, REPRO_RESULTS_DIR or REPRO_CACHE_DIR at a folder you can write",
    "EFBIG": "a file would pass this shell's file size limit (ulimit -f): raise it and run the same command again",
    "ELOOP": "a loop of symbolic links: fix the link (REPRO_RUNS_DIR?) or point the variable at a real folder",
    "ENOENT": "no such file or folder (a dangling symbolic link? an unwritable HOME?): fix the path or set the "
    "variable that names it (REPRO_RUNS_DIR, REPRO_RESULTS_DIR, REPRO_CACHE_DIR)",
    "EBUSY": "a mount point or a folder in use cannot be replaced: point REPRO_RESULTS_DIR at a folder inside it",
    "EEXIST": "in the way of a folder the suite must make (a dangling symbolic link?): fix or remove it",
    "ENOTDIR": "a file stands where a folder must be: fix the path or the variable that names it",
}


def system_error_line(e: BaseException) -> str | None:
    """One line for what the machine refused (a full disk, a read-only or unwritable folder, a file size limit, a
    symbolic link loop, memory), naming the path and what to do; None for any other error (a bug: its traceback
    is what a report of it needs)."""
    import errno

    if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e):
        first = str(e).splitlines()[0][:200] if str(e) else "MemoryError"
        return f"out of memory ({first}): a smaller setting (--set), fewer runs at once (--jobs) or a larger machine"
    if not isinstance(e, OSError) or e.errno is None:
        return None
    name = errno.errorcode.get(e.errno, "")
    where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p) or "writing a file"
    todo = _WHAT_TO_DO.get(name, "fix the cause and run the same command again")
    return f"{where}: {e.strerror or name} [{name}]; {todo}"
