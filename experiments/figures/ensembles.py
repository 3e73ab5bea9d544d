"""The plot of ``experiments/ensembles.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Test error (left) and NLL (right) of the ensemble of the first n members (solid) and the mean of
    those members' own values (dashed), against n; mean over seeds."""

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = dict(zip(exp.variant_names(profile), ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    for ax, key, scale, label in ((axes[0], "error", 100, "test error (%)"), (axes[1], "nll", 1, "test NLL")):
        for name, recs in by_variant.items():
            n = recs[0]["curve"]["n"]
            for which, ls in ((key, "-"), (f"member_{key}", "--")):
                y = [statistics.fmean(r["curve"][which][i] * scale for r in recs) for i in range(len(n))]
                text = f"{name}: ensemble" if ls == "-" else f"{name}: mean member"
                ax.plot(n, y, ls=ls, marker="o" if ls == "-" else None, ms=3, label=text, color=colors.get(name))
        ax.set(xlabel="ensemble size n (first n members)", ylabel=label, title=f"{label} vs ensemble size")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{exp.title} ({profile} profile, mean over seeds; dashed: mean of the same n members)")
    fig.tight_layout()
    save_figure(fig, path)
