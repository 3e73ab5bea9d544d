"""The plot of ``experiments/resnet_ablation.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math
import statistics

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Top: training error (thin, dashed) and validation error (bold) per epoch, plain nets left and
    ResNets right (He et al.'s Fig. 6). Bottom: ||dL/dh|| at every block output, at initialization
    and at the end of training (geometric mean over seeds)."""

    plt = pyplot()

    colors = {20: "tab:orange", 56: "tab:red", 110: "tab:purple"}
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, kind in zip(axes[0], ("plain", "residual"), strict=True):
        for name in [v for v in by_variant if v.startswith(kind)]:
            recs, depth = by_variant[name], int(name.split("-")[1])
            style = {"color": colors.get(depth, "gray"), "alpha": 0.5 if name.endswith("zero") else 1}
            epochs = min(len(r["history"]) for r in recs)
            x = range(1, epochs + 1)
            for key, width, ls in (("train_error", 1, "--"), ("val_error", 2.2, "-")):
                y = [statistics.fmean(r["history"][e][key] * 100 for r in recs) for e in range(epochs)]
                label = f"{name} {'train' if key == 'train_error' else 'val'}"
                ax.plot(x, y, lw=width, ls=ls, label=label, **style)
        ax.set(xlabel="epoch", ylabel="error (%)", title=f"{kind} nets: train (dashed) and validation (bold) error")
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    probed = {name: recs for name, recs in by_variant.items() if all(r.get("probes") for r in recs)}
    for ax, which in zip(axes[1], (0, -1), strict=True):
        if not probed:  # records kept without their probes (the per-epoch data of an old run was not kept)
            ax.set_axis_off()
            continue
        for name, recs in probed.items():
            depth = int(name.split("-")[1])
            probes = [r["probes"][which]["activation"] for r in recs]
            y = [math.exp(statistics.fmean(math.log(p[i]) for p in probes)) for i in range(len(probes[0]))]
            ls = ":" if name.endswith("zero") else "-" if name.startswith("residual") else "--"
            ax.semilogy(range(len(y)), y, ls=ls, color=colors.get(depth, "gray"), label=name)
        epoch = next(iter(probed.values()))[0]["probes"][which]["epoch"]
        ax.set(
            xlabel="block output (0 = stem, then blocks 1..L)",
            ylabel="||dL/dh||",
            title=f"gradient norm per block, {'at initialization' if which == 0 else f'after epoch {epoch}'}"
            "\nplain dashed, residual solid, zero-init dotted",
        )
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{exp.title} ({profile} profile, mean over seeds)")
    fig.tight_layout()
    save_figure(fig, path)
