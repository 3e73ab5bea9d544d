"""The plot of ``experiments/early_stopping.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from experiments.plots import pyplot, save_figure
from experiments.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """One row per variant. One panel per seed (up to three): train, validation and test error per epoch, the
    best-val epoch and each patience rule's stopping point marked. Last panel: the losses, mean over seeds."""
    from experiments.early_stopping import LABELS  # (a cycle at import time otherwise)

    plt = pyplot()

    names = [v for v in ("mlp-noisy", "mlp") if v in by_variant]
    cols = max(min(len(by_variant[v]), 3) for v in names) + 1
    fig, axes = plt.subplots(len(names), cols, figsize=(4.5 * cols, 4 * len(names)), squeeze=False)
    styles = {
        "train_error": ("tab:blue", "train"),
        "val_error": ("tab:orange", "validation"),
        "test_error": ("tab:green", "test"),
    }
    for row_axes, name in zip(axes, names, strict=True):
        recs = sorted(by_variant[name], key=lambda r: r["seed"])[:3]
        for ax, rec in zip(row_axes, recs, strict=False):
            hist, m = rec["history"], rec["metrics"]
            x = [row["epoch"] for row in hist]
            for key, (color, label) in styles.items():
                ax.plot(x, [row[key] * 100 for row in hist], color=color, label=label, lw=1.2)
            ax.axvline(
                m["best_val_epoch"], color="k", ls="--", lw=1, label=f"best val: epoch {m['best_val_epoch']:.0f}"
            )
            patiences = sorted(int(k.removeprefix("stop_epoch_p")) for k in m if k.startswith("stop_epoch_p"))
            for p, marker in zip(patiences, "ovs^D", strict=False):
                stop, kept = m[f"stop_epoch_p{p}"], m[f"kept_epoch_p{p}"]
                ax.plot(stop, hist[int(stop) - 1]["val_error"] * 100, marker, color="k", mfc="none", ms=8,
                        label=f"P={p}: stops at {stop:.0f}, keeps {kept:.0f}")  # fmt: skip
            ax.set(xlabel="epoch", ylabel="error (%)", title=f"{LABELS[name]}, seed {rec['seed']}", ylim=(0, None))
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        for ax in row_axes[len(recs) : -1]:
            ax.axis("off")
        ax = row_axes[-1]
        epochs = min(len(r["history"]) for r in recs)
        for key, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange"), ("test_loss", "tab:green")):
            y = [statistics.fmean(r["history"][e][key] for r in recs) for e in range(epochs)]
            ax.plot(range(1, epochs + 1), y, color=color, label=key.replace("_", " "))
        ax.set(xlabel="epoch", ylabel="cross-entropy (nats)", title=f"{LABELS[name]}: loss, mean over seeds")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{exp.title} ({profile} profile)\ntrain error and loss: running means over each epoch's batches, "
        "on the labels trained on"
    )
    fig.tight_layout()
    save_figure(fig, path)
