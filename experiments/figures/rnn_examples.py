"""The plot of ``experiments/rnn_examples.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """One row per task. Left: the learned weights against the training step (log scale: they settle early),
    one line per seed (w_self solid, the equivalence quantity dashed), with the hand-set values dotted. Right:
    the training loss, mean over each epoch."""
    plt = pyplot()

    names = [v for v in ("summing", "comparing") if v in by_variant]
    fig, axes = plt.subplots(len(names), 2, figsize=(12, 4.2 * len(names)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (weights, losses), name in zip(axes, names, strict=True):
        for i, rec in enumerate(by_variant[name]):
            rows, color = rec["trace"], colors[i % len(colors)]
            steps = [max(r["step"], 1) for r in rows]
            if name == "summing":
                other, label, target = [r["w_in1"] * r["w_out"] for r in rows], "w_in1 w_out", 1.0
            else:
                other = [r["w_in2"] / r["w_in1"] if r["w_in1"] else math.nan for r in rows]
                label, target = "w_in2 / w_in1", -1.0
            weights.plot(steps, [r["w_self"] for r in rows], color=color, label=f"seed {rec['seed']}: w_self")
            weights.plot(steps, other, color=color, ls="--", label=f"seed {rec['seed']}: {label}")
            trained = [(r["step"], r["train_loss"]) for r in rec["history"] if math.isfinite(r["train_loss"])]
            losses.semilogy(*zip(*trained, strict=True), color=color, marker="o", ms=2, label=f"seed {rec['seed']}")
        for value in (1.0, target):
            weights.axhline(value, color="black", ls=":", lw=1)
        weights.set(
            xlabel="training step (step 0 drawn at 1)",
            xscale="log",
            ylabel="weight",
            ylim=(-3, 3),
            title=f"{name}: learned weights\n(hand-set, dotted: w_self = 1, {label} = {target:g})",
        )
        weights.legend(fontsize=6, ncol=2)
        losses.set(
            xlabel="training step",
            ylabel="mean squared error" if name == "summing" else "cross-entropy",
            title=f"{name}: training loss (mean over each epoch)",
        )
        losses.legend(fontsize=7)
        for ax in (weights, losses):
            ax.grid(alpha=0.3)
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
