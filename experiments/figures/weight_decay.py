"""The plot of ``experiments/weight_decay.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math
import statistics

from experiments.plots import pyplot, save_figure
from experiments.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Top left: the fits of degree 1, 3, 9 (and 9 with lambda = 1e-4) to seed 0's points, with sin(2 pi x).
    Top right: train and test RMSE of degree 9 against lambda. Bottom left: ||w||_2 against lambda, per
    seed. Bottom right: the MLPs' histograms of log10 |w| over their weight matrices (summed over seeds)."""
    import torch

    from experiments.weight_decay import MLP_VARIANTS, MODERATE, SWEEP  # (a cycle at import time otherwise)
    from lightning_modules import measures

    plt = pyplot()

    from datamodules.polynomial import true_function
    from lightning_modules.regression import poly_features

    fig, ((fits, errors), (sizes, hists)) = plt.subplots(2, 2, figsize=(12, 9))
    grid = torch.linspace(0, 1, 400, dtype=torch.float64)
    fits.plot(grid, true_function(grid), color="tab:green", lw=2, label="sin(2πx)")
    shown = False
    for name, color in (("degree-1", "tab:gray"), ("degree-3", "tab:blue"), ("degree-9", "tab:red"),
                        (MODERATE, "tab:purple")):  # fmt: skip
        rec = min(by_variant.get(name, []), key=lambda r: r["seed"], default=None)
        if rec is None:
            continue
        w = torch.tensor(rec["coefficients"], dtype=torch.float64)
        fits.plot(grid, poly_features(grid, len(w) - 1) @ w, color=color, label=f"{name} (seed {rec['seed']})")
        if not shown:
            pts = rec["train_points"]
            fits.scatter(pts["x"], pts["t"], facecolors="none", edgecolors="k", zorder=3, label="training points")
            shown = True
    fits.set(xlabel="x", ylabel="t", ylim=(-1.8, 1.8), title="least-squares polynomial fits (Bishop Fig. 1.4)")
    fits.legend(fontsize=8)

    sweep = [v for v in SWEEP[1:] if v in by_variant]
    lams = [by_variant[v][0]["metrics"]["l2"] for v in sweep]
    for metric, color in (("train_rmse", "tab:blue"), ("test_rmse", "tab:red")):
        if sweep:
            mean = [statistics.fmean(r["metrics"][metric] for r in by_variant[v]) for v in sweep]
            errors.semilogx(lams, mean, "o-", color=color, label=f"{metric.replace('_', ' ')}, mean over seeds")
        if "degree-9" in by_variant:
            base = statistics.fmean(r["metrics"][metric] for r in by_variant["degree-9"])
            errors.axhline(base, color=color, ls=":", label=f"{metric.replace('_', ' ')}, lambda = 0")
    if "degree-3" in by_variant:
        d3 = statistics.fmean(r["metrics"]["test_rmse"] for r in by_variant["degree-3"])
        errors.axhline(d3, color="tab:blue", ls="--", alpha=0.5, label="test rmse, degree 3")
    errors.set(xlabel="lambda", ylabel="RMSE", title="degree 9 with an L2 penalty: error vs lambda")
    errors.legend(fontsize=8)
    errors.grid(alpha=0.3)

    if sweep:
        seeds = sorted({r["seed"] for v in sweep for r in by_variant[v]})
        for s in seeds:
            norms = [next((r["metrics"]["w_norm"] for r in by_variant[v] if r["seed"] == s), math.nan) for v in sweep]
            sizes.loglog(lams, norms, "o-", color="tab:purple", alpha=0.4, ms=3)
        if "degree-9" in by_variant:
            for r in by_variant["degree-9"]:
                sizes.axhline(r["metrics"]["w_norm"], color="tab:red", ls=":", alpha=0.3)
    sizes.set(xlabel="lambda", ylabel="||w||_2", title="coefficient size vs lambda, one line per seed\n"
              "(dotted: lambda = 0)")  # fmt: skip
    sizes.grid(alpha=0.3, which="both")

    colors = {"mlp-none": "tab:gray", "mlp-l2": "tab:blue", "mlp-l1": "tab:orange"}
    for name in MLP_VARIANTS:
        recs = by_variant.get(name, [])
        if not recs:
            continue
        edges = recs[0]["weight_histogram"]["log10_edges"]
        counts = [sum(c) for c in zip(*(r["weight_histogram"]["counts"] for r in recs), strict=True)]
        total = sum(counts)
        pct = statistics.fmean(r["metrics"]["pct_below_1e-3"] for r in recs)
        hists.stairs([100 * c / total for c in counts], edges, color=colors[name], lw=1.5,
                     label=f"{name}: {pct:.1f}% below 1e-3")  # fmt: skip
    for t in measures.NEAR_ZERO:
        hists.axvline(math.log10(t), color="k", ls=":", lw=1)
    hists.set(xlabel="log10 |w| (values below 1e-7 in the first bin)", ylabel="% of weight-matrix entries",
              title="MLP weights after training: L1 vs L2 vs none")  # fmt: skip
    hists.legend(fontsize=8)
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
