"""``repro compare NAME``: the runs of a table side by side in the terminal, from the runs folder and the committed
records, without training, without W&B, writing nothing.

Per variant: n, the seeds, and mean ± sd of each metric; runs made with other settings than the profile's
(``--set``, precision, processes) on rows of their own, as the tables keep them; ``--runs``: one row per run.
The same runs a table is made from: a local run replaces the committed one of its cell, except a run of other
settings, which keeps a row of its own beside the committed cell's run.
"""

from __future__ import annotations

import argparse
import shutil
from collections import defaultdict

from base.errors import ReproError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="the runs of a table in the terminal: per variant mean ± sd and n (writes nothing; no W&B needed)",
    )
    p.add_argument("name", help="the experiment")
    p.add_argument("--profile", help="default: the experiment's, usually quick")
    p.add_argument("--variant", action="append", metavar="NAME", help="only this variant (repeatable)")
    p.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="only this metric (repeatable; default: the experiment's table columns)",
    )
    p.add_argument("--runs", action="store_true", help="one row per run, not per variant")


def _rows_of(exp, profile: str) -> tuple[list[dict], list[str]]:
    """Every run a comparison shows (the table's, and this machine's runs that a committed run kept out of it),
    and one line for each record that no longer matches the profile."""
    from engine.evidence import gather
    from engine.records import local_records

    evidence = gather(exp, profile)
    local = local_records(exp.name, profile)
    runs = [dict(r, _source=_source(r, local)) for r in evidence.records]
    runs += [dict(local[key], _source="this machine, kept out of the table") for key, _ in evidence.aside]
    stale = [f"{v}/seed{s}: {why}" for (v, s), why in evidence.stale]
    return runs, stale


def _source(record: dict, local: dict) -> str:
    mine = local.get((record["variant"], record["seed"]))
    return "this machine" if mine is not None and mine == record else "committed"


def _metrics(exp, runs: list[dict], asked: list[str] | None) -> list[str]:
    have = {m for r in runs for m in r["metrics"]}
    if asked:
        unknown = [m for m in asked if m not in have]
        if unknown:
            from base.errors import unknown_name

            raise ReproError(unknown_name("metric", unknown[0], sorted(have), f"in the runs of {exp.name}"))
        return asked
    shown = [m for t in exp.tables for m in t.metrics if m in have]
    return list(dict.fromkeys(shown)) or sorted(have)


def comparison(exp, profile: str, variants: list[str] | None, metrics: list[str] | None, per_run: bool) -> str:
    """The text `repro compare` prints."""
    from engine.evidence import deviation
    from engine.report import fmt_mean_std

    exp.profile(profile)
    for v in variants or []:
        exp.variant(v)
    runs, stale = _rows_of(exp, profile)
    runs = [r for r in runs if not variants or r["variant"] in variants]
    if not runs:
        raise ReproError(
            f"no finished runs of {exp.name} --profile {profile}"
            + (f" --variant {' --variant '.join(variants)}" if variants else "")
            + f"; train them with: repro run {exp.name} --profile {profile}"
        )
    shown = _metrics(exp, runs, metrics)
    order = {v: i for i, v in enumerate(exp.variant_names(profile))}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in sorted(runs, key=lambda r: (order.get(r["variant"], len(order)), deviation(r), r["seed"])):
        key = (r["variant"], deviation(r)) + ((r["seed"], r["_source"]) if per_run else ())
        groups[key].append(r)
    header = ["variant", "settings"] + (["seed", "from"] if per_run else ["n", "seeds"])
    header += [exp.metrics.get(m, m) for m in shown]
    rows = []
    for key, rs in groups.items():
        row = [key[0], key[1] or "profile"]
        row += [str(key[2]), key[3]] if per_run else [str(len(rs)), ",".join(str(r["seed"]) for r in rs)]
        rows.append(row + [fmt_mean_std([r["metrics"].get(m) for r in rs], m) for m in shown])
    lines = [f"{exp.name} --profile {profile}: {len(runs)} runs ({_sources(runs)})", "", *_grid(header, rows)]
    if stale:
        lines += [
            "",
            f"not shown, made with another config than the profile's today ({len(stale)}): "
            + "; ".join(stale[:3])
            + ("; ..." if len(stale) > 3 else ""),
        ]
    return "\n".join(lines)


def _sources(runs: list[dict]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for r in runs:
        counts[r["_source"]] += 1
    return ", ".join(f"{n} {where}" for where, n in counts.items())


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    """A plain text table, columns as wide as their widest cell (the settings column cut to the terminal)."""
    width = shutil.get_terminal_size((160, 24)).columns
    cells = [header, *rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    spare = width - (sum(widths) + 2 * (len(widths) - 1))
    if spare < 0:
        widths[1] = max(len("settings"), widths[1] + spare)
    out = []
    for r in cells:
        texts = [str(c) if len(str(c)) <= w else str(c)[: w - 3] + "..." for c, w in zip(r, widths, strict=True)]
        out.append("  ".join(t.ljust(w) for t, w in zip(texts, widths, strict=True)).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from engine.registry import get

    exp = get(args.name)
    print(comparison(exp, args.profile or exp.default_profile, args.variant, args.metric, args.runs))
    return 0
