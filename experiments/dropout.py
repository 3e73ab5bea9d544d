"""Slides 18-23: dropout.

"Dropout: during training, drop each unit with probability p; at test time, multiply the weights by
the keep probability (weight scaling), a cheap stand-in for averaging the predictions of the 2^n
thinned networks. It is a strong regularizer, better than plain weight decay, and in linear
regression it is exactly an adaptive weight decay."

Srivastava et al.'s MNIST net (2014, Table 9: 784-1024-1024-2048-10 ReLU) trained with no
regularizer, L2, dropout (input 0.2, hidden 0.5), dropout + L2 and dropout + max-norm. Every dropout
run then compares, on the same test images, the weight-scaling rule with the Monte-Carlo average of
the softmax outputs of k random masks for k = 1..100 (section 7.5), and every run checks the
adaptive-weight-decay identity numerically (``lightning_modules/dropout_eval.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.claims import identity, lower, same
from engine.spec import TABLE_SEEDS, Check, Claim, Experiment, Profile, Reference, Table, Variant
from experiments.common import IMAGE_METRICS, MLPRunConfig
from experiments.figures.dropout import plot


@dataclass
class MCConfig:
    samples: int = 100  # masks averaged; the error is recorded for every k = 1..samples
    images: int = 0  # test images the comparison uses (the first ones in the fixed test order); 0: all

    def validate(self) -> None:
        if self.samples < 1 or self.images < 0:
            raise ValueError("mc.samples must be >= 1 and mc.images >= 0")


@dataclass
class DropoutRunConfig(MLPRunConfig):
    mc: MCConfig = field(default_factory=MCConfig)


def build(cfg: DropoutRunConfig, seed: int):
    from datamodules.images import ImageDataModule
    from experiments.common import build_mlp
    from lightning_modules import measures
    from lightning_modules.dropout_eval import MonteCarloDropoutClassifier

    extra = (measures.max_norm_binding,) if cfg.model.max_norm > 0 else ()
    module = MonteCarloDropoutClassifier(build_mlp(cfg), cfg.optim, 10, cfg.mc.samples, cfg.mc.images, seed, extra)
    return module, ImageDataModule(cfg.data, seed=seed, channels_last=False)


WEIGHT_DECAY = 5e-4  # the L2 coefficient (SGD weight_decay: lambda in J + lambda/2 ||w||^2)
DROPOUT = {"model.input_dropout": 0.2, "model.hidden_dropout": 0.5}  # the paper's MNIST rates
# c: the bound on each hidden unit's incoming weight norm. The paper's c = 3 never bound here (0% of steps in every
# run until 2026-12-06: those runs were the dropout runs number for number), so the constraint is sized to bind.
# Pilot (seed 0, `pilot` profile, --set model.max_norm): c = 1.5 shortened some unit at 80% of the steps but only
# 0.2% of (unit, step) pairs, test error 6.74%; c = 1.0 at 91% of the steps and 7.9% of the pairs, test error
# 6.44% (dropout alone: 6.37%). The paper pairs max-norm with a high learning rate; doubling it (0.2) left
# dropout+max-norm underfit (seed 0: train error 8.7%, test 14.4% after 40 epochs), so every variant here shares
# one learning rate and differs only in its regularizer.
MAX_NORM_C = 1.0
C_NOTE = f"; max-norm c = {MAX_NORM_C:g} (sized to bind here), the paper's 3-4"
MAX_NORM = {"model.max_norm": MAX_NORM_C}

VARIANTS = (
    Variant("none", "no regularizer", {}),
    Variant("l2", f"L2 weight decay {WEIGHT_DECAY:g}", {"optim.weight_decay": WEIGHT_DECAY}),
    Variant("max-norm", f"max-norm c = {MAX_NORM_C:g} on every hidden unit's incoming weights, no dropout", MAX_NORM),
    Variant("dropout", "dropout: inputs 0.2, hidden units 0.5", DROPOUT),
    Variant(
        "dropout+l2", f"dropout and L2 weight decay {WEIGHT_DECAY:g}", {**DROPOUT, "optim.weight_decay": WEIGHT_DECAY}
    ),
    Variant("dropout+max-norm", f"dropout and max-norm c = {MAX_NORM_C:g}", {**DROPOUT, **MAX_NORM}),
)
DROPOUT_VARIANTS = ("dropout", "dropout+l2", "dropout+max-norm")

PROFILES = (
    Profile(
        "smoke",
        "a 32-32-64 MLP on 256 images, 2 epochs, 10 masks on 128 test images: checks the plumbing only",
        seeds=1,
        overrides={
            "model.hidden": (32, 32, 64),
            "data.train_size": 256,
            "data.val_size": 128,
            "data.test_size": 256,
            "data.train_eval_size": 128,
            "data.batch_size": 64,
            "data.eval_batch_size": 128,
            "mc.samples": 10,
            "mc.images": 128,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=("none", "dropout"),
    ),
    Profile(
        "quick",
        "REDUCED: a 784-512-512-1024-10 MLP (half of Table 9's widths) trained 40 epochs on a fixed 2,000-image "
        "subset of MNIST's training set (batch 128, SGD 0.9, lr 0.1 cosine for every variant), where the "
        "unregularized net overfits; 1,000 val images; error on the full 10,000-image test set, and the "
        "MC-vs-weight-scaling comparison with 100 masks on all of it. No max-norm-only variant",
        seeds=3,
        first_seed=TABLE_SEEDS,
        overrides={
            "model.hidden": (512, 512, 1024),
            "data.train_size": 2000,
            "data.val_size": 1000,
            "data.test_size": 0,
            "data.train_eval_size": 1000,
            "data.eval_batch_size": 1000,
            "optim.lr": 0.1,
            "mc.images": 0,  # every test image
            "train.max_epochs": 40,
            "train.log_every_n_steps": 20,
            "train.threads": 1,
        },
        variants=("none", "l2", "dropout", "dropout+l2", "dropout+max-norm"),
        cpu_jobs=2,
        power=(
            "3 seeds, about 4 min. Max-norm's c = 1 was sized to bind by a pilot on seed 0 (the paper's c = 3 "
            "never acted in the runs before 2026-12-06; c = 1.5 acted at 80% of steps on 0.2% of (unit, step) "
            "pairs, c = 1 at 91% and 7.9%). The committed runs before 2026-11-28 (3 seeds, the same recipe, MC on "
            "2,000 test images) put the regularization claims far outside their spread: dropout minus none "
            "-1.76 pts (95% CI +-0.31), dropout+L2 minus L2 -1.50 (+-0.44), one mask minus 100 masks +3.1 "
            "(+-1.7); 3 seeds decide effects that size. The weight-scaling equivalence (margin 0.3 pts, "
            "fixed before these runs) measured +0.37 pts (90% interval +0.27 to +0.46) on 2,000 test images; "
            "all 10,000 images now shrink the per-seed noise, but a systematic gap near the margin stays "
            "undecided with any number of seeds: only a wider margin (a different claim) or a longer-trained "
            "net would settle it."
        ),
    ),
    Profile(
        "full",
        "Table 9's 784-1024-1024-2048-10 ReLU MLP, 50k/10k train/val split, batch 128, SGD 0.9, lr 0.1 cosine "
        "(every variant), 100 epochs (the paper trains longer); MC averaging with 100 masks on the whole "
        "test set; for a GPU",
        seeds=3,
        first_seed=TABLE_SEEDS,  # a table: seeds no pilot used
        overrides={"train.max_epochs": 100, "data.eval_batch_size": 2000, "optim.lr": 0.1},
    ),
)


# ----------------------------------------------------------------------------- claims
EQUIVALENCE_MARGIN = 0.003  # 0.3 percentage points

CLAIMS = (
    Claim("18-19", "Dropout lowers test error (vs no regularizer)", lower("test_error", "dropout", than="none")),
    Claim(
        "18-21",
        "Dropout regularizes better than weight decay: dropout alone has lower test error than L2 weight decay alone",
        lower("test_error", "dropout", than="l2"),
    ),
    Claim(
        "18-21",
        "... and adds to it: dropout with L2 weight decay has lower test error than L2 alone",
        lower("test_error", "dropout+l2", than="l2"),
    ),
    Claim(
        "20",
        "Averaging the predictions of many dropout masks beats a single thinned net (error at k=100 < k=1)",
        lower("mc_k100_error", "dropout", than="dropout", than_metric="mc_k1_error"),
    ),
    Claim(
        "20",
        "Weight scaling is a good approximation of mask averaging: with 100 masks the Monte-Carlo error is within "
        f"{EQUIVALENCE_MARGIN * 100:g} pts of the weight-scaled net's (Srivastava et al. 7.5: they meet near k=50)",
        same("mc_k100_error", "dropout", than="dropout", than_metric="weight_scaling_error", margin=EQUIVALENCE_MARGIN),
    ),
)

CHECKS = (
    Check(
        "18",
        "Backprop through a dropout net goes through the kept units only: its weight gradients equal those of the "
        "thinned nets its masks leave (the dropped units removed), so a unit dropped in every example gets none",
        identity(
            "backprop_rule_gap",
            "max |gradient through PyTorch's dropout - gradient of the per-example thinned nets| over both weight "
            "matrices (an 8-12-3 tanh net, 16 examples, drop rate 1/2, float64, seeded by the run)",
            tolerance=1e-12,
        ),
    ),
    Check(
        "22-23",
        "For linear regression with inputs dropped at rate 1/2, E_m[J] = data term of the weight-scaled "
        "predictor + 1/2 sum_j Var[x_j] w_j^2",
        identity(
            "wd_identity_gap",
            "|E_m[J] by enumerating all 2^8 masks - (data term + 1/2 sum_j Var[x_j] w_j^2)| on a centred random "
            "regression (32 points, 8 inputs, drop rate 1/2, float64, seeded by the run)",
            tolerance=1e-12,
        ),
    ),
)

METRICS = {
    **IMAGE_METRICS,
    "weight_scaling_error": "weight scaling (%)",
    "mc_k1_error": "MC k=1 (%)",
    "mc_k10_error": "MC k=10 (%)",
    "mc_k50_error": "MC k=50 (%)",
    "mc_k100_error": "MC k=100 (%)",
    "mc_minus_ws_error": "MC k=100 - weight scaling (pts)",
    "wd_expected_loss": "E_m[J], all masks",
    "wd_closed_form": "data + 1/2 sum Var[x_j] w_j^2",
    "wd_identity_gap": "max gap (both conventions)",
    "max_norm_steps_pct": "steps max-norm acted (%)",
    "backprop_rule_gap": "backprop rule: max gap (slide 18)",
}


TABLE9 = "Srivastava et al. 2014 Table 9 (784-1024-1024-2048-10 ReLU, full MNIST)"

EXPERIMENT = Experiment(
    name="dropout",
    title="Dropout on an MNIST MLP",
    slides="18-23",
    claim="Dropout (training thinned nets, testing with scaled weights) regularizes better than weight decay; "
    "weight scaling approximates averaging over masks; in linear regression dropout is an adaptive weight decay",
    config=DropoutRunConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    checks=CHECKS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Regularizers on the MNIST MLP (Srivastava et al. Table 9)",
            tuple(v.name for v in VARIANTS),
            ("test_error", "train_error", "best_val_error", "gap", "max_norm_steps_pct", "wall_time"),
            f"Published figures: {TABLE9}; it also lists L2+L1 1.60 and L2+KL-sparsity 1.55 (not run here). "
            "Train error is measured in evaluation mode (weight scaling) on clean training images. Steps "
            f"max-norm acted: the percentage of optimizer steps at which c = {MAX_NORM_C:g} shortened some hidden "
            "unit's incoming weights; at 0 the constraint never acted, and the run is the dropout run of the same "
            "seed, number for number.",
            pairs=(("none", "dropout"), ("l2", "dropout+l2"), ("none", "dropout+max-norm")),
        ),
        Table(
            "Test time: weight scaling vs Monte-Carlo averaging over k masks (Srivastava et al. 7.5)",
            DROPOUT_VARIANTS,
            (
                "weight_scaling_error",
                "mc_k1_error",
                "mc_k10_error",
                "mc_k50_error",
                "mc_k100_error",
                "mc_minus_ws_error",
            ),
            "Both on the same test images (see the profile for how many). MC: the argmax of the mean softmax output "
            "of k forward passes with independent dropout masks; weight scaling: one pass in evaluation mode "
            "(PyTorch's inverted dropout makes that exactly the paper's rule).",
        ),
        Table(
            "Dropout as adaptive weight decay: E_m[J] = 1/(2N) sum_n (t_n - w~.x_n)^2 + 1/2 sum_j Var[x_j] w~_j^2",
            tuple(v.name for v in VARIANTS),
            ("wd_expected_loss", "wd_closed_form", "wd_identity_gap"),
            "Linear regression, every input dropped independently with probability 1/2. w~ are the test-time "
            "weights: with an un-scaled mask m_j ~ Bernoulli(1/2) (y = sum_j m_j w_j x_j) they are w/2, with "
            "inverted dropout (y = 2 sum_j m_j w_j x_j) they are w. For any keep probability q the penalty is "
            "1/2 (1-q)/q sum_j E_n[x_j^2] w~_j^2; q = 1/2 makes the coefficient 1/2, and centred inputs make "
            "E_n[x_j^2] = Var[x_j]. Each run enumerates all 256 masks of a random 32-point, 8-input problem seeded "
            "by its seed (both conventions) and records the largest absolute gap: rounding error only.",
        ),
    ),
    references=tuple(
        Reference(
            variant,
            "test_error",
            value,
            TABLE9,
            setting="784-1024-1024-2048-10 ReLU on all 60,000 MNIST training images, trained far longer than here, "
            "with the paper's learning-rate and momentum schedules",
            why_not={
                "quick": "half the widths, 2,000 training images, 40 epochs" + C_NOTE * ("max-norm" in variant),
                "full": "100 epochs at lr 0.1 cosine; the paper trains longer, max-norm with a higher learning rate",
            },
        )
        for variant, value in (("l2", 1.62), ("max-norm", 1.35), ("dropout+l2", 1.25), ("dropout+max-norm", 1.05))
    ),
    plot=plot,
)
