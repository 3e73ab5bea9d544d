"""An ensemble of N classifiers trained together in one run, and what averaging their predictions buys.

Members are made different by their random initialization, by bagging (each trains on its own bootstrap
resample of the training set), or by their architecture and learning rate, and each sees the training set in
its own minibatch order (``IndexedImageDataModule``'s member orders; a config can share one order). Member i's
loss is its own (bootstrap-weighted) cross-entropy on its own batch, and the run minimizes the sum of the
members' losses, so each member's gradient is exactly the one it would get if trained alone.

Bagging without copying data: member i's bootstrap sample is a multinomial draw of n out of the n training
examples, i.e. a count c_ij for each example j (how many times the resample holds it). Weighting example j's
loss by c_ij gives member i the loss sum_j c_ij * CE_ij / n: the loss of its resampled training set.

The ensemble predicts the average of the members' probabilities. Cross-entropy and the squared error of the
probability vector (Brier score) are convex in the prediction, so by Jensen's inequality the ensemble's loss
on every single example is at most the mean of its members' losses. ``prefix_ensemble_scores`` measures both
sides for the ensembles of the first n = 1..N members and ``EnsembleClassifier`` counts violations on every
test example (there must be none).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from base.seeds import mix_seed
from lightning_modules.classifier import ImageClassifier
from lightning_modules.nets.members import Members
from lightning_modules.optim import OptimConfig, sgd_with_schedule

# float64 rounding of the two sides of Jensen's inequality is ~1e-16 relative; anything above this is real
JENSEN_TOLERANCE = 1e-9


# ----------------------------------------------------------------------------- pure functions (tested by hand)
def bootstrap_counts(n: int, seed: int, member: int) -> torch.Tensor:
    """How many times each of n examples appears in member ``member``'s bootstrap resample (n draws with
    replacement); reproducible from (seed, member). The counts sum to n; about 1/e of them are 0."""
    g = torch.Generator().manual_seed(mix_seed(seed, member, 3))  # stream 3: apart from shuffling (1), augment (2)
    return torch.bincount(torch.randint(n, (n,), generator=g), minlength=n)


def ensemble_log_probs(member_log_probs: torch.Tensor) -> torch.Tensor:
    """(N, B, C) log-probabilities of N members -> (B, C) log of their average probability."""
    return torch.logsumexp(member_log_probs, dim=0) - math.log(member_log_probs.shape[0])


def weighted_member_loss(member_logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Sum over members i of sum_j w_ij * CE(member i on example j) / B, for (N, B, C) logits, (B,) labels (every
    member on the same examples) or (N, B) (each member on its own), and (N, B) example weights (bootstrap counts;
    all ones without bagging)."""
    n_members, batch = member_logits.shape[:2]
    labels = y.repeat(n_members) if y.dim() == 1 else y.flatten()
    ce = F.cross_entropy(member_logits.flatten(0, 1), labels, reduction="none").view(n_members, batch)
    return (weights * ce).sum() / batch


def prefix_ensemble_scores(member_log_probs: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-example scores of the ensembles of the first n = 1..N members, each an (N, B) tensor (row n-1: the
    first n members), computed in float64 from (N, B, C) member log-probabilities and (B,) labels:

    ``nll``/``brier``: the loss of the averaged prediction; ``member_nll``/``member_brier``: the mean of the n
    members' own losses (Jensen: nll <= member_nll and brier <= member_brier, example by example);
    ``wrong``/``member_wrong``: 1 where the averaged prediction is wrong / the fraction of the n members that are.
    """
    log_p = member_log_probs.double().log_softmax(-1)  # renormalise in float64
    n_members, _, classes = log_p.shape
    count = torch.arange(1, n_members + 1, dtype=log_p.dtype, device=log_p.device).view(-1, 1)
    target = y.view(1, -1, 1).expand(n_members, -1, 1)
    p = log_p.exp()
    mean_p = p.cumsum(0) / count.unsqueeze(-1)  # (N, B, C): average of the first n members
    mean_log_p = torch.logcumsumexp(log_p, dim=0) - count.log().unsqueeze(-1)  # its log, without underflow
    onehot = F.one_hot(y, classes).to(p.dtype)
    member_nll = -log_p.gather(2, target).squeeze(2)
    member_brier = (p - onehot).pow(2).sum(-1)
    member_wrong = (p.argmax(-1) != y).to(p.dtype)
    return {
        "nll": -mean_log_p.gather(2, target).squeeze(2),
        "member_nll": member_nll.cumsum(0) / count,
        "brier": (mean_p - onehot).pow(2).sum(-1),
        "member_brier": member_brier.cumsum(0) / count,
        "wrong": (mean_p.argmax(-1) != y).to(p.dtype),
        "member_wrong": member_wrong.cumsum(0) / count,
    }


def disagreeing_pairs(predictions: torch.Tensor) -> torch.Tensor:
    """(N, B) predicted classes of N members -> (B,) how many of the N(N-1)/2 member pairs disagree on each
    example: all pairs minus the agreeing ones, sum over classes of k_c (k_c - 1) / 2 for k_c members on c."""
    n = predictions.shape[0]
    counts = F.one_hot(predictions, int(predictions.max()) + 1).sum(0).double()  # (B, C): members per class
    return n * (n - 1) / 2 - (counts * (counts - 1) / 2).sum(-1)


def jensen_violations(ensemble_loss: torch.Tensor, mean_member_loss: torch.Tensor) -> int:
    """How many entries have the ensemble's loss above the mean member loss by more than float rounding."""
    slack = JENSEN_TOLERANCE * (1 + mean_member_loss.abs())
    return int((ensemble_loss > mean_member_loss + slack).sum())


# ----------------------------------------------------------------------------- the module
class EnsembleClassifier(ImageClassifier):
    """N member networks trained at once, each on its own loss; the run's model is their average.

    ``bagging``: member i weights training example j by its bootstrap count c_ij, drawn from (seed, i).
    ``lr_scales``: member i's learning rate is optim.lr * lr_scales[i] (all 1: the same for every member).
    The history's train/val/test loss and error are the ensemble's (average of probabilities); the test
    pass also scores the ensembles of the first n = 1..N members, example by example (see ``extras``).
    """

    UNDEFINED_WHEN_DIVERGED = ImageClassifier.UNDEFINED_WHEN_DIVERGED + (
        "ensemble_error",
        "member_error",
        "best_member_error",
        "ensemble_nll",
        "member_nll",
        "ensemble_brier",
        "member_brier",
        "disagreement",
    )

    def __init__(
        self,
        members: list[nn.Module],
        optim: OptimConfig,
        num_classes: int,
        seed: int,
        bagging: bool = False,
        lr_scales: tuple[float, ...] = (),
    ):
        super().__init__(Members(members), optim, num_classes)
        self.seed, self.bagging = seed, bagging
        self.lr_scales = tuple(lr_scales) or (1.0,) * len(members)
        if len(self.lr_scales) != len(members):
            raise ValueError("one learning-rate scale per member")
        self.counts: torch.Tensor | None = None  # (N, n) bootstrap counts, built from the seed in setup()
        self.sums: dict[str, torch.Tensor] = {}  # per-n test sums over examples, and violation counts
        self.curve: dict[str, list[float]] = {}

    @property
    def n_members(self) -> int:
        return len(self.net)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.net]).float()  # (N, B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The ensemble's log-probabilities (cross_entropy of them is the ensemble's NLL)."""
        return ensemble_log_probs(self.member_logits(x).log_softmax(-1))

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.counts is None:
            n = len(self.trainer.datamodule.train[1])
            if self.bagging:
                counts = [bootstrap_counts(n, self.seed, i) for i in range(self.n_members)]
                self.counts = torch.stack(counts).float()
            else:
                self.counts = torch.ones(self.n_members, n)

    def _track(self, split: str, ensemble: torch.Tensor, y: torch.Tensor) -> None:
        self.metrics[f"{split}_loss"].update(F.nll_loss(ensemble.detach(), y), weight=len(y))
        self.metrics[f"{split}_acc"].update(ensemble.detach(), y)

    # -- training -------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y, index = batch
        own = index.dim() == 2  # each member its own minibatch order: (N, B, ...) images, (N, B) labels
        logits = torch.stack([net(xi) for net, xi in zip(self.net, x, strict=True)]).float() if own else None
        logits = self.member_logits(x) if logits is None else logits
        if self.counts.device != logits.device:
            self.counts = self.counts.to(logits.device)
        weights = self.counts.gather(1, index) if own else self.counts[:, index]
        loss = weighted_member_loss(logits, y, weights)
        if own:  # no example is seen by every member: the training history tracks the members on their own batches
            self._track("train", logits.log_softmax(-1).flatten(0, 1), y.flatten())
        else:
            self._track("train", ensemble_log_probs(logits.log_softmax(-1)), y)
        self.log("train/loss_step", loss, prog_bar=True, logger=False)
        if self.optim.l1:
            loss = loss + self.optim.l1 * sum(p.abs().sum() for p in self.net.parameters() if p.dim() > 1)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._track("val", self(x), y)

    def configure_optimizers(self):
        groups = [
            {"params": net.parameters(), "lr": self.optim.lr * s}
            for net, s in zip(self.net, self.lr_scales, strict=True)
        ]
        return sgd_with_schedule(groups, self.optim, self.trainer.estimated_stepping_batches)

    # -- testing: dataloader 0 = test set (scored member by member), 1 = clean training images ----
    def on_test_epoch_start(self) -> None:
        self.sums = {}

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x, y = batch
        log_probs = self.member_logits(x).log_softmax(-1)
        self._track("test" if dataloader_idx == 0 else "train_eval", ensemble_log_probs(log_probs), y)
        if dataloader_idx != 0:
            return
        scores = prefix_ensemble_scores(log_probs, y)
        batch_sums = {k: v.sum(1) for k, v in scores.items()}  # (N,) sums over this batch's examples
        batch_sums["nll_violations"] = torch.tensor(float(jensen_violations(scores["nll"], scores["member_nll"])))
        batch_sums["brier_violations"] = torch.tensor(float(jensen_violations(scores["brier"], scores["member_brier"])))
        batch_sums["examples"] = torch.tensor(float(len(y)))
        batch_sums["member_error_each"] = (log_probs.argmax(-1) != y).double().sum(1)  # (N,) member by member
        batch_sums["member_nll_each"] = -log_probs.double().gather(2, y.view(1, -1, 1).expand(len(log_probs), -1, 1))
        batch_sums["member_nll_each"] = batch_sums["member_nll_each"].squeeze(2).sum(1)
        batch_sums["disagreeing_pairs"] = disagreeing_pairs(log_probs.argmax(-1)).sum()
        for k, v in batch_sums.items():
            v = v.double().to(self.device)
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        sums = {k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self.sums.items()}  # across ranks
        examples = float(sums["examples"])
        per_n = ("error", "member_error", "nll", "member_nll", "brier", "member_brier")
        keys = ("wrong", "member_wrong", "nll", "member_nll", "brier", "member_brier")
        self.curve = {"n": list(range(1, self.n_members + 1))}
        self.curve.update({name: (sums[k] / examples).tolist() for name, k in zip(per_n, keys, strict=True)})
        self.curve["each_member_error"] = (sums["member_error_each"] / examples).tolist()
        self.curve["each_member_nll"] = (sums["member_nll_each"] / examples).tolist()
        self.final["nll_violations"] = float(sums["nll_violations"])
        self.final["brier_violations"] = float(sums["brier_violations"])
        self.final["jensen_checks"] = examples * self.n_members
        pairs = self.n_members * (self.n_members - 1) / 2
        self.final["disagreement"] = float(sums["disagreeing_pairs"]) / (examples * pairs) if pairs else 0.0

    # -- the run record -------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        c = self.curve
        each_error, each_nll = c["each_member_error"], c["each_member_nll"]
        return {
            **super().summary(),  # test_error / test_loss there are the full ensemble's, in float32
            "ensemble_error": c["error"][-1],
            "member_error": sum(each_error) / len(each_error),
            "best_member_error": min(each_error),
            "ensemble_nll": c["nll"][-1],
            "member_nll": sum(each_nll) / len(each_nll),
            "ensemble_brier": c["brier"][-1],
            "member_brier": c["member_brier"][-1],
            "jensen_violations": self.final["nll_violations"],
            "brier_violations": self.final["brier_violations"],
            "jensen_checks": self.final["jensen_checks"],
            "disagreement": self.final["disagreement"],
        }

    def extras(self) -> dict:
        """``curve``: for n = 1..N, the test error, NLL and Brier score of the ensemble of the first n
        members, and the means of those members' own values; plus each member's own error and NLL."""
        return {"curve": self.curve, "lr_scales": list(self.lr_scales)}
