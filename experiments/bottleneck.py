"""Slide 7: fewer parameters through a linear bottleneck.

"Add a linear bottleneck layer of k units (no nonlinearity) after the input: the network has fewer
parameters, and the set of functions it can compute is strictly smaller: its first hidden layer sees
W1 (B x), and rank(W1 B) <= k. Every bottlenecked network is also an unbottlenecked one (merge W1 B
into one matrix), but not the other way round."

MLPs 784-256-256-10 on MNIST, without and with a bias-free linear layer of width k right after the
input (784-(k)-256-256-10). Every run records the parameter count, the numerical rank of its merged
first-layer matrix W1 B, and how far the merged, unbottlenecked net's outputs are from its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from datamodules.configs import ImageDataConfig
from engine.claims import any_of, higher, identity, lower
from engine.spec import TABLE_SEEDS, Check, CheckOutcome, Claim, Experiment, Profile, Results, Table, Variant
from experiments.common import SMOKE_DATA, MLPRunConfig
from experiments.figures.bottleneck import plot
from lightning_modules.configs import MLPConfig, OptimConfig


# ----------------------------------------------------------------------------- the run
@dataclass
class BottleneckConfig(MLPRunConfig):
    """Defaults are the full profile: 784-256-256-10 on every training image (50k), 50 epochs."""

    data: ImageDataConfig = field(
        default_factory=lambda: ImageDataConfig(dataset="mnist", val_size=10_000, train_eval_size=10_000)
    )
    model: MLPConfig = field(default_factory=lambda: MLPConfig(hidden=(256, 256)))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, weight_decay=0.0, schedule="cosine"))


def build(cfg: BottleneckConfig, seed: int):
    from datamodules.images import ImageDataModule
    from experiments.common import build_mlp
    from lightning_modules import measures
    from lightning_modules.classifier import ImageClassifier

    module = ImageClassifier(build_mlp(cfg), cfg.optim, num_classes=10, measures=(measures.bottleneck,))
    return module, ImageDataModule(cfg.data, seed=seed)


def mlp_params(hidden: tuple[int, ...], bottleneck: int = 0, inputs: int = 784, classes: int = 10) -> int:
    """Weights and biases of an MLP, with a bias-free bottleneck of width ``bottleneck`` after the input."""
    widths = [bottleneck or inputs, *hidden, classes]
    return bottleneck * inputs + sum(a * b + b for a, b in zip(widths, widths[1:], strict=False))


HIDDEN = (256, 256)
KS = (8, 32, 128)
BOTTLENECKS = {f"k-{k}": k for k in KS}  # variant -> bottleneck width
VARIANTS = (
    Variant("none", f"784-256-256-10, no bottleneck: {mlp_params(HIDDEN):,} parameters", {"model.bottleneck": 0}),
) + tuple(
    Variant(
        name,
        f"784-({k})-256-256-10, linear bottleneck of {k} units: {mlp_params(HIDDEN, k):,} parameters",
        {"model.bottleneck": k},
    )
    for name, k in BOTTLENECKS.items()
)

PROFILES = (
    Profile(
        "smoke",
        "784-(k)-32-32-10 on 256 training images, 2 epochs: checks the plumbing only",
        seeds=1,
        overrides={
            "model.hidden": (32, 32),
            **SMOKE_DATA,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=("none", "k-8"),
    ),
    Profile(
        "quick",
        "784-(k)-256-256-10 on a fixed 5,000-image subset, 15 epochs of SGD (batch 64, momentum 0.9, lr 0.05, "
        "cosine, no weight decay); 1,000 validation images, the full test set",
        seeds=6,
        first_seed=TABLE_SEEDS,
        overrides={
            "data.train_size": 5000,
            "data.val_size": 1000,
            "data.test_size": 0,
            "data.train_eval_size": 5000,
            "data.batch_size": 64,
            "data.eval_batch_size": 1000,
            "train.max_epochs": 15,
            "train.log_every_n_steps": 50,
            "train.threads": 1,
        },
        cpu_jobs=2,
        power=(
            "6 seeds, about 2.5 min. Sized twice. In the committed runs before 2026-11-28 the k = 8 bottleneck "
            "fitted worse (+0.32 pts, CI +-0.18) and tested worse (+2.4 pts); k = 32 tested worse by 0.47 pts and "
            "k = 128 by less, so 3 seeds were expected to decide the k = 8 part and leave gaps under about 0.5 pts "
            "open. The 3-seed runs at a3db082 (2026-11-28) did so: none minus k = 8, 32, 128 in test error -2.42, "
            "-0.47, -0.65 pts, per-seed sd 0.28, 0.22, 0.28 (95% half widths 0.70, 0.54, 0.70). The claim is "
            "contradicted only if every bottleneck tests worse: 6 seeds bring the half widths to 2.57 sd / sqrt 6 "
            "= 1.05 sd (0.23-0.30 pts), so every part is decided (power above 0.9 at the measured gaps) if the "
            "gaps hold. The pilot looked at the claim twice (3 seeds, then 6); those runs "
            "are the `pilot` profile now, and the table runs on seeds from 100, which no design saw: one look. The "
            "three parts of this 'might' claim split the 5% (stats.py: 5% / 3 parts), and a 'might' claim no part "
            "of which holds is 'not shown', never contradicted."
        ),
    ),
    Profile(
        "full",
        "784-(k)-256-256-10 on all 50,000 training images (10k validation), 50 epochs of SGD (batch 128, lr 0.05, "
        "cosine, no weight decay); full test set; for a GPU",
        seeds=3,
        first_seed=TABLE_SEEDS,  # a table: seeds no pilot used
        overrides={},
    ),
)


# ----------------------------------------------------------------------------- claims and checks
def _all_runs(results: Results, metric: str) -> dict[str, list[float]]:
    return {v: list(results.get(v, metric).values()) for v in ("none", *BOTTLENECKS) if results.get(v, metric)}


def _fewer_parameters(results: Results) -> CheckOutcome:
    """Exact: every bottlenecked run has fewer parameters than every unbottlenecked one."""
    params = _all_runs(results, "params_k")
    if "none" not in params or len(params) < 2:
        return CheckOutcome(None, math.nan, "needs runs of none and of a bottleneck variant")
    base = min(params.pop("none"))
    ok = all(p < base for ps in params.values() for p in ps)
    text = f"parameters: none {base * 1000:,.0f}; " + ", ".join(
        f"{v} {max(ps) * 1000:,.0f} ({max(ps) / base - 1:+.0%})" for v, ps in params.items()
    )
    return CheckOutcome(ok, math.nan, text)


def _rank_limited(results: Results) -> CheckOutcome:
    """Exact: rank(W1 B) <= k in every bottlenecked run, while the unbottlenecked W1 reaches a higher rank.
    The error: how far the largest rank exceeds its bound k (0 when it holds)."""
    ranks = _all_runs(results, "first_layer_rank")
    if "none" not in ranks or len(ranks) < 2:
        return CheckOutcome(None, math.nan, "needs runs of none and of a bottleneck variant")
    full = ranks.pop("none")
    excess = max(r - BOTTLENECKS[v] for v, rs in ranks.items() for r in rs)
    ok = excess <= 0 and min(full) > max(BOTTLENECKS[v] for v in ranks)
    span = f"{min(full):.0f}" if min(full) == max(full) else f"{min(full):.0f} to {max(full):.0f}"
    text = f"rank of the first-layer matrix: none {span}; " + ", ".join(
        f"{v} {max(rs):.0f} (k = {BOTTLENECKS[v]})" for v, rs in ranks.items()
    )
    return CheckOutcome(ok, max(excess, 0.0), text)


def _counter_parameters() -> Results:
    return Results({"none": {"params_k": {0: 100.0}}, "k-8": {"params_k": {0: 120.0}}})


def _counter_rank() -> Results:
    return Results({"none": {"first_layer_rank": {0: 256.0}}, "k-8": {"first_layer_rank": {0: 9.0}}})


CHECKS = (
    Check("7", "A linear bottleneck reduces the number of parameters", _fewer_parameters, _counter_parameters),
    Check(
        "7",
        "The bottlenecked net's function class is strictly smaller: its first layer W1 B has rank <= k",
        _rank_limited,
        _counter_rank,
    ),
    Check(
        "7",
        "Every bottlenecked net is an unbottlenecked net with first layer W1 B (same outputs)",
        identity(
            "merge_diff",
            "largest |output difference| / largest |output|, bottlenecked net vs its merged form",
            tolerance=1e-10,
            variants=tuple(BOTTLENECKS),
        ),
    ),
)

CLAIMS = (
    Claim(
        "7",
        "Fewer parameters *might* generalize better: some bottleneck (k = " + ", ".join(map(str, KS)) + ") lowers "
        "test error (not shown, never contradicted, if none does)",
        any_of(*(lower("test_error", f"k-{k}", than="none") for k in KS)),
    ),
    Claim(
        "7",
        f"The smallest bottleneck (k = {min(KS)}) fits the training set worse",
        higher("train_error", f"k-{min(KS)}", than="none"),
    ),
)

METRICS = {
    "train_error": "train error (%)",
    "test_error": "test error (%)",
    "gen_error": "test - train (pts)",
    "params_k": "params (k)",
    "first_layer_rank": "rank of W1 B",
    "merge_diff": "merge check (rel. diff)",
    "wall_time": "train time (s)",
}


EXPERIMENT = Experiment(
    name="bottleneck",
    title="A linear bottleneck: fewer parameters, a strictly smaller function class",
    slides="7",
    claim="A linear bottleneck layer cuts the parameter count and restricts the network to first layers of "
    "rank <= k (a strictly smaller set of functions), which may or may not lower test error",
    config=BottleneckConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    checks=CHECKS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "With and without a linear bottleneck",
            ("none", *BOTTLENECKS),
            tuple(METRICS),
            "Rank of W1 B: numerical rank (torch.linalg.matrix_rank, float64) of the matrix the first hidden "
            "layer applies to the input; at most min(k, 256). Merge check: largest output difference between "
            "the net and the unbottlenecked net with first layer W1 B, relative to the largest output.",
        ),
    ),
    plot=plot,
)
