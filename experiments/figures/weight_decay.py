"""The plot of ``experiments/weight_decay.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math
import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, mlps, moderate, sweep) -> None:
    """Top left: the fits of degree 1, 3, 9 (and 9 with lambda = 1e-4) to seed 0's points, with sin(2 pi x).
    Top middle: train and test RMSE of degree 9 against lambda. Bottom left: ||w||_2 against lambda, per
    seed. Bottom middle: the MLPs' histograms of log10 |w| over their weight matrices (summed over seeds).
    Right: slide 10's two nearly identical inputs: (w1, w2) per seed with and without L2 (top), and each
    fit's test MSE on matched and mismatched inputs (bottom). ``mlps``: the MLP variants; ``moderate``: the
    degree-9 fit with moderate lambda; ``sweep``: the degree-9 variants by lambda."""
    plt = pyplot()

    fig, ((fits, errors, pair_w), (sizes, hists, pair_mse)) = plt.subplots(2, 3, figsize=(18, 9))
    _fits(fits, by_variant, moderate)
    sweep = [v for v in sweep[1:] if v in by_variant]
    _errors(errors, by_variant, sweep)
    _sizes(sizes, by_variant, sweep)
    _histograms(hists, by_variant, mlps)
    _pair_weights(pair_w, by_variant)
    _pair_errors(pair_mse, by_variant)
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)


def _fits(fits, by_variant: dict[str, list[dict]], moderate: str) -> None:
    import torch

    from datamodules.polynomial import true_function
    from lightning_modules.regression import poly_features

    grid = torch.linspace(0, 1, 400, dtype=torch.float64)
    fits.plot(grid, true_function(grid), color="tab:green", lw=2, label="sin(2πx)")
    shown = False
    for name, color in (
        ("degree-1", "tab:gray"),
        ("degree-3", "tab:blue"),
        ("degree-9", "tab:red"),
        (moderate, "tab:purple"),
    ):
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


def _errors(errors, by_variant: dict[str, list[dict]], sweep: list[str]) -> None:
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


def _sizes(sizes, by_variant: dict[str, list[dict]], sweep: list[str]) -> None:
    lams = [by_variant[v][0]["metrics"]["l2"] for v in sweep]
    if sweep:
        seeds = sorted({r["seed"] for v in sweep for r in by_variant[v]})
        for s in seeds:
            norms = [next((r["metrics"]["w_norm"] for r in by_variant[v] if r["seed"] == s), math.nan) for v in sweep]
            sizes.loglog(lams, norms, "o-", color="tab:purple", alpha=0.4, ms=3)
        if "degree-9" in by_variant:
            for r in by_variant["degree-9"]:
                sizes.axhline(r["metrics"]["w_norm"], color="tab:red", ls=":", alpha=0.3)
    sizes.set(
        xlabel="lambda", ylabel="||w||_2", title="coefficient size vs lambda, one line per seed\n(dotted: lambda = 0)"
    )
    sizes.grid(alpha=0.3, which="both")


def _histograms(hists, by_variant: dict[str, list[dict]], mlps) -> None:
    from lightning_modules import measures

    colors = {"mlp-none": "tab:gray", "mlp-l2": "tab:blue", "mlp-l1": "tab:orange"}
    for name in mlps:
        recs = by_variant.get(name, [])
        if not recs:
            continue
        edges = recs[0]["weight_histogram"]["log10_edges"]
        counts = [sum(c) for c in zip(*(r["weight_histogram"]["counts"] for r in recs), strict=True)]
        total = sum(counts)
        pct = statistics.fmean(r["metrics"]["pct_below_1e-3"] for r in recs)
        hists.stairs(
            [100 * c / total for c in counts], edges, color=colors[name], lw=1.5, label=f"{name}: {pct:.1f}% below 1e-3"
        )
    for t in measures.NEAR_ZERO:
        hists.axvline(math.log10(t), color="k", ls=":", lw=1)
    hists.set(
        xlabel="log10 |w| (values below 1e-7 in the first bin)",
        ylabel="% of weight-matrix entries",
        title="MLP weights after training: L1 vs L2 vs none",
    )
    hists.legend(fontsize=8)


PAIR_COLORS = {"pair-none": "tab:red", "pair-l2": "tab:blue"}


def _pair_weights(ax, by_variant: dict[str, list[dict]]) -> None:
    """(w1, w2) of every seed's fit: the data fix w1 + w2 (near 2) and leave w1 - w2 to the noise; L2 shares it."""
    reach = 2.0
    for name, color in PAIR_COLORS.items():
        recs = by_variant.get(name, [])
        if recs:
            w1, w2 = [r["metrics"]["w1"] for r in recs], [r["metrics"]["w2"] for r in recs]
            ax.scatter(w1, w2, color=color, s=25, zorder=3, label=f"{name} ({len(recs)} seeds)")
            reach = max(reach, *(abs(v) for v in w1 + w2))
    lim = 1.1 * reach
    ax.plot([-lim, lim], [-lim, lim], color="k", ls=":", lw=1, label="w1 = w2 (shared)")
    ax.plot([-lim, lim], [2 + lim, 2 - lim], color="tab:green", ls="--", lw=1, label="w1 + w2 = 2 (what the data fix)")
    ax.scatter([1], [1], marker="x", color="k", zorder=4, label="true weights (1, 1)")
    ax.set(
        xlim=(-lim, lim),
        ylim=(-lim, lim),
        xlabel="w1",
        ylabel="w2",
        aspect="equal",
        title="two nearly identical inputs (x2 = x1 + 0.02 z): fitted weights",
    )
    ax.legend(fontsize=8, loc="lower left")  # the fits lie along w1 + w2 = 2, away from that corner
    ax.grid(alpha=0.3)


def _pair_errors(ax, by_variant: dict[str, list[dict]]) -> None:
    """Each seed's test MSE on inputs that match as in training and on inputs that match less closely."""
    pair_cfg = None
    for name, color in PAIR_COLORS.items():
        for j, r in enumerate(sorted(by_variant.get(name, []), key=lambda r: r["seed"])):
            m, pair_cfg = r["metrics"], r["config"]["pair"]
            ax.semilogy(
                [0, 1],
                [m["test_mse"], m["test_mse_mismatched"]],
                "o-",
                color=color,
                alpha=0.5,
                ms=3,
                label=name if j == 0 else None,
            )
    if pair_cfg is not None:
        ax.axhline(pair_cfg["noise_std"] ** 2, color="k", ls=":", lw=1, label="noise variance (the best possible)")
        ax.set_xticks([0, 1], ["matched (as in training)", f"mismatched ({pair_cfg['mismatch']:g}x the difference)"])
    ax.set(xlim=(-0.3, 1.3), ylabel="test MSE", title="test MSE per seed: inputs that match as in training vs less")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
