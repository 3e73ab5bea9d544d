"""The plot of ``experiments/capacity.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, sizes, widths) -> None:
    """Slide 4's two pictures: training and test error (mean over seeds, each seed a dot) against the
    training set size and against the parameter count, the generalization gap shaded between them. ``sizes``
    and ``widths``: the variants of each panel, in order."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = (
        (sizes, lambda r: r["provenance"]["data"]["train"], "training images n (log scale)", "fixed net"),
        (widths, lambda r: r["metrics"]["params_k"] * 1000, "parameters (log scale)", "fixed n"),
    )
    for ax, (names, x_of, xlabel, fixed) in zip(axes, panels, strict=True):
        names = [v for v in names if v in by_variant]
        if not names:
            ax.set_axis_off()
            continue
        xs = [statistics.fmean(x_of(r) for r in by_variant[v]) for v in names]
        curves = {}
        for key, color in (("train_error", "tab:blue"), ("test_error", "tab:red")):
            curves[key] = [statistics.fmean(r["metrics"][key] * 100 for r in by_variant[v]) for v in names]
            ax.plot(xs, curves[key], "o-", color=color, label=key.replace("_", " "))
            for v in names:
                pts = [(x_of(r), r["metrics"][key] * 100) for r in by_variant[v]]
                ax.scatter(*zip(*pts, strict=True), color=color, s=8, alpha=0.5)
        ax.fill_between(xs, curves["train_error"], curves["test_error"], color="gray", alpha=0.25, label="gap")
        for x, v in zip(xs, names, strict=True):
            ax.annotate(v, (x, 0), textcoords="offset points", xytext=(0, 4), fontsize=7, ha="center")
        ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel="error (%)", title=f"train and test error vs {xlabel.split(' (')[0]} ({fixed})")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{exp.title} ({profile} profile, mean over seeds; shaded: generalization gap)")
    fig.tight_layout()
    save_figure(fig, path)
