"""The plot of ``experiments/learning_to_execute.py`` (its table's picture) and slide 39's table of example answers,
apart from the experiment's declaration."""

from __future__ import annotations

import statistics
import textwrap

from engine.plots import pyplot, save_figure
from engine.spec import Experiment


def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str, *, targets, suffixes) -> None:
    """Top: validation character accuracy at the target (solid) and whole answers right (dashed) against
    training steps, one panel per target, a line per curriculum (mean over seeds). Bottom: test programs
    with a model's greedy answers (the slide-39 table). ``targets``: each target's description by name, in
    order; ``suffixes``: each model or input suffix's description."""
    plt = pyplot()
    targets = [t for t in targets if any(n.startswith(t + "-") for n in by_variant)]
    fig = plt.figure(figsize=(max(9, 6 * len(targets)), 11))
    grid = fig.add_gridspec(2, max(1, len(targets)), height_ratios=[1, 1])
    for i, target in enumerate(targets):
        ax = fig.add_subplot(grid[0, i])
        for name in [n for n in (v.name for v in exp.variants) if n.startswith(target + "-") and n in by_variant]:
            recs = [r for r in by_variant[name] if r["history"]]
            if not recs:
                continue
            epochs = min(len(r["history"]) for r in recs)
            x = [recs[0]["history"][e]["steps"] for e in range(epochs)]
            color = None
            for key, style in (("val_acc", "-"), ("val_exact", "--")):
                y = [100 * statistics.fmean(r["history"][e][key] for r in recs) for e in range(epochs)]
                label = name[len(target) + 1 :] if key == "val_acc" else None
                color = ax.plot(x, y, style, color=color, label=label)[0].get_color()  # dashed: same colour
        ax.set(xlabel="training steps", ylabel="validation accuracy at the target (%)", title=target, ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(
            fontsize=8, title="solid: characters (teacher forcing); dashed: whole answers (greedy)", title_fontsize=7
        )
    text = fig.add_subplot(grid[1, :])
    text.axis("off")
    lines = []
    for target in targets:
        name = next((f"{target}-combined{x}" for x in suffixes if f"{target}-combined{x}" in by_variant), None)
        if name is None:
            continue
        rec = min(by_variant[name], key=lambda r: r["seed"])
        lines.append(f"--- {name}, seed {rec['seed']}: test programs and the model's greedy answers ---")
        for ex in (rec.get("examples") or [])[:3]:
            lines += textwrap.indent(ex["input"], "    ").splitlines()
            mark = "right" if ex["right"] else "wrong"
            lines.append(f"    target: {ex['target']}   model: {ex['greedy']}   ({mark})")
        lines.append("")
    text.text(
        0,
        1,
        "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=8,
        parse_math=False,
        transform=text.transAxes,
    )
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- example predictions
def _code(text: str) -> str:
    """A program or answer as markdown table cell text: each line a code span, lines joined by <br>."""
    return "<br>".join(f"`{line}`" for line in text.split("\n")) if text else "(nothing)"


def example_table(by_variant: dict[str, list[dict]], profile: str, *, targets, suffixes, rows: int = 6) -> list[str]:
    """Slide 39's table: the same test programs, their target and the greedy answers of the models trained
    with baseline, naive, mix and combined (one seed, the lowest all four share), one table per target (and
    model or input suffix) with runs of every curriculum. Markdown lines; nothing when no target has them.
    Every run records its answers to the first test programs of its target (the same for every run); of
    these the table shows ``rows``, in test order: those the four answer differently (right or wrong) are picked
    first, then the others. ``targets`` and ``suffixes`` as for ``plot``."""
    from datamodules.configs import CURRICULA

    lines: list[str] = []
    for suffix in suffixes:
        for target, text in targets.items():
            names = [f"{target}-{c}{suffix}" for c in CURRICULA]
            if not all(by_variant.get(n) for n in names):
                continue
            seeds = set.intersection(*({r["seed"] for r in by_variant[n] if r.get("examples")} for n in names))
            if not seeds:
                continue
            seed = min(seeds)
            shown = [next(r for r in by_variant[n] if r["seed"] == seed)["examples"] for n in names]
            inputs = [e["input"] for e in shown[0]]
            if any([e["input"] for e in ex] != inputs for ex in shown):  # records of another generator version
                continue
            split = [i for i in range(len(inputs)) if len({ex[i]["right"] for ex in shown}) > 1]
            picked = sorted((split + [i for i in range(len(inputs)) if i not in split])[:rows])
            header = ["input", "target", *CURRICULA]
            lines += [
                f"**{text}; {suffixes[suffix]}** ({profile} profile, seed {seed}): test "
                f"programs and each model's greedy answer (right ✓, wrong ✗); of the first {len(inputs)} "
                f"test programs, {len(split)} answered differently by the four ({min(len(split), rows)} of "
                "them below, with the others in test order)",
                "",
            ]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for i in picked:
                answers = [f"{_code(ex[i]['greedy'])} {'✓' if ex[i]['right'] else '✗'}" for ex in shown]
                lines.append("| " + " | ".join([_code(inputs[i]), _code(shown[0][i]["target"]), *answers]) + " |")
            lines.append("")
    return ["## Example predictions (slide 39)", "", *lines] if lines else []
