"""The plot of ``experiments/early_stopping.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, labels, patience) -> None:
    """One row per variant. One panel per seed (up to three): train, validation and test error per epoch, the
    best-val epoch and each patience rule's stopping point marked. Then the losses, mean over seeds; last, the
    weights (slide 15): their norm per epoch from initialization (epoch 0), and for logistic units the share of
    pre-activations outside the near-linear range, one line per seed.
    ``labels``: each variant's title; ``patience``: the main rule's."""
    plt = pyplot()

    names = [v for v in ("mlp-noisy", "mlp", "mlp-sigmoid") if v in by_variant]
    cols = max(min(len(by_variant[v]), 3) for v in names) + 2
    fig, axes = plt.subplots(len(names), cols, figsize=(4.5 * cols, 4 * len(names)), squeeze=False)
    styles = {
        "train_error": ("tab:blue", "train"),
        "val_error": ("tab:orange", "validation"),
        "test_error": ("tab:green", "test"),
    }
    for row_axes, name in zip(axes, names, strict=True):
        every = sorted(by_variant[name], key=lambda r: r["seed"])
        recs = [{**r, "history": [row for row in r["history"] if row["epoch"] >= 1]} for r in every[:3]]
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
                ax.plot(
                    stop,
                    hist[int(stop) - 1]["val_error"] * 100,
                    marker,
                    color="k",
                    mfc="none",
                    ms=8,
                    label=f"P={p}: stops at {stop:.0f}, keeps {kept:.0f}",
                )
            ax.set(xlabel="epoch", ylabel="error (%)", title=f"{labels[name]}, seed {rec['seed']}", ylim=(0, None))
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        for ax in row_axes[len(recs) : -2]:
            ax.axis("off")
        _weights(row_axes[-1], every, labels[name], patience)
        ax = row_axes[-2]
        epochs = min(len(r["history"]) for r in recs)
        for key, color in (("train_loss", "tab:blue"), ("val_loss", "tab:orange"), ("test_loss", "tab:green")):
            y = [statistics.fmean(r["history"][e][key] for r in recs) for e in range(epochs)]
            ax.plot(range(1, epochs + 1), y, color=color, label=key.replace("_", " "))
        ax.set(xlabel="epoch", ylabel="cross-entropy (nats)", title=f"{labels[name]}: loss, mean over seeds")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"{exp.title} ({profile} profile)\ntrain error and loss: running means over each epoch's batches, "
        "on the labels trained on"
    )
    fig.tight_layout()
    save_figure(fig, path)


def _weights(ax, recs: list[dict], label: str, patience: int) -> None:
    """Weight norm per epoch (solid, left axis) and the share of pre-activations outside |z| <= 2 (dashed, right
    axis, when recorded), one line of each per seed, from epoch 0; a dot at the epoch the patience rule keeps."""
    if not any("weight_norm" in row for r in recs for row in r["history"]):
        ax.axis("off")
        return
    saturated = any("saturated_pct" in row for r in recs for row in r["history"])
    right = ax.twinx() if saturated else None
    for i, rec in enumerate(recs):
        rows = [row for row in rec["history"] if "weight_norm" in row]
        color = f"C{i}"
        ax.plot(
            [r["epoch"] for r in rows],
            [r["weight_norm"] for r in rows],
            color=color,
            lw=1.2,
            label=f"seed {rec['seed']}: weight norm",
        )
        norms = {row["epoch"]: row["weight_norm"] for row in rows}
        kept = rec["metrics"].get(f"kept_epoch_p{patience}")
        if kept in norms:
            ax.plot(kept, norms[kept], "o", color=color, label=f"seed {rec['seed']}: P={patience} keeps {kept:.0f}")
        if right is not None:
            right.plot(
                [r["epoch"] for r in rows],
                [r["saturated_pct"] for r in rows],
                color=color,
                ls="--",
                lw=1,
                label=f"seed {rec['seed']}: outside |z|<=2",
            )
    ax.set(xlabel="epoch (0: initialization)", ylabel="L2 norm of the weights (no biases)", title=f"{label}: weights")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        right.set_ylabel("pre-activations outside |z| <= 2 (%)")
        more = right.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=7)
