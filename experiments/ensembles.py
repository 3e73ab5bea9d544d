"""Slides 16-17: ensembles.

"Train several models and average their predictions. Under a convex loss the average's loss is never
worse than the average member's (Jensen's inequality), and in practice the ensemble's error is lower than
a typical member's. Members can differ by their random initialization, by the data they see (bagging:
each trains on a bootstrap resample of the training set) or by their architecture and hyperparameters.
For deep networks different initializations already give enough diversity, so bagging is rarely used."

N MLPs on a fixed MNIST subset, all trained in one run (``lightning_modules/ensemble.py``), made diverse
by init, by bagging (with and without different inits, to separate the two sources), or by different
widths, depths and learning rates. Every run scores the ensembles of the first n = 1..N members on every
test example and counts the examples where Jensen's inequality fails (cross-entropy and Brier score).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from experiments import stats
from experiments.common import SMOKE_DATA, MLPRunConfig
from experiments.report import pyplot, save_figure
from experiments.spec import Claim, Experiment, Profile, Results, Table, Variant, Verdict
from lightning_modules.ensemble import EnsembleClassifier, IndexedImageDataModule
from lightning_modules.nets.mlp import MLP, MLPConfig


@dataclass
class EnsembleConfig:
    members: int = 10
    bagging: bool = False  # member i trains on its own bootstrap resample (weights = counts, seeded by (seed, i))
    same_init: bool = False  # every member starts from member 0's initial weights
    # per-member hidden layers and learning-rate multipliers, cycled over the members ("256-256": two layers of
    # 256); empty: every member is model.hidden at optim.lr
    hidden: tuple[str, ...] = ()
    lr_scales: tuple[float, ...] = ()

    def validate(self) -> None:
        if self.members < 1:
            raise ValueError("members must be >= 1")
        if any(s <= 0 for s in self.lr_scales):
            raise ValueError("lr_scales must be > 0")
        for spec in self.hidden:
            if not all(part.isdigit() and int(part) > 0 for part in spec.split("-")):
                raise ValueError(f"bad hidden spec {spec!r}: widths joined by '-', e.g. 256-256")
        if self.same_init and len(set(self.hidden)) > 1:
            raise ValueError("same_init needs every member to have the same architecture")


@dataclass
class EnsembleRunConfig(MLPRunConfig):
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)


def member_configs(cfg: EnsembleRunConfig) -> list[tuple[MLPConfig, float]]:
    """(MLP config, learning-rate multiplier) of each member."""
    e, out = cfg.ensemble, []
    for i in range(e.members):
        hidden = tuple(int(w) for w in e.hidden[i % len(e.hidden)].split("-")) if e.hidden else cfg.model.hidden
        scale = e.lr_scales[i % len(e.lr_scales)] if e.lr_scales else 1.0
        out.append((MLPConfig(hidden, cfg.model.input_dropout, cfg.model.hidden_dropout, cfg.model.max_norm), scale))
    return out


def build(cfg: EnsembleRunConfig, seed: int):
    specs = member_configs(cfg)
    members = [MLP(m, in_features=784 if cfg.data.dataset == "mnist" else 3072) for m, _ in specs]
    if cfg.ensemble.same_init:
        for net in members[1:]:
            net.load_state_dict(members[0].state_dict())
    module = EnsembleClassifier(
        members, cfg.optim, 10, seed=seed, bagging=cfg.ensemble.bagging, lr_scales=tuple(s for _, s in specs)
    )
    return module, IndexedImageDataModule(cfg.data, seed=seed, channels_last=False)


ARCHITECTURES = ("128", "256", "512", "256-256")  # quick: one and two hidden layers, 0.1M to 0.4M weights
LR_SCALES = (1.0, 0.5, 2.0)

VARIANTS = (
    Variant("init", "same data, different random initializations", {}),
    Variant(
        "bagging",
        "each member on its own bootstrap resample of the training set (n draws with replacement), "
        "and different initializations",
        {"ensemble.bagging": True},
    ),
    Variant(
        "bagging-same-init",
        "bootstrap resamples, every member starting from the same initial weights: bagging's diversity alone",
        {"ensemble.bagging": True, "ensemble.same_init": True},
    ),
    Variant(
        "architectures",
        f"same data, different inits, hidden layers cycling over {', '.join(ARCHITECTURES)} and learning "
        f"rates over {', '.join(f'{s:g}x' for s in LR_SCALES)} the base rate",
        {"ensemble.hidden": ARCHITECTURES, "ensemble.lr_scales": LR_SCALES},
    ),
)

QUICK = {
    "ensemble.members": 8,
    "model.hidden": (256,),
    "data.train_size": 5000,
    "data.val_size": 1000,
    "data.test_size": 0,
    "data.train_eval_size": 1000,
    "data.batch_size": 128,
    "data.eval_batch_size": 1000,
    "optim.lr": 0.05,
    "train.max_epochs": 15,
    "train.log_every_n_steps": 10,
}

PROFILES = (
    Profile(
        "smoke",
        "3 members of 784-32-10 on 256 images, 2 epochs: checks the plumbing only",
        seeds=1,
        overrides={
            "ensemble.members": 3,
            "model.hidden": (32,),
            **SMOKE_DATA,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=("init", "bagging", "architectures"),
    ),
    Profile(
        "quick",
        "8 members of 784-256-10 (architectures: 128, 256, 512 or 256-256 hidden units, lr x1, x0.5, x2) trained "
        "15 epochs (SGD 0.9, lr 0.05, cosine, batch 128, no weight decay) on a fixed 5,000-image MNIST subset; "
        "1,000 val images; the full 10,000-image test set",
        seeds=3,
        overrides=QUICK,
        cpu_jobs=2,
    ),
    Profile(
        "full",
        "10 members of 784-800-800-10 (architectures: 800-800, 1200-1200, 512, 1024-1024-1024, lr x1, x0.5, x2) "
        "trained 50 epochs on the 50,000 MNIST training images (10,000 held out), full test set; for a GPU",
        seeds=3,
        overrides={
            "ensemble.members": 10,
            "model.hidden": (800, 800),
            "train.max_epochs": 50,
            "data.eval_batch_size": 2000,
        },
    ),
)


# ----------------------------------------------------------------------------- claims
def _jensen(results: Results) -> Verdict:
    """Exact, so every run must show it: not one example, for any n, with a loss above the members' mean."""
    runs = [
        (variant, seed, metrics["jensen_violations"][seed], metrics["brier_violations"][seed], metrics)
        for variant, metrics in results.values.items()
        if "jensen_violations" in metrics
        for seed in metrics["jensen_violations"]
    ]
    if not runs:
        return Verdict("inconclusive", "no runs")
    nll = sum(r[2] for r in runs)
    brier = sum(r[3] for r in runs)
    checks = sum(r[4]["jensen_checks"][r[1]] for r in runs)
    gaps = [r[4]["member_nll"][r[1]] - r[4]["ensemble_nll"][r[1]] for r in runs]
    text = (
        f"{nll:.0f} NLL and {brier:.0f} Brier violations in {checks:.0f} per-example checks each (every test "
        f"example x every n = 1..N, {len(runs)} runs); mean member NLL minus ensemble NLL (all N members) "
        f"from {min(gaps):.4f} to {max(gaps):.4f}"
    )
    return Verdict("supported" if nll == 0 and brier == 0 else "contradicted", text)


def _ensemble_beats_members(variant: str):
    def check(results: Results) -> Verdict:
        seeds, d = stats.paired(results.get(variant, "member_error"), results.get(variant, "ensemble_error"))
        return stats.expect_positive(d, seeds, f"{variant}: mean member test error minus ensemble test error")

    return check


def _bagging_vs_init(results: Results) -> Verdict:
    seeds, d = stats.paired(results.get("init", "ensemble_error"), results.get("bagging", "ensemble_error"))
    return stats.expect_not_positive(d, seeds, "ensemble test error init minus bagging (positive: bagging helps)")


def _bagged_members_worse(results: Results) -> Verdict:
    seeds, d = stats.paired(results.get("bagging", "member_error"), results.get("init", "member_error"))
    return stats.expect_positive(d, seeds, "mean member test error bagging minus init")


CLAIMS = (
    Claim(
        "16",
        "Averaging never hurts under a convex loss: on every test example and for every ensemble size n, the "
        "NLL (and Brier score) of the averaged prediction is at most the members' mean",
        _jensen,
    ),
    Claim(
        "16",
        "The ensemble's test error is lower than its average member's (different initializations)",
        _ensemble_beats_members("init"),
    ),
    Claim("16-17", "... also with bagging", _ensemble_beats_members("bagging")),
    Claim(
        "16-17", "... also with different architectures and learning rates", _ensemble_beats_members("architectures")
    ),
    Claim(
        "17",
        "For deep nets bagging is not needed: it does not lower the ensemble's test error below that of "
        "init diversity alone",
        _bagging_vs_init,
    ),
    Claim(
        "17",
        "Each bagged member sees only ~63% of the distinct training examples, so it is individually worse",
        _bagged_members_worse,
    ),
)

METRICS = {
    "ensemble_error": "ensemble test error (%)",
    "member_error": "mean member test error (%)",
    "best_member_error": "best member test error (%)",
    "ensemble_nll": "ensemble NLL",
    "member_nll": "mean member NLL",
    "ensemble_brier": "ensemble Brier",
    "member_brier": "mean member Brier",
    "jensen_violations": "Jensen violations (NLL)",
    "brier_violations": "Jensen violations (Brier)",
    "train_error": "ensemble train error (%)",
    "wall_time": "train time (s)",
}


# ----------------------------------------------------------------------------- plot
def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Test error (left) and NLL (right) of the ensemble of the first n members (solid) and the mean of
    those members' own values (dashed), against n; mean over seeds."""

    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = dict(zip(exp.variant_names(profile), ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=False))
    for ax, key, scale, label in ((axes[0], "error", 100, "test error (%)"), (axes[1], "nll", 1, "test NLL")):
        for name, recs in by_variant.items():
            n = recs[0]["curve"]["n"]
            for which, ls in ((key, "-"), (f"member_{key}", "--")):
                y = [statistics.fmean(r["curve"][which][i] * scale for r in recs) for i in range(len(n))]
                text = f"{name}: ensemble" if ls == "-" else f"{name}: mean member"
                ax.plot(n, y, ls=ls, marker="o" if ls == "-" else None, ms=3, label=text, color=colors.get(name))
        ax.set(xlabel="ensemble size n (first n members)", ylabel=label, title=f"{label} vs ensemble size")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{exp.title} ({profile} profile, mean over seeds; dashed: mean of the same n members)")
    fig.tight_layout()
    save_figure(fig, path)


EXPERIMENT = Experiment(
    name="ensembles",
    title="Ensembles: averaging the predictions of several networks",
    slides="16-17",
    claim="Averaging the predictions of several models never hurts under a convex loss and usually lowers "
    "test error; members can differ by init, by bagging or by architecture, and for deep nets different "
    "inits suffice",
    config=EnsembleRunConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Ensemble vs its members, by source of diversity",
            tuple(v.name for v in VARIANTS),
            tuple(METRICS),
            "Ensemble: the average of the N members' predicted probabilities. Mean member: each member's own "
            "test error / NLL / Brier score, averaged over the N members. Jensen violations: test examples x "
            "ensemble sizes n = 1..N where the averaged prediction's loss exceeds the mean of the n members' "
            "losses by more than float64 rounding (1e-9 relative); it must be 0. All members of a run see the "
            "same minibatch order. For scale, on another data set and model (not comparable with these MNIST "
            "MLPs): WRN-28-10 on CIFAR-10, one model 4.0% test error (NLL 0.159), an ensemble of 4 3.4% (NLL "
            "0.114) (google/uncertainty-baselines).",
        ),
    ),
    plot=plot,
)
