"""The plot of ``experiments/batch_size.py`` (its tables' picture), apart from the experiment's declaration."""

from __future__ import annotations

import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment

# (treatment, baseline) pairs whose per-seed differences the right-hand panel shows
PAIRS = (("batch-1024", "batch-32"), ("bn-batch", "bn-fixed"))


def _curves(ax, by_variant: dict[str, list[dict]], names, colors, title: str) -> None:
    """Training error while training (dashed: train mode, over each epoch's batches) and validation error
    (solid) per epoch, mean over seeds."""
    for name in names:
        recs = by_variant.get(name)
        if not recs:
            continue
        epochs = min(len(r["history"]) for r in recs)
        for key, ls in (("val_error", "-"), ("train_error", "--")):
            if epochs and key in recs[0]["history"][0]:
                y = [statistics.fmean(r["history"][e][key] * 100 for r in recs) for e in range(epochs)]
                label = name if ls == "-" else None
                ax.plot(range(1, epochs + 1), y, ls=ls, color=colors.get(name), label=label)
    ax.set(xlabel="epoch", ylabel="error (%)", title=title, ylim=(0, 15))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def paired(by_variant: dict[str, list[dict]], treat: str, base: str, metric: str) -> list[float]:
    """Per seed present in both: the treatment's metric minus the baseline's, in percentage points."""
    a = {r["seed"]: r["metrics"].get(metric, float("nan")) for r in by_variant.get(base, [])}
    b = {r["seed"]: r["metrics"].get(metric, float("nan")) for r in by_variant.get(treat, [])}
    diffs = [(b[s] - a[s]) * 100 for s in sorted(set(a) & set(b))]
    return [d for d in diffs if d == d]  # a diverged run (NaN) has no difference to show


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Left and middle: error curves of the batch sizes and of the two normalizations. Right: per seed, the
    difference in test error (black) and training error (grey) of each pair, with the mean +- one sd."""
    plt = pyplot()

    fig, (sizes, norms, change) = plt.subplots(1, 3, figsize=(16, 4.8))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = dict(zip([v.name for v in exp.variants], cycle, strict=False))
    batch = [n for n in by_variant if n.startswith("batch-")]
    _curves(sizes, by_variant, batch, colors, "batch sizes: validation (solid), training (dashed)")
    _curves(
        norms,
        by_variant,
        [n for n in by_variant if n.startswith("bn-")],
        colors,
        "batch norm at batch 32: validation (solid), training (dashed)",
    )
    present = [(t, b) for t, b in PAIRS if t in by_variant and b in by_variant]
    for i, (treat, base) in enumerate(present):
        for metric, dx, color in (("test_error", -0.1, "black"), ("train_error", 0.1, "gray")):
            diffs = paired(by_variant, treat, base, metric)
            if not diffs:
                continue
            label = metric.replace("_", " ") if i == 0 else None
            change.scatter([i + dx] * len(diffs), diffs, color=color, s=14, zorder=3, label=label)
            sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            change.errorbar(
                [i + dx], [statistics.fmean(diffs)], yerr=[sd], fmt="_", color="tab:red", ms=18, capsize=4, zorder=2
            )
    change.axhline(0, color="gray", lw=1)
    change.set_xticks(range(len(present)), [f"{t}\nminus {b}" for t, b in present], fontsize=8)
    change.set(ylabel="difference (pts)", title="per seed: treatment minus baseline (red: mean +- sd)")
    if present:
        change.legend(fontsize=8)
    change.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{exp.title} ({profile} profile, mean over seeds)")
    fig.tight_layout()
    save_figure(fig, path)
