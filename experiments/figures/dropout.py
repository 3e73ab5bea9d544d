"""The plot of ``experiments/dropout.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Left: validation error per epoch, mean over seeds, per variant. Right: test error of the Monte-Carlo
    average of k masks vs k (log axis), with the weight-scaling error of the same images dashed."""
    plt = pyplot()

    fig, (curves, mc_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = dict(zip([v.name for v in exp.variants], plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    for name, recs in by_variant.items():
        epochs = min(len(r["history"]) for r in recs)
        y = [statistics.fmean(r["history"][e]["val_error"] * 100 for r in recs) for e in range(epochs)]
        curves.plot(range(1, epochs + 1), y, label=name, color=colors.get(name))
        mcs = [r["mc"] for r in recs if r.get("mc")]
        if mcs:
            n = min(len(m["error"]) for m in mcs)
            err = [statistics.fmean(m["error"][i] * 100 for m in mcs) for i in range(n)]
            ws = statistics.fmean(m["weight_scaling_error"] * 100 for m in mcs)
            mc_ax.plot(range(1, n + 1), err, color=colors.get(name), label=f"{name}: MC average of k masks")
            mc_ax.axhline(ws, color=colors.get(name), ls="--", lw=1, label=f"{name}: weight scaling")
    curves.set(xlabel="epoch", ylabel="validation error (%)", title="validation error (mean over seeds)")
    curves.legend(fontsize=8)
    curves.grid(alpha=0.3)
    mc_ax.set_xscale("log")
    mc_ax.set(xlabel="k (masks averaged)", ylabel="test error (%)", title="Monte-Carlo averaging vs weight scaling")
    mc_ax.legend(fontsize=7)
    mc_ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
