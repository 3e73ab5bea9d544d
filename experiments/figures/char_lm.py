"""The plot of ``experiments/char_lm.py`` (its table's picture), apart from the experiment's declaration."""

from __future__ import annotations

import math
import statistics
import textwrap

from engine.plots import pyplot, save_figure
from engine.spec import (
    Experiment,
)
from lightning_modules.configs import (
    LINE_POSITION_LABELS,
    LINE_POSITION_METRICS,
)


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, recurrent) -> None:
    """Top: validation loss (streams) per epoch (mean over seeds) against characters seen, the held-out training
    text's dashed, a star at each seed's reported epoch, and nanoGPT's published figure for scale (a
    random-window loss, Table 1's other column). Middle: the final loss by position within the line, and each
    model's loss there minus MLP-3's (the long-range claims). Bottom: each model's end-of-training sample
    (lowest seed), the slide-35 demonstration."""
    plt = pyplot()

    names = [v.name for v in exp.variants if v.name in by_variant]
    fig = plt.figure(figsize=(11, 17))
    grid = fig.add_gridspec(3, 2, height_ratios=[1, 0.9, 1.1])
    curves, samples = fig.add_subplot(grid[0, :]), fig.add_subplot(grid[2, :])
    losses, vs_mlp = fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])
    _plot_line_positions(names, by_variant, losses, vs_mlp, recurrent)
    for name in names:
        _plot_curve(curves, name, [r for r in by_variant[name] if r["history"]])
    for ref in exp.references:
        curves.axhline(
            ref.value,
            color="gray",
            ls="--",
            lw=1,
            label=f"{ref.value}: nanoGPT transformer (published; random windows, not streams)",
        )
    curves.set(
        xlabel="training characters seen (millions)",
        ylabel="loss, streams (nats/char)",
        title=f"{exp.title} ({profile} profile)\nloss per epoch, mean over seeds: validation text solid, held-out "
        "training text dashed; *: each seed's epoch reported",
    )
    curves.legend(fontsize=8)
    curves.grid(alpha=0.3)
    _plot_samples(samples, names, by_variant)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_curve(curves, name: str, recs: list[dict]) -> None:
    """One model's validation loss per epoch (mean over seeds), its held-out training loss dashed, a star at each
    seed's reported epoch; the counted bigram, which has no curve, as a level."""
    if not recs:
        return
    epochs = min(len(r["history"]) for r in recs)
    x = [recs[0]["history"][e]["tokens"] / 1e6 for e in range(epochs)]
    y = [statistics.fmean(r["history"][e].get("val_loss", float("nan")) for r in recs) for e in range(epochs)]
    held = [statistics.fmean(r["history"][e].get("holdout_loss", math.nan) for r in recs) for e in range(epochs)]
    if not (recs[0]["metrics"]["steps"] and recs[0]["config"]["model"]["kind"] != "bigram"):
        curves.axhline(y[-1], ls=":", color="tab:purple", label=f"{name} (counted, no training steps)")
        return
    (line,) = curves.plot(x, y, marker="o", ms=3, label=name)
    if not all(math.isnan(v) for v in held):
        first = not any(ln.get_linestyle() == "--" for ln in curves.lines)
        label = "held-out training text (each model's colour)" if first else "_nolegend_"
        curves.plot(x, held, ls="--", lw=1, color=line.get_color(), label=label)
    chosen = [int(e) for e in (r["metrics"].get("best_holdout_epoch") for r in recs) if e and e == e]
    stars_x, stars_y = [x[e - 1] for e in chosen if e <= epochs], [y[e - 1] for e in chosen if e <= epochs]
    curves.plot(stars_x, stars_y, "*", ms=10, color=line.get_color())


def _plot_samples(samples, names: list[str], by_variant: dict[str, list[dict]]) -> None:
    """Each model's end-of-training sample (its lowest seed's), as text."""
    samples.axis("off")
    lines = []
    for name in names:
        rec = min(by_variant[name], key=lambda r: r["seed"])
        s = rec.get("sample") or {}
        text = s.get("prompt", "") + s.get("text", "")
        body = "\n".join(textwrap.fill(line, 110, replace_whitespace=False) or " " for line in text.splitlines()[:8])
        lines += [f"--- {name} (seed {rec['seed']}, temperature {s.get('temperature', '?')}) ---", body, ""]
    samples.text(
        0,
        1,
        "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=7.5,
        parse_math=False,
        transform=samples.transAxes,
    )
    samples.set_title("samples generated after training (prompt, then the model's characters)", loc="left")


def _seed_mean(recs: list[dict], metric: str) -> float:
    vals = [r["metrics"].get(metric, math.nan) for r in recs]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return statistics.fmean(vals) if vals else math.nan


def _plot_line_positions(names: list[str], by_variant: dict[str, list[dict]], losses, vs_mlp, recurrent) -> None:
    """Loss by position-in-line bucket (mean over seeds) per model; and each recurrent model's minus MLP-3's,
    per seed then averaged (below zero: the model does better than the context-3 MLP there).
    ``recurrent``: the names of the recurrent models."""
    x = range(len(LINE_POSITION_METRICS))
    mlp = {r["seed"]: r["metrics"] for r in by_variant.get("mlp-3", [])}
    for name in names:
        recs = by_variant[name]
        y = [_seed_mean(recs, m) for m in LINE_POSITION_METRICS]
        if all(math.isnan(v) for v in y):  # records from before the measure existed
            continue
        losses.plot(x, y, marker="o", ms=3, label=name)
        paired = [r for r in recs if r["seed"] in mlp]
        if name in recurrent and paired:
            diff = [
                statistics.fmean(r["metrics"].get(m, math.nan) - mlp[r["seed"]].get(m, math.nan) for r in paired)
                for m in LINE_POSITION_METRICS
            ]
            vs_mlp.plot(x, diff, marker="o", ms=3, label=name, color=losses.lines[-1].get_color())
    for ax in (losses, vs_mlp):
        ax.axvline(2.5, color="gray", ls=":", lw=1, label="from 3 on, MLP-3's window has lost the line start")
        ax.set_xticks(list(x), LINE_POSITION_LABELS)
        ax.set_xlabel("position of the character in its line (0: its first character)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    vs_mlp.axhline(0, color="black", lw=0.8)
    losses.set(ylabel="final validation loss (nats/char)", title="loss by position in the line, mean over seeds")
    vs_mlp.set(ylabel="model minus mlp-3 (nats/char)", title="recurrent models minus MLP-3, paired by seed")
