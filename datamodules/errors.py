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
