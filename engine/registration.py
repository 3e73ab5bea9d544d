"""Claims registered before their runs, as a mechanism: a fingerprint of each claim, carried by every run record.

A claim's fingerprint is a short hash of what decides it: its slide, its words and its test (the comparison,
the metric, the variants, the margin, the transform; for a test written in an experiment file, that code's
text). Every run records the fingerprints of its experiment's claims as they were when it ran
(``record["registration"]``). A table then says, for each verdict row:

- **registered before its runs**: every run it pairs carries the claim's present fingerprint;
- **changed after its runs**: some run carries another (the claim's test, margin or words changed after that run
  was made) or none for this claim (it was added after): a verdict the index never counts as decided;
- **runs predate registration**: the runs were made before records carried fingerprints (also never counted).

Looks. When a run replaces an earlier run of the same cell (variant and seed) whose record carried another
version of a claim, the new record keeps that version's fingerprint under ``earlier``: those seeds were seen
by it. A verdict counts one look per version of the claim that saw its seeds (the present one included) and
splits the 5% between them (``stats.looks``). A pilot on seeds no table uses (the ``pilot`` profile) costs no
look.

Tests defined in ``engine/`` (``claims.lower`` and the rest) are fingerprinted by their parameters; code of
the suite's statistics is versioned by its commit and its unit tests, not by each claim.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REGISTERED, CHANGED, PREDATES = "registered before its runs", "changed after its runs", "runs predate registration"


def _source(obj: Any) -> str:
    """The text of code defined outside the engine (an experiment's own test), '' for the engine's own."""
    module = getattr(obj, "__module__", "") or ""
    if module.startswith("engine.") or module in ("builtins", "functools"):
        return ""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def canonical(x: Any) -> Any:
    """A JSON-able form of a claim's test that names no memory address: dataclasses by their fields, functions
    by their name and (outside the engine) their code, partials by their function and arguments."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        kind = type(x)
        fields = {f.name: canonical(getattr(x, f.name)) for f in dataclasses.fields(x)}
        return {"type": f"{kind.__module__}.{kind.__qualname__}", "code": _source(kind), "fields": fields}
    if isinstance(x, functools.partial):
        return {"partial": canonical(x.func), "args": canonical(x.args), "keywords": canonical(x.keywords)}
    if isinstance(x, (list, tuple)):
        return [canonical(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): canonical(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, float):
        return repr(x)
    if x is None or isinstance(x, (str, int, bool)):
        return x
    if callable(x):
        return {
            "function": f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', type(x).__qualname__)}",
            "code": _source(x),
        }
    return {"type": type(x).__qualname__}


def fingerprint(claim: Any) -> str:
    """12 hex digits of sha256 over the claim's slide, words and test."""
    body = {"slide": claim.slide, "statement": claim.statement, "test": canonical(claim.check)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]


def claim_keys(claims: tuple) -> list[str]:
    """A stable name per claim across its versions: its slide and its place among that slide's claims
    ('24#2')."""
    seen: dict[str, int] = {}
    keys = []
    for c in claims:
        seen[c.slide] = seen.get(c.slide, 0) + 1
        keys.append(f"{c.slide}#{seen[c.slide]}")
    return keys


def fingerprints(exp: Any) -> dict[str, str]:
    """Every claim of ``exp``: key -> fingerprint, as the code stands."""
    return dict(zip(claim_keys(exp.claims), (fingerprint(c) for c in exp.claims), strict=True))


def for_record(exp: Any, previous: dict | None) -> dict:
    """What a new run record carries: the claims' fingerprints now, and the earlier versions that saw this cell
    (``previous``: the record it replaces, if any)."""
    now = fingerprints(exp)
    earlier: dict[str, set[str]] = {}
    if previous and previous.get("registration"):
        old = previous["registration"]
        for key, fps in (old.get("earlier") or {}).items():
            earlier.setdefault(key, set()).update(fps)
        for key, fp in (old.get("claims") or {}).items():
            earlier.setdefault(key, set()).add(fp)
    earlier = {k: sorted(v - {now.get(k)}) for k, v in earlier.items()}
    return {"claims": now, "earlier": {k: v for k, v in sorted(earlier.items()) if v}}


@dataclass(frozen=True)
class Registration:
    status: str  # REGISTERED | CHANGED | PREDATES
    looks: int  # versions of the claim that saw these seeds, the present one included
    detail: str = ""
    duplicate_of: str = ""  # an earlier claim of the table whose per-run differences are these, number for number

    @property
    def counts(self) -> bool:
        """Whether the index may count this claim's verdict as decided: registered, and not a finding counted
        already."""
        return self.status == REGISTERED and not self.duplicate_of


def of_claim(key: str, fp: str, records: list[dict]) -> Registration:
    """How the runs of a table stand to one claim (``key``, present fingerprint ``fp``)."""
    regs = [r.get("registration") for r in records]
    if not records or any(reg is None for reg in regs):
        missing = sum(reg is None for reg in regs)
        return Registration(PREDATES, 1, f"{missing} of {len(records)} runs carry no fingerprints")
    versions = {fp}
    for reg in regs:
        versions.update((reg.get("earlier") or {}).get(key, ()))
    other = [reg for reg in regs if (reg.get("claims") or {}).get(key) != fp]
    if other:
        return Registration(CHANGED, len(versions), f"{len(other)} of {len(regs)} runs carry another version")
    return Registration(REGISTERED, len(versions))


def row_text(reg: Registration) -> str:
    """The verdict row's registration cell."""
    text = reg.status + (f" ({reg.detail})" if reg.detail else "")
    text += f"; {reg.looks} looks at these seeds" if reg.looks > 1 else ""
    if reg.duplicate_of:
        text += f"; a duplicate of {reg.duplicate_of}: the same per-run differences, counted once"
    return text
