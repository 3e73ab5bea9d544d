"""The plot of ``experiments/long_range.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from datamodules.configs import ADDING_GUESS_MSE
from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(
    exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, cells, lengths, solved_fraction
) -> None:
    """Test MSE against training step, one panel per length: each seed thin, the mean over seeds bold;
    the constant guess's 1/6 and the solved threshold as horizontal lines. ``cells``: each cell's label by name;
    ``lengths``: the sequence lengths; ``solved_fraction``: the threshold's share of the guess's MSE."""
    plt = pyplot()

    lengths = [n for n in lengths if any(f"{c}-{n}" in by_variant for c in cells)]
    colors = {"rnn": "tab:red", "irnn": "tab:orange", "lstm": "tab:blue", "gru": "tab:green"}
    fig, axes = plt.subplots(1, len(lengths), figsize=(5.5 * len(lengths), 4.5), squeeze=False)
    for ax, length in zip(axes[0], lengths, strict=True):
        for cell, label in cells.items():
            recs = by_variant.get(f"{cell}-{length}", [])
            if not recs:
                continue
            for r in recs:
                ax.plot(
                    [h["step"] for h in r["history"]],
                    [h["test_mse"] for h in r["history"]],
                    color=colors[cell],
                    lw=0.7,
                    alpha=0.4,
                )
            points = min(len(r["history"]) for r in recs)
            steps = [recs[0]["history"][i]["step"] for i in range(points)]
            mean = [statistics.fmean(r["history"][i]["test_mse"] for r in recs) for i in range(points)]
            ax.plot(steps, mean, color=colors[cell], lw=2, label=f"{label} (mean of {len(recs)})")
        solved = recs[0]["config"]["solved_below"] if recs else solved_fraction * ADDING_GUESS_MSE
        ax.axhline(ADDING_GUESS_MSE, color="black", ls="--", lw=1, label="constant guess 1/6")
        ax.axhline(solved, color="gray", ls=":", lw=1, label=f"solved below {solved:.4f}")
        ax.set_yscale("log")
        ax.set(xlabel="training step", ylabel="test MSE", title=f"adding problem, T = {length}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"Adding problem: test MSE during training ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)
