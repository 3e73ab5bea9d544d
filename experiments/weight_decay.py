"""Slides 3, 8-12: capacity, overfitting and weight decay.

"A polynomial of too low a degree underfits; one of too high a degree fits the training points exactly
and generalizes badly (slide 3). Penalizing the size of the weights, J_reg = J + lambda/2 ||w||^2, keeps
them small and the fit smooth; its gradient step is w <- (1 - a lambda) w - a dJ/dw: the weights decay
(slides 8-10). An L1 penalty lambda sum |w_j| instead pushes many weights to zero (slides 11-12)."

Two kinds of run in one experiment, chosen by the config's ``kind``:
- ``poly``: Bishop's picture (PRML 1.1): polynomials of degree 1, 3 and 9 fitted exactly to 10 noisy
  points of sin(2 pi x), and the degree-9 fit with an L2 penalty swept over lambda
  (``lightning_modules/regression.py``). Each seed draws new noise.
- ``mlp``: a 784-256-256-10 ReLU MLP on an MNIST subset without a penalty, with L2 weight decay and with
  an L1 penalty; how many of its weights end near zero.
The exactness of the decay update is a test: ``tests/test_weight_decay.py``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from datamodules.configs import PolyConfig
from experiments.claims import Compare, higher, lower
from experiments.common import SMOKE_DATA, MLPRunConfig
from experiments.figures.weight_decay import plot
from experiments.spec import Check, CheckOutcome, Claim, Experiment, Profile, Results, Table, Variant


@dataclass
class WeightDecayConfig(MLPRunConfig):
    """An MLP run on MNIST (``data``, ``model``, ``optim``, ``train``) or, with ``kind: poly``, a polynomial
    fit (``poly``; of the rest only ``train`` is used, and one epoch is one exact solve)."""

    kind: str = "mlp"  # mlp | poly
    poly: PolyConfig = field(default_factory=PolyConfig)

    def validate(self) -> None:
        if self.kind not in ("mlp", "poly"):
            raise ValueError("kind must be mlp or poly")


def build(cfg: WeightDecayConfig, seed: int):
    from datamodules.images import ImageDataModule
    from datamodules.polynomial import PolynomialDataModule
    from experiments.common import build_mlp
    from lightning_modules import measures
    from lightning_modules.classifier import ImageClassifier
    from lightning_modules.regression import PolynomialRegression

    if cfg.kind == "poly":
        return PolynomialRegression(cfg.poly), PolynomialDataModule(cfg.poly, seed=seed)
    module = ImageClassifier(build_mlp(cfg), cfg.optim, 10, measures=(measures.sparsity,),
                             extra_measures=(measures.weight_histogram,))  # fmt: skip
    return module, ImageDataModule(cfg.data, seed=seed)


# ----------------------------------------------------------------------------- variants
LAMBDAS = (("1e-8", 1e-8), ("1e-6", 1e-6), ("1e-4", 1e-4), ("1e-2", 1e-2), ("1", 1.0))
MODERATE = "degree-9-l2-1e-4"  # the claim's "moderate" penalty, fixed before any run (middle of the sweep)
SWEEP = ("degree-9", *(f"degree-9-l2-{name}" for name, _ in LAMBDAS))  # lambda = 0, then increasing


def _poly(degree: int, l2: float = 0.0) -> dict:
    return {"kind": "poly", "poly.degree": degree, "poly.l2": l2, "train.max_epochs": 1}


L2_DECAY = 1e-3  # SGD weight_decay (lambda of lambda/2 ||w||^2); decays biases too
L1_PENALTY = 1e-4  # lambda of lambda sum |w| over the weight matrices

VARIANTS = (
    Variant("degree-1", "polynomial of degree 1 (a line), least squares", _poly(1)),
    Variant("degree-3", "polynomial of degree 3, least squares", _poly(3)),
    Variant("degree-9", "polynomial of degree 9, least squares (interpolates the 10 points)", _poly(9)),
    *(Variant(f"degree-9-l2-{name}", f"degree 9, L2 penalty lambda = {name}", _poly(9, lam)) for name, lam in LAMBDAS),
    Variant("mlp-none", "MLP 784-256-256-10, no penalty", {"optim.weight_decay": 0.0, "optim.l1": 0.0}),
    Variant(
        "mlp-l2",
        f"MLP, L2 weight decay {L2_DECAY:g} (SGD weight_decay, all parameters)",
        {"optim.weight_decay": L2_DECAY, "optim.l1": 0.0},
    ),
    Variant(
        "mlp-l1",
        f"MLP, L1 penalty {L1_PENALTY:g} Σ abs(w) on the weight matrices",
        {"optim.weight_decay": 0.0, "optim.l1": L1_PENALTY},
    ),
)
MLP_VARIANTS = ("mlp-none", "mlp-l2", "mlp-l1")

MLP_COMMON = {"model.hidden": (256, 256), "optim.schedule": "cosine", "optim.lr": 0.05, "optim.momentum": 0.9}

PROFILES = (
    Profile(
        "smoke",
        "degree 9 with and without a penalty, and the L1 MLP for 2 epochs on 256 images: checks the plumbing only",
        seeds=1,
        overrides={
            **MLP_COMMON,
            "model.hidden": (32,),
            **SMOKE_DATA,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=("degree-9", MODERATE, "mlp-l1"),
    ),
    Profile(
        "quick",
        "polynomials: 10 evenly spaced points, noise std 0.3, 1,000 test points, exact fits. MLP 784-256-256-10 "
        "on a fixed 6,000-image MNIST subset, 12 epochs, batch 128, SGD momentum 0.9, lr 0.05 cosine; 2,000 val "
        "images, full test set",
        # the overfit polynomial's test error varies a lot between draws: with 3 seeds the 95% interval of the
        # degree-9 vs degree-3 comparison excludes 0 in about 1 of 3 simulated cases, with 5 in 19 of 20
        seeds=5,
        overrides={
            **MLP_COMMON,
            "data.train_size": 6000,
            "data.val_size": 2000,
            "data.test_size": 0,
            "data.train_eval_size": 2000,
            "data.batch_size": 128,
            "data.eval_batch_size": 1000,
            "train.max_epochs": 12,
            "train.log_every_n_steps": 20,
            "train.threads": 2,
        },
        # cpu_jobs 1: the 40 polynomial fits take well under a second each in one process, but seconds each as
        # child processes (imports); the MLP runs are short too
    ),
    Profile(
        "full",
        "polynomials as in quick; MLP 784-256-256-10 on the full 50k/10k MNIST split, 50 epochs, lr 0.05 cosine",
        seeds=10,
        overrides={**MLP_COMMON},
    ),
)


# ----------------------------------------------------------------------------- claims
def _coefficients_shrink(results: Results) -> CheckOutcome:
    """Exact for ridge regression: ||w(lambda)||_2 decreases strictly as lambda grows, in every seed. The error:
    the largest relative growth from one lambda to the next (0 when it holds)."""
    present = [v for v in SWEEP if results.get(v, "w_norm")]
    seeds = sorted(set.intersection(*(set(results.get(v, "w_norm")) for v in present))) if present else []
    if len(present) < 2 or not seeds:
        return CheckOutcome(None, math.nan, "needs degree-9 runs at two or more lambdas")
    norms = {s: [results.get(v, "w_norm")[s] for v in present] for s in seeds}
    growth = max(b / a - 1 for n in norms.values() for a, b in zip(n, n[1:], strict=False))
    bad = [s for s, n in norms.items() if any(b >= a for a, b in zip(n, n[1:], strict=False))]
    first, last = present[0], present[-1]
    ratio = statistics.median(norms[s][0] / norms[s][-1] for s in seeds)
    text = (
        f"‖w‖₂ over {', '.join(present)}: strictly decreasing in {len(seeds) - len(bad)} of {len(seeds)} seeds"
        f"{f' (not in seeds {bad})' if bad else ''}; median ‖w‖₂ {first} / {last} = {ratio:.3g}"
    )
    return CheckOutcome(not bad, max(growth, 0.0), text)


def _counter_shrink() -> Results:
    return Results({"degree-9": {"w_norm": {0: 1.0}}, MODERATE: {"w_norm": {0: 2.0}}})


def _test_worse(a: str, b: str) -> Compare:
    """The test RMSE of an overfit polynomial is heavy-tailed across draws; its logarithm is much closer to the
    normal law that the t-interval assumes, so the ratio is compared."""
    return higher("test_rmse", a, than=b, transform="log10", what=f"log10(test RMSE {a} / {b})")


CHECKS = (
    Check(
        "8-10",
        "The coefficients shrink as lambda grows (‖w‖₂ along the sweep, every seed)",
        _coefficients_shrink,
        _counter_shrink,
    ),
)

CLAIMS = (
    Claim("3", "Degree 1 underfits: higher test error than degree 3", _test_worse("degree-1", "degree-3")),
    Claim(
        "3",
        "Degree 9 fits the training points better than degree 3",
        lower("train_rmse", "degree-9", than="degree-3"),
    ),
    Claim("3", "... but overfits: higher test error than degree 3", _test_worse("degree-9", "degree-3")),
    Claim(
        "8-10",
        "A moderate L2 penalty (lambda = 1e-4) lowers the degree-9 test error",
        _test_worse("degree-9", MODERATE),
    ),
    Claim(
        "8-10",
        "Too large a penalty (lambda = 1) underfits: higher test error than lambda = 1e-4",
        _test_worse("degree-9-l2-1", MODERATE),
    ),
    Claim(
        "11-12",
        "L1 leaves more weights near zero (magnitude < 1e-3) than L2",
        higher("pct_below_1e-3", "mlp-l1", than="mlp-l2", unit=" pts"),
    ),
    Claim(
        "11-12",
        "L1 leaves more weights near zero (magnitude < 1e-3) than no penalty",
        higher("pct_below_1e-3", "mlp-l1", than="mlp-none", unit=" pts"),
    ),
)

METRICS = {
    "train_rmse": "train RMSE",
    "test_rmse": "test RMSE",
    "w_norm": "‖w‖₂",
    "w_max": "largest coefficient (abs)",
    "test_error": "test error (%)",
    "train_error": "train error (%)",
    "pct_below_1e-3": "% weights below 1e-3 (abs)",
    "pct_below_1e-2": "% weights below 1e-2 (abs)",
    "weight_norm": "‖W‖₂ (weight matrices)",
    "weight_mean_abs": "mean abs weight",
    "wall_time": "train time (s)",
}


EXPERIMENT = Experiment(
    name="weight-decay",
    title="Overfitting and weight decay",
    slides="3, 8-12",
    claim="A high-degree polynomial fits its training points and generalizes badly; an L2 penalty shrinks the "
    "weights and lowers test error (too much underfits); an L1 penalty drives many weights to zero",
    config=WeightDecayConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    checks=CHECKS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Polynomial degree: underfitting and overfitting",
            ("degree-1", "degree-3", "degree-9"),
            ("train_rmse", "test_rmse", "w_norm", "w_max"),
            "Exact least-squares fits to 10 evenly spaced points of sin(2πx) + N(0, 0.3²); test RMSE on 1,000 "
            "fresh points (the noise alone gives 0.3). Coefficients are in powers of u = 2x - 1.",
        ),
        Table(
            "Degree 9 with an L2 penalty λ/2 ‖w‖²",
            SWEEP,
            ("train_rmse", "test_rmse", "w_norm", "w_max"),
            "J_reg = 1/(2N) Σ (y - t)² + λ/2 ‖w‖², minimized exactly; `degree-9` is λ = 0.",
        ),
        Table(
            "L1 vs L2 on an MLP (MNIST)",
            MLP_VARIANTS,
            (
                "test_error",
                "train_error",
                "pct_below_1e-3",
                "pct_below_1e-2",
                "weight_norm",
                "weight_mean_abs",
                "wall_time",
            ),  # fmt: skip
            "Near-zero fractions are over every entry of the weight matrices (biases excluded).",
        ),
    ),
    plot=plot,
)
