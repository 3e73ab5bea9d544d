"""The plot of ``experiments/bottleneck.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Training and test error against the parameter count, one point per variant (mean over seeds, each
    seed a dot), labelled with its bottleneck width and the rank of its first layer."""
    plt = pyplot()

    names = sorted(by_variant, key=lambda v: statistics.fmean(r["metrics"]["params_k"] for r in by_variant[v]))
    xs = [statistics.fmean(r["metrics"]["params_k"] for r in by_variant[v]) for v in names]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for key, color in (("train_error", "tab:blue"), ("test_error", "tab:red")):
        ys = [statistics.fmean(r["metrics"][key] * 100 for r in by_variant[v]) for v in names]
        ax.plot(xs, ys, "o-", color=color, label=key.replace("_", " "))
        for x, v in zip(xs, names, strict=True):
            ax.scatter([x] * len(by_variant[v]), [r["metrics"][key] * 100 for r in by_variant[v]], color=color, s=8)
    for x, v in zip(xs, names, strict=True):
        rank = max(r["metrics"]["first_layer_rank"] for r in by_variant[v])
        ax.annotate(f"{v}\nrank {rank:.0f}", (x, 0), textcoords="offset points", xytext=(0, 6), fontsize=8, ha="center")
    ax.set(
        xlabel="parameters (thousands)", ylabel="error (%)", title=f"{exp.title}\n({profile} profile, mean over seeds)"
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
