"""``repro sweep NAME --set key=v1,v2,v3 [--set key2=...] [--seeds N]``: a setting tried over several values and
seeds, as runs of their own.

Each point of the grid (one value of every swept key, on top of the profile and any ``--config`` file) is a set
of runs under ``runs/sweeps/<experiment>/<profile>/<point>/<variant>/seed<k>/``, named by its settings (e.g.
``rnn.lr=0.01``): never a table's cell, so ``results/`` and the profile's runs are never touched, and a point
that two sweeps share is trained once. The runs go through the same machinery as ``repro run`` (finished runs
skipped, interrupted ones resumed, ``--jobs``, DDP, W&B: each point is its own W&B group). Afterwards the sweep
table and plot, the metric against each value with a 95% interval over seeds, are written beside the points:
``runs/sweeps/<experiment>/<profile>/<grid>.{md,csv,png}``. ``--wandb-sweep`` also registers the grid as a W&B
sweep (online only) and files the runs under it.

Values: commas separate a key's values (``optim.lr=0.01,0.03``); for a key that holds a list, whose commas
separate its items (``data.augment=flip,translate``), semicolons separate the values
(``data.augment=flip;flip,translate``). Repeating ``--set`` for one key adds values.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import math
import statistics
from pathlib import Path

from base.errors import ReproError


def add_parser(sub, run_options) -> None:
    p = sub.add_parser(
        "sweep",
        help="try settings over several values and seeds, as runs of their own (never "
        "table cells), and write a sweep table and plot under runs/sweeps/",
    )
    p.add_argument("name", help="the experiment")
    run_options(p)
    p.add_argument(
        "--metric",
        action="append",
        metavar="M",
        help="the metric(s) of the table and plot (default: the experiment's first table's)",
    )
    p.add_argument(
        "--wandb-sweep",
        action="store_true",
        help="register the grid as a W&B sweep (needs --wandb online or an API key) and file the runs under it",
    )


def parse_grid(cfg, items: list[str]) -> dict[str, list[str]]:
    """``--set`` items -> each swept key's values, in the order given (one line for a key without values)."""
    from engine.config import is_list_key

    grid: dict[str, list[str]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ReproError(f"--set expects KEY=VALUE[,VALUE...], got {item!r}")
        values = [v.strip() for v in text.split(";" if is_list_key(cfg, key) else ",")]
        if not all(values):
            raise ReproError(
                f"--set {item}: an empty value (values are separated by "
                f"{'; for a list key' if is_list_key(cfg, key) else ','})"
            )
        grid.setdefault(key, [])
        grid[key] += [v for v in values if v not in grid[key]]
    if not grid:
        raise ReproError("sweep needs at least one --set KEY=V1,V2,... (the values to try)")
    return grid


def points(grid: dict[str, list[str]], fixed: dict[str, str]) -> list[dict[str, str]]:
    """Every combination of the swept values, each on top of the fixed overrides (a swept key wins)."""
    keys = list(grid)
    return [{**fixed, **dict(zip(keys, combo, strict=True))} for combo in itertools.product(*(grid[k] for k in keys))]


def grid_name(grid: dict[str, list[str]]) -> str:
    name = "__".join(f"{k}={','.join(v)}" for k, v in grid.items()).replace("/", "%2F").replace(" ", "_")
    return name if len(name) <= 120 else f"{name[:100]}__{hashlib.sha256(name.encode()).hexdigest()[:12]}"


def wandb_sweep_config(exp, profile: str, grid: dict[str, list[str]], metric: str) -> dict:
    """The W&B sweep that stands for the grid (method grid: every point is run, here, by `repro sweep`)."""
    goal = "minimize" if any(w in metric for w in ("error", "loss", "mse", "nll")) else "maximize"
    return {
        "name": f"{exp.name}/{profile}: {grid_name(grid)}",
        "method": "grid",
        "metric": {"name": metric, "goal": goal},
        "parameters": {k: {"values": v} for k, v in grid.items()},
        "command": [
            "repro",
            "sweep",
            exp.name,
            "--profile",
            profile,
            *(f"--set={k}={','.join(v)}" for k, v in grid.items()),
        ],
    }


def _register(exp, profile: str, grid: dict, metric: str, choice: str) -> str:
    import os

    from engine import tracking

    if tracking.wandb_mode(choice) != "online":
        raise ReproError(
            "--wandb-sweep registers the grid with the W&B server: it needs --wandb online (or auto "
            "with an API key); offline runs are grouped by point without it"
        )
    import wandb

    sweep_id = wandb.sweep(
        wandb_sweep_config(exp, profile, grid, metric),
        project=os.environ.get("WANDB_PROJECT", tracking.PROJECT),
        entity=os.environ.get("WANDB_ENTITY") or None,
    )
    os.environ["WANDB_SWEEP_ID"] = sweep_id  # every run of this process and its children joins the sweep
    return sweep_id


def cmd_sweep(args: argparse.Namespace, planner) -> int:
    from engine.config import read_overrides_file
    from engine.orchestrate import run_all
    from engine.records import read_record, sweeps_dir
    from engine.registry import get

    exp = get(args.name)
    profile = args.profile or exp.default_profile
    exp.profile(profile)
    grid = parse_grid(exp.config(), args.sets)
    fixed = read_overrides_file(args.config) if args.config else {}
    plan_one = planner(args, sweep=True)
    specs, launch = [], None
    for sets in points(grid, fixed):
        more, launch = plan_one(exp, profile, sets)  # every value is checked before anything runs
        specs += more
    if args.wandb_sweep:
        print(f"W&B sweep: {_register(exp, profile, grid, (args.metric or ['test_error'])[0], args.wandb)}")
    print(
        f"sweep {grid_name(grid)}: {len(specs)} runs at {len(points(grid, fixed))} points, under "
        f"{sweeps_dir(exp.name, profile)}"
    )
    run_all(specs, launch)
    records = [(spec, r) for spec in specs if (r := read_record(spec.dir)) is not None]
    out = sweeps_dir(exp.name, profile) / grid_name(grid)
    written = write_sweep(exp, profile, grid, fixed, records, _metrics(exp, args.metric, records), out)
    print(f"sweep table: {written}")
    return 0


def _metrics(exp, asked: list[str] | None, records) -> list[str]:
    """The asked metrics, else the first of the experiment's table columns the runs measured (a test score first)."""
    if asked:
        return asked
    measured = {m for _, r in records for m, v in r["metrics"].items() if _values([(None, r)], m)}
    shown = [m for table in exp.tables for m in table.metrics if m in measured]
    tested = [m for m in shown if "test" in m]
    if tested or shown:
        return (tested or shown)[:1]
    raise ReproError(f"{exp.name}'s runs measured none of its table columns: name a metric with --metric")


def _interval(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    from scipy import stats as st

    mean, half = statistics.fmean(values), st.t.ppf(0.975, len(values) - 1) * statistics.stdev(values)
    return mean - half / math.sqrt(len(values)), mean + half / math.sqrt(len(values))


def _values(records, metric: str) -> list[float]:
    out = []
    for _, r in records:
        v = r["metrics"].get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def write_sweep(exp, profile: str, grid, fixed, records, metrics: list[str], out: Path) -> Path:
    """The sweep's table (md), its runs (csv) and plot (png), named ``out`` + suffix."""
    from base.files import write_atomic
    from engine.report import md_table

    missing = [m for m in metrics if not _values(records, m)]
    if missing:
        have = sorted({m for _, r in records for m in r["metrics"]})
        raise ReproError(f"no run measured {missing[0]!r}; the runs measure: {', '.join(have)}")
    cells: dict[tuple, list] = {}
    for spec, r in records:
        cells.setdefault((spec.variant, *(spec.sets[k] for k in grid)), []).append((spec, r))
    header = ["variant", *grid, "runs"]
    for m in metrics:
        header += [exp.metrics.get(m, m), "95% CI"]
    on_top = f", on top of {', '.join(f'`{k}={v}`' for k, v in fixed.items() if k not in grid)}" if fixed else ""
    lines = [
        f"# Sweep: {exp.name} --profile {profile}",
        "",
        "Runs of their own, never a table's cells: "
        + "; ".join(f"`{k}` = {', '.join(v)}" for k, v in grid.items())
        + on_top
        + ". Mean ± sd over seeds, and the 95% t-interval of the mean.",
        "",
        md_table(["", ""], _sweep_provenance(exp, profile, records)),
        "",
        md_table(header, [_sweep_row(key, recs, metrics) for key, recs in cells.items()]),
        "",
        f"![plot]({out.name}.png)",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out.with_name(out.name + ".csv"), _csv(records, grid, metrics))
    _plot(exp, grid, cells, metrics[0], out.with_name(out.name + ".png"))
    write_atomic(out.with_name(out.name + ".md"), "\n".join(lines))
    return out.with_name(out.name + ".md")


def _sweep_row(key: tuple, recs: list, metrics: list[str]) -> list[str]:
    """One grid cell: its variant and values, its runs, and per metric the mean ± sd and the 95% interval."""
    from engine.claims import percent_metric
    from engine.report import fmt_mean_std

    row = [f"`{key[0]}`", *key[1:], str(len(recs))]
    for m in metrics:
        ci = _interval(_values(recs, m))
        scale = 100.0 if percent_metric(m) else 1.0
        row += [fmt_mean_std(_values(recs, m), m), "–" if ci is None else f"{ci[0] * scale:.4g} to {ci[1] * scale:.4g}"]
    return row


def _sweep_provenance(exp, profile: str, records) -> list[list[str]]:
    prov = [r["provenance"] for _, r in records]
    seeds = sorted({spec.seed for spec, _ in records})
    dates = sorted(p["finished"][:10] for p in prov)
    commits = sorted({p["commit"][:10] + (" (uncommitted code)" if p.get("dirty") else "") for p in prov})
    return [
        ["Hardware", "; ".join(sorted({p["hardware"] for p in prov}))],
        ["Seeds", ", ".join(map(str, seeds))],
        ["Date", dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"],
        ["Commit", "; ".join(commits)],
        ["Runs", f"{len(records)} under runs/sweeps/{exp.name}/{profile}/"],
    ]


def _csv(records, grid, metrics: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "seed", *grid, *metrics, "commit", "finished"])
    for spec, r in records:
        w.writerow(
            [
                spec.variant,
                spec.seed,
                *(spec.sets[k] for k in grid),
                *(r["metrics"].get(m) for m in metrics),
                r["provenance"]["commit"],
                r["provenance"]["finished"],
            ]
        )
    return buf.getvalue()


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _plot(exp, grid: dict[str, list[str]], cells: dict, metric: str, path: Path) -> None:
    """One panel per swept key: the metric's mean and 95% interval against the key's values, one line per variant
    and values of the other keys."""
    from engine.plots import pyplot, save_figure

    plt = pyplot()
    keys = list(grid)
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, (i, key) in zip(axes[0], enumerate(keys), strict=True):
        numeric = all(_number(v) is not None for v in grid[key])
        xs_of = {v: (_number(v) if numeric else j) for j, v in enumerate(grid[key])}
        lines: dict[tuple, list] = {}
        for cell, recs in cells.items():
            others = tuple(x for j, x in enumerate(cell[1:]) if j != i)
            lines.setdefault((cell[0], others), []).append((xs_of[cell[1 + i]], recs))
        for (variant, others), pts in lines.items():
            pts.sort(key=lambda p: p[0])
            means, lows, highs = [], [], []
            for _, recs in pts:
                vals = _values(recs, metric)
                ci = _interval(vals) or (statistics.fmean(vals),) * 2
                means.append(statistics.fmean(vals))
                lows.append(means[-1] - ci[0])
                highs.append(ci[1] - means[-1])
            label = variant + (
                f" ({', '.join(f'{k}={v}' for k, v in zip([k for k in keys if k != key], others, strict=True))})"
                if others
                else ""
            )
            ax.errorbar([p[0] for p in pts], means, yerr=[lows, highs], marker="o", capsize=3, label=label)
        positive = numeric and all(x > 0 for x in xs_of.values())
        if positive and max(xs_of.values()) / min(xs_of.values()) >= 10:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(list(xs_of.values()), list(xs_of))
        ax.set_xlabel(key)
        ax.set_ylabel(f"{exp.metrics.get(metric, metric)} (mean, 95% CI)")
        ax.legend(fontsize=7)
    fig.suptitle(f"{exp.name}: sweep of {', '.join(keys)}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
