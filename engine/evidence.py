"""Which run records a table uses: the committed ones merged with this machine's finished runs, the stale and the
missing named, and the runs grouped by the settings they were made with (only runs of the profile's own
configuration decide its claims)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from base.errors import ReproError
from engine import registration, stats
from engine.identity import config_mismatch
from engine.records import Key, committed_records, local_records
from engine.spec import Experiment, Results


@dataclass
class Evidence:
    """The records of one (experiment, profile), and what keeps them from making a complete table."""

    records: list[dict]  # usable: known variant, config as the profile resolves it; sorted by (variant, seed)
    expected: list[Key]  # every (variant, seed) the profile names
    missing: list[Key] = field(default_factory=list)
    stale: list[tuple[Key, str]] = field(default_factory=list)  # records made with another config, and how
    # this machine's runs of a committed cell made with other settings (--set, precision, processes): the
    # committed run keeps the cell
    aside: list[tuple[Key, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.stale

    def aside_note(self) -> str:
        """'' or a line naming the runs of this machine that a committed run of other settings kept out."""
        if not self.aside:
            return ""
        (v, s), why = self.aside[0]
        more = f" and {len(self.aside) - 1} more" if len(self.aside) > 1 else ""
        return f"kept out of the table: {v}/seed{s}{more}: {why}"

    def problem(self, label: str) -> str:
        parts = []
        if self.missing:
            names = ", ".join(f"{v}/seed{s}" for v, s in self.missing[:6])
            parts.append(
                f"{len(self.missing)} of {len(self.expected)} runs missing ({names}{', ...' * (len(self.missing) > 6)})"
            )
        if self.stale:
            (v, s), why = self.stale[0]
            parts.append(f"{len(self.stale)} made with another config ({v}/seed{s}: {why})")
        return f"{label}: " + "; ".join(parts)


def gather(exp: Experiment, profile: str, committed_only: bool = False) -> Evidence:
    """Committed records merged with finished local runs (a local run replaces the committed one of the same
    variant and seed: rerunning a cell is how a table changes), checked against the profile."""
    prof = exp.profile(profile)
    merged = committed_records(exp.name, profile)
    committed_main = main_signature(list(merged.values())) if merged else None
    aside: list[tuple[Key, str]] = []
    for key, record in ({} if committed_only else local_records(exp.name, profile)).items():
        old = merged.get(key)
        # a run with other settings (--set) never replaces a committed cell's run of the table's settings
        if old is not None and signature(old) == committed_main != signature(record):
            aside.append(
                (
                    key,
                    f"this machine's run ({deviation(record) or 'the profile settings'}) differs from "
                    f"the committed run ({deviation(old) or 'the profile settings'}), which keeps the "
                    "cell",
                )
            )
        else:
            merged[key] = record
    expected = [(v, s) for v in exp.variant_names(profile) for s in prof.seed_list]
    known = {v.name for v in exp.variants}
    usable, stale = [], []
    for key, record in sorted(merged.items()):
        if key[0] not in known:
            stale.append((key, f"no variant {key[0]!r} in {exp.name} now"))
            continue
        try:
            why = config_mismatch(record, exp.resolve(key[0], profile, record.get("sets") or {}), exp.config())
        except ReproError as e:
            why = str(e)
        if why:
            stale.append((key, why))
        else:
            usable.append(record)
    # a cell counts as run only by a run of the configuration most runs share: a --set run has a row of its own
    # and decides nothing, so its cell is still missing
    main = main_signature(usable) if usable else None
    have = {(r["variant"], r["seed"]) for r in usable if signature(r) == main}
    return Evidence(usable, expected, [k for k in expected if k not in have], stale, aside)


# a safety cap, not a setting of the science: a GPU window caps each run at the time it has left, a different
# value per window; whether the cap stopped a run, the record says (`stopped_by_time`) and the table names it
NOT_A_SETTING = ("train.max_minutes",)


def signature(record: dict) -> tuple:
    """What, beyond the variant, sets a run's numbers apart: its --set values, world size and precision."""
    prov = record["provenance"]
    sets = tuple(sorted((k, v) for k, v in (record.get("sets") or {}).items() if k not in NOT_A_SETTING))
    return sets, prov.get("devices", 1), str(prov.get("precision"))


def deviation(record: dict) -> str:
    sets, world, precision = signature(record)
    return describe_settings(dict(sets), world, precision)


def describe_settings(sets: dict, world: int, precision) -> str:
    """How a run's settings differ from its profile's ('' for none): '--set optim.lr=0.05, precision bf16-mixed'."""
    parts = [f"--set {k}={v}" for k, v in sorted(sets.items()) if k not in NOT_A_SETTING]
    parts += [f"{world} processes"] if world != 1 else []
    parts += [f"precision {precision}"] if str(precision) not in ("32-true", "None") else []
    return ", ".join(parts)


def main_signature(records: list[dict]) -> tuple:
    """The configuration most runs share (ties: the one closest to the profile, fewest --set values)."""
    counts = Counter(signature(r) for r in records)
    return max(counts, key=lambda s: (counts[s], -len(s[0]), -s[1]))


def results_of(records: list[dict]) -> Results:
    values: dict = defaultdict(lambda: defaultdict(dict))
    for r in records:
        for metric, v in r["metrics"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                values[r["variant"]][metric][r["seed"]] = float(v)
    return Results({k: dict(v) for k, v in values.items()})


def evaluate(exp: Experiment, records: list[dict]):
    """Verdicts of the claims and outcomes of the checks, from the runs of the main configuration. Each verdict
    splits the 5% between the looks its runs' records count (``engine/registration.py``)."""
    claims, _, checks = evaluate_registered(exp, records)
    return claims, checks


def evaluate_registered(exp: Experiment, records: list[dict]):
    """``evaluate``, with each claim's registration: (claims and verdicts, registrations, checks)."""
    main = main_signature(records) if records else None
    used = [r for r in records if signature(r) == main]
    results = results_of(used)
    fps = registration.fingerprints(exp)
    regs = [registration.of_claim(key, fps[key], used) for key in registration.claim_keys(exp.claims)]
    verdicts = []
    for claim, reg in zip(exp.claims, regs, strict=True):
        with stats.looks(reg.looks):
            verdicts.append((claim, claim.check(results)))
    return verdicts, _duplicates(exp, results, regs), [(c, c.check(results)) for c in exp.checks]


def _duplicates(exp: Experiment, results: Results, regs: list) -> list:
    """The registrations, each claim whose per-run differences equal an earlier claim's (the same finding) marked
    as that claim's duplicate: one finding is one verdict."""
    seen: dict[tuple, str] = {}
    out = []
    for claim, reg in zip(exp.claims, regs, strict=True):
        diffs = getattr(claim.check, "diffs", None)
        keys, values = diffs(results) if diffs else ([], [])
        signature = (tuple(keys), tuple(round(v, 12) for v in values))
        if values and signature in seen:
            reg = replace(reg, duplicate_of=seen[signature])
        elif values:
            seen[signature] = f"slide {claim.slide}'s '{claim.statement[:60]}'"
        out.append(reg)
    return out


def verdict_counts(claims: list, checks: list, regs: list | None = None) -> str:
    """From ``evaluate_registered``'s answer: '3 supported, 1 inconclusive, 2 no verdict (not registered), 2
    without runs here; checks: 2 of 2 hold' (a profile may run none of a claim's variants: no verdict there; a
    claim not registered before its runs, or a duplicate, is no verdict whatever its test reads)."""
    regs = regs if regs is not None else [None] * len(claims)
    tested = [(v, r) for (_, v), r in zip(claims, regs, strict=True) if v.has_runs]
    counts = Counter(v.status if r is None or r.counts else "no verdict" for v, r in tested)
    parts = [f"{counts[s]} {s}" for s in ("supported", "contradicted", "inconclusive") if counts[s]]
    parts += [f"{counts['no verdict']} no verdict (not registered before their runs)"] if counts["no verdict"] else []
    parts += [f"{len(claims) - len(tested)} without runs here"] if len(tested) < len(claims) else []
    text = ", ".join(parts)
    held = [o.holds for _, o in checks if o.holds is not None]
    if checks:
        text += f"; checks: {sum(held)} of {len(held)} hold"
        text += f" ({len(checks) - len(held)} need runs)" if len(held) < len(checks) else ""
    return text
