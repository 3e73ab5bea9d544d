"""The plot of ``experiments/gradients.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math

from datamodules.configs import RECALL_GUESS_MSE
from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Top left: ||dh_T/dh_1|| against T (tanh solid, linear dashed; seed 0). Top right: |(f^n)'| over the
    starting points, with f^n itself. Bottom: gradient norm (before clipping) and training loss per step,
    one line per seed, a cross where a run diverged."""
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    ax = axes[0][0]
    if "analysis" in by_variant:
        curves = by_variant["analysis"][0]["curves"]
        keys = [k for k in curves if k != "logistic"]
        cmap = plt.get_cmap("coolwarm")
        for i, key in enumerate(keys):
            color = "black" if key == "orth" else cmap(i / max(1, len(keys) - 2))
            label = "orthogonal" if key == "orth" else f"radius {key[1:]}"
            ts = range(1, len(curves[key]["tanh"]) + 1)
            ax.semilogy(ts, curves[key]["tanh"], color=color, label=f"{label} (tanh)")
            ax.semilogy(ts, curves[key]["linear"], color=color, ls="--", lw=0.8)
        ax.set_ylim(1e-20, 1e20)
        ax.set(xlabel="T", ylabel="||dh_T/dh_1||", title="Jacobian norm: tanh RNN (solid), linear W^(T-1) (dashed)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        ax = axes[0][1]
        lg = curves["logistic"]
        ax.semilogy(lg["x0"], [10**v for v in lg["log10_abs_derivative"]], color="tab:red", lw=0.8)
        ax.set(
            xlabel="starting point x",
            ylabel=f"|(f^{lg['steps']})'(x)|",
            title=f"f(x) = 3.5x(1-x): derivative of f^{lg['steps']} (red), f^{lg['steps']} (blue)",
        )
        ax.set_ylim(1e-25, 1e20)  # (f^n)' is exactly 0 at x = 1/2 (f'(1/2) = 0)
        twin = ax.twinx()
        twin.plot(lg["x0"], lg["iterates"][str(lg["steps"])], color="tab:blue", lw=0.6, alpha=0.7)
        twin.set_ylabel(f"f^{lg['steps']}(x)")
        ax.grid(alpha=0.3)
    for ax, key, ylabel in zip(
        axes[1], ("grad_norm", "loss"), ("gradient norm (before clipping)", "training loss"), strict=True
    ):
        for name, color in (("no-clip", "tab:red"), ("clip", "tab:blue")):
            for j, rec in enumerate(by_variant.get(name, [])):
                trace = rec["traces"][key]
                ax.plot(
                    range(len(trace)),
                    [math.nan if v is None else v for v in trace],
                    color=color,
                    lw=0.6,
                    alpha=0.7,
                    label=name if j == 0 else None,
                )
                if rec["metrics"]["diverged"]:
                    ax.axvline(len(trace) - 1, color=color, ls=":", lw=1)
        ax.set_yscale("log")
        ax.set(xlabel="SGD step", ylabel=ylabel, title=f"{ylabel} per step (dotted line: run diverged)")
        if key == "loss":
            ax.axhline(RECALL_GUESS_MSE, color="gray", ls="--", lw=0.8, label="constant guess")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
