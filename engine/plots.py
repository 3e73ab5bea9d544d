"""Plots for the results tables: a file-only matplotlib, atomic PNG writes, and the default plot.

An experiment with pictures of its own (slide 4's curves, the ensembles' error against size...) passes its
own ``plot`` function; every other experiment gets ``default_plot``.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from base.files import temp_path
from engine.spec import Experiment


def pyplot():
    """matplotlib.pyplot with a file-only backend (plots are written by headless runs too)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Write the figure through a temporary file, so an interrupted report never leaves half a PNG."""
    tmp = temp_path(path)
    fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})  # no version stamp: rebuilds compare equal
    pyplot().close(fig)
    tmp.replace(path)


def default_plot(exp: Experiment, by_variant: dict[str, list[dict]], path: Path, profile: str) -> None:
    """One row per table: validation error per epoch (mean over seeds), and the change in test error of
    each treatment against its baseline, seed by seed (paired, as the verdicts are)."""
    plt = pyplot()

    tables = [t for t in exp.tables if any(v in by_variant for v in t.variants)]
    rows = [(t.title, [v for v in t.variants if v in by_variant], t.pairs) for t in tables] or [
        (exp.title, list(by_variant), ())
    ]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 4 * len(rows)), squeeze=False)
    for (title, names, pairs), (curves, change) in zip(rows, axes, strict=True):
        for name in names:
            recs = by_variant[name]
            epochs = min(len(r["history"]) for r in recs)
            if epochs and "val_error" in recs[0]["history"][0]:
                curve = [statistics.fmean(r["history"][e]["val_error"] * 100 for r in recs) for e in range(epochs)]
                curves.plot(range(1, epochs + 1), curve, label=name, marker="o" if epochs <= 30 else None, ms=3)
        curves.set(
            xlabel="epoch", ylabel="validation error (%)", title=f"{title[:55]}\nvalidation error, mean over seeds"
        )
        curves.legend(fontsize=8)
        curves.grid(alpha=0.3)
        present = [(a, b) for a, b in pairs if a in by_variant and b in by_variant]
        if present:
            for i, (base, treat) in enumerate(present):
                a = {r["seed"]: r["metrics"]["test_error"] for r in by_variant[base]}
                b = {r["seed"]: r["metrics"]["test_error"] for r in by_variant[treat]}
                diffs = [(b[s] - a[s]) * 100 for s in sorted(set(a) & set(b))]
                diffs = [d for d in diffs if d == d]  # a diverged run (NaN) has no change to show
                if diffs:
                    change.scatter([i] * len(diffs), diffs, color="black", s=14, zorder=3)
                    change.errorbar(
                        [i],
                        [statistics.fmean(diffs)],
                        yerr=[statistics.stdev(diffs) if len(diffs) > 1 else 0],
                        fmt="_",
                        color="tab:red",
                        ms=22,
                        capsize=5,
                        zorder=2,
                    )
            change.axhline(0, color="gray", lw=1)
            change.set_xticks(range(len(present)), [f"{b}\nvs {a}" for a, b in present], fontsize=8)
            change.set(
                ylabel="change in test error (pts)", title="test error minus baseline's, per seed (below 0: helps)"
            )
        else:
            errors = [[r["metrics"]["test_error"] * 100 for r in by_variant[v]] for v in names]
            for i, e in enumerate(errors):
                change.scatter([i] * len(e), e, color="black", s=14)
            change.set_xticks(range(len(names)), names, rotation=20, ha="right")
            change.set(ylabel="test error (%)", title=f"final test error ({profile} profile)")
        change.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path)


def summary_plot(exp: Experiment, by_variant: dict[str, list[dict]], path: Path, profile: str) -> None:
    """For records kept without their per-epoch history (runs whose folders are gone): each table's first metric,
    one dot per run and the mean per variant, in place of the curves that cannot be drawn."""
    plt = pyplot()

    def recorded(metric: str) -> bool:
        return any(
            r["metrics"].get(metric) == r["metrics"].get(metric) is not None for rs in by_variant.values() for r in rs
        )

    tables = [t for t in exp.tables if any(v in by_variant for v in t.variants) and any(map(recorded, t.metrics))]
    fig, axes = plt.subplots(1, len(tables) or 1, figsize=(6 * max(1, len(tables)), 4.5), squeeze=False)
    for ax, table in zip(axes[0], tables, strict=False):
        metric = next(m for m in table.metrics if recorded(m))
        scale = 100.0 if metric.endswith(("error", "_acc", "_exact")) else 1.0
        names = [v for v in table.variants if v in by_variant]
        for i, name in enumerate(names):
            values = [r["metrics"].get(metric, math.nan) * scale for r in by_variant[name]]
            ax.scatter([i] * len(values), values, color="black", s=14, zorder=3)
            finite = [v for v in values if v == v]
            if finite:
                ax.scatter([i], [statistics.fmean(finite)], marker="_", s=400, color="tab:red", zorder=2)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set(
            ylabel=exp.metrics.get(metric, metric),
            title=f"{table.title[:60]}\n(final values; per-epoch curves of these runs were not kept)",
        )
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
