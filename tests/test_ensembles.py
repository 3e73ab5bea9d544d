"""Ensembles: Jensen's inequality per example (exact small cases), bootstrap weights, the weighted member loss,
the indexed training batches, the claims, and a smoke run end to end."""

from __future__ import annotations

import json
import math
import statistics
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from datamodules.images import ImageDataConfig, IndexedImageDataModule
from engine.registry import get
from engine.spec import Results
from experiments.ensembles import build, member_configs
from lightning_modules.ensemble import (
    bootstrap_counts,
    disagreeing_pairs,
    ensemble_log_probs,
    jensen_violations,
    prefix_ensemble_scores,
    weighted_member_loss,
)
from tests.conftest import repro


def logs(*members):
    """Members' probability vectors (one list of examples each) -> (N, B, C) log-probabilities."""
    return torch.tensor(members, dtype=torch.float64).log()


def test_jensen_on_hand_made_probability_vectors():
    # two members, two examples, two classes; labels 0 and 1
    lp = logs([[0.9, 0.1], [0.6, 0.4]], [[0.5, 0.5], [0.2, 0.8]])
    s = prefix_ensemble_scores(lp, torch.tensor([0, 1]))
    # n = 1: the ensemble is member 1 itself
    assert s["nll"][0].tolist() == pytest.approx([-math.log(0.9), -math.log(0.4)])
    assert s["member_nll"][0].tolist() == pytest.approx([-math.log(0.9), -math.log(0.4)])
    assert s["brier"][0].tolist() == pytest.approx([0.01 + 0.01, 0.36 + 0.36])
    # n = 2: averages (0.7, 0.3) and (0.4, 0.6)
    assert s["nll"][1].tolist() == pytest.approx([-math.log(0.7), -math.log(0.6)])
    assert s["member_nll"][1].tolist() == pytest.approx(
        [-(math.log(0.9) + math.log(0.5)) / 2, -(math.log(0.4) + math.log(0.8)) / 2]
    )
    assert s["brier"][1].tolist() == pytest.approx([0.09 + 0.09, 0.16 + 0.16])
    assert s["member_brier"][1].tolist() == pytest.approx([(0.02 + 0.50) / 2, (0.72 + 0.08) / 2])
    # example 2: member 1 is wrong (0.6 on class 0), member 2 right, the average (0.4, 0.6) right
    assert s["wrong"].tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert s["member_wrong"].tolist() == [[0.0, 1.0], [0.0, 0.5]]
    # Jensen holds on each example, strictly where the members disagree
    assert bool((s["nll"][1] < s["member_nll"][1]).all()) and bool((s["brier"][1] < s["member_brier"][1]).all())
    assert jensen_violations(s["nll"], s["member_nll"]) == 0 and jensen_violations(s["brier"], s["member_brier"]) == 0


def test_violation_counter_catches_a_loss_above_the_mean_and_ignores_rounding():
    mean = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert jensen_violations(mean, mean) == 0
    assert jensen_violations(mean * (1 + 1e-13), mean) == 0  # float rounding
    assert jensen_violations(torch.tensor([1.0, 2.001, 3.5], dtype=torch.float64), mean) == 2


def test_jensen_holds_on_every_example_of_random_confident_members():
    g = torch.Generator().manual_seed(0)
    logits = 8 * torch.randn(7, 500, 10, generator=g)  # confident and often contradicting each other
    y = torch.randint(0, 10, (500,), generator=g)
    s = prefix_ensemble_scores(logits.log_softmax(-1), y)
    assert jensen_violations(s["nll"], s["member_nll"]) == 0
    assert jensen_violations(s["brier"], s["member_brier"]) == 0
    assert float((s["member_nll"] - s["nll"])[1:].min()) > 0  # random members always disagree: strict
    assert torch.allclose(s["nll"][0], s["member_nll"][0])  # n = 1: equality


def test_ensemble_of_identical_members_is_the_member():
    member = torch.randn(1, 5, 10).log_softmax(-1)
    assert torch.allclose(ensemble_log_probs(member.expand(4, -1, -1)), member[0], atol=1e-6)
    s = prefix_ensemble_scores(member.expand(4, -1, -1), torch.arange(5))
    assert torch.allclose(s["nll"], s["member_nll"]) and torch.allclose(s["brier"], s["member_brier"])
    # through the experiment's builder: same_init gives N copies, whose average predicts as one of them
    exp = get("ensembles")
    cfg = exp.resolve("bagging-same-init", "smoke")
    torch.manual_seed(0)
    module, _ = build(cfg, seed=0)
    x = torch.randn(6, 1, 28, 28)
    nets = list(module.net)
    assert all(torch.equal(p, q) for n in nets[1:] for p, q in zip(n.parameters(), nets[0].parameters(), strict=True))
    assert torch.allclose(module(x), nets[0](x).log_softmax(-1), atol=1e-6)
    # and without it the members start apart
    module, _ = build(exp.resolve("init", "smoke"), seed=0)
    assert not torch.equal(module.net[0].out.weight, module.net[1].out.weight)


def test_bootstrap_counts_sum_to_n_and_replay_per_seed_and_member():
    n = 10_000
    c = bootstrap_counts(n, seed=3, member=1)
    assert c.shape == (n,) and int(c.sum()) == n and int(c.min()) >= 0
    assert torch.equal(c, bootstrap_counts(n, seed=3, member=1))
    assert not torch.equal(c, bootstrap_counts(n, seed=3, member=2))
    assert not torch.equal(c, bootstrap_counts(n, seed=4, member=1))
    assert float((c == 0).float().mean()) == pytest.approx(math.exp(-1), abs=0.02)  # (1 - 1/n)^n left out


def test_weighted_member_loss_by_hand():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [3.0, 0.0], [0.0, 2.0]]])
    y = torch.tensor([0, 1, 0])
    w = torch.tensor([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])

    def ce(a, b, label):  # -log softmax([a, b])[label]
        return math.log(math.exp(a) + math.exp(b)) - (a, b)[label]

    member1 = (2 * ce(2, 0, 0) + 0 * ce(0, 1, 1) + 1 * ce(1, 1, 0)) / 3
    member2 = (ce(0, 0, 0) + ce(3, 0, 1) + ce(0, 2, 0)) / 3
    assert float(weighted_member_loss(logits, y, w)) == pytest.approx(member1 + member2)
    # on a whole training set the weighted loss is the mean loss over the explicitly resampled set
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(1, 50, 10, generator=g), torch.randint(0, 10, (50,), generator=g)
    counts = bootstrap_counts(50, seed=0, member=0)
    resampled = torch.repeat_interleave(torch.arange(50), counts)
    expected = F.cross_entropy(logits[0, resampled], y[resampled])
    assert float(weighted_member_loss(logits, y, counts.float().view(1, -1))) == pytest.approx(float(expected))


def test_training_batches_carry_their_positions(tiny_data_dir, session_cache, monkeypatch):
    monkeypatch.setenv("REPRO_DATA_DIR", str(tiny_data_dir))
    monkeypatch.setenv("REPRO_CACHE_DIR", str(session_cache))
    dm = IndexedImageDataModule(
        ImageDataConfig(dataset="mnist", val_size=100, train_size=200, train_eval_size=200, batch_size=64), seed=0
    )
    dm.setup()
    dm.trainer = SimpleNamespace(training=True, global_rank=0, world_size=1, current_epoch=0)
    seen = []
    for batch in dm.train_dataloader():
        x, y, i = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(y, dm.train[1][i]) and torch.equal(x, dm.transform(dm.train[0][i], train=False))
        seen.append(i)
    assert len(torch.cat(seen).unique()) == 192  # 3 full batches of distinct examples, remainder dropped
    dm.trainer.training = False  # evaluation batches stay (x, y)
    x, y = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert torch.equal(y, dm.val[1][: len(y)])


def test_architectures_variant_cycles_widths_and_learning_rates():
    cfg = get("ensembles").resolve("architectures", "quick")
    specs = member_configs(cfg)
    assert [m.hidden for m, _ in specs[:5]] == [(128,), (256,), (512,), (256, 256), (128,)]
    assert [s for _, s in specs[:4]] == [1.0, 0.5, 2.0, 1.0]
    module, _ = build(cfg, seed=0)
    module.trainer = SimpleNamespace(estimated_stepping_batches=100)
    module._trainer = module.trainer
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups[:3]] == pytest.approx([cfg.optim.lr * s for s in (1.0, 0.5, 2.0)])


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_jensen_is_a_check_and_the_claims_are_paired_by_seed():
    exp = get("ensembles")
    jensen, brier = exp.checks
    ok = results(init={"jensen_violations": [0.0] * 3, "brier_violations": [0.0] * 3})
    assert jensen.check(ok).holds and brier.check(ok).holds
    bad = results(init={"jensen_violations": [0.0, 1.0, 0.0], "brier_violations": [0.0] * 3})
    assert not jensen.check(bad).holds and jensen.check(bad).largest_error == 1 and brier.check(bad).holds
    assert jensen.check(results()).holds is None
    init_helps = exp.claims[0]
    r = results(init={"member_error": [0.05, 0.06, 0.055], "ensemble_error": [0.04, 0.045, 0.043]})
    assert init_helps.check(r).status == "supported"
    # slide 17: different inits *might not* give enough diversity: other sources make members disagree more
    might = next(c for c in exp.claims if "might not" in c.statement)
    init = {"disagreement": [0.02, 0.021, 0.022]}
    more = results(init=init, bagging={"disagreement": [0.04, 0.041, 0.043]})
    assert might.check(more).status == "supported"
    less = results(
        init=init, bagging={"disagreement": [0.01, 0.011, 0.012]}, architectures={"disagreement": [0.015, 0.014, 0.016]}
    )
    assert might.check(less).status == "inconclusive" and might.check(less).statistic.startswith("not shown")


def test_disagreeing_pairs_by_hand():
    # 3 members on 4 examples: all agree; one differs (2 of 3 pairs disagree); all differ; two pairs of classes
    predictions = torch.tensor([[0, 1, 0, 2], [0, 1, 1, 2], [0, 2, 2, 2]])
    assert disagreeing_pairs(predictions).tolist() == [0.0, 2.0, 3.0, 0.0]


def test_smoke_run_checks_jensen_and_records_the_curves(data_env):
    result = repro("run", "ensembles", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant in ("init", "bagging", "architectures"):
        rec = json.loads(open(f"{runs}/ensembles/smoke/{variant}/seed0/record.json").read())
        m, curve = rec["metrics"], rec["curve"]
        assert m["jensen_violations"] == 0 and m["brier_violations"] == 0
        assert m["jensen_checks"] == 3 * 256  # 3 ensemble sizes x 256 test images
        assert curve["n"] == [1, 2, 3] and all(len(v) == 3 for v in curve.values())
        assert all(e <= mm + 1e-12 for e, mm in zip(curve["nll"], curve["member_nll"], strict=True))
        assert m["ensemble_error"] == curve["error"][-1] and m["ensemble_nll"] == curve["nll"][-1]
        assert m["member_error"] == pytest.approx(statistics.fmean(curve["each_member_error"]))
        assert curve["error"][0] == curve["member_error"][0] == curve["each_member_error"][0]  # n = 1
        assert m["test_error"] == pytest.approx(m["ensemble_error"], abs=1 / 256 + 1e-9)  # float32 vs float64 argmax
        assert m["member_nll"] == pytest.approx(curve["member_nll"][-1])
        assert 0 <= m["disagreement"] <= 1
    md = open(f"{runs}/ensembles/smoke/report/ensembles-smoke.md").read()
    assert "Averaging never hurts" in md and "Jensen violations (NLL)" in md and "ensembles-smoke.png" in md


# ----------------------------------------------------------------------------- each member its own order
def member_data(members: int, n: int = 12, seed: int = 5) -> IndexedImageDataModule:
    dm = IndexedImageDataModule(ImageDataConfig(dataset="mnist"), seed=seed, member_orders=members)
    x = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()  # image j is all j
    dm.train = (x, torch.arange(n) % 10)
    dm.train_index = torch.arange(n)
    dm.mean, dm.std = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1) / 255  # transform gives back j
    dm.trainer = SimpleNamespace(training=True)
    return dm


def test_each_member_sees_its_own_permutation_each_epoch_and_reruns_see_the_same():
    dm = member_data(3)
    p0, p1 = dm.member_permutations(0).clone(), dm.member_permutations(1).clone()
    assert p0.shape == (3, 12) and all(sorted(row.tolist()) == list(range(12)) for row in (*p0, *p1))
    assert len({tuple(r.tolist()) for r in p0}) == 3 and not torch.equal(p0, p1)  # apart by member and by epoch
    assert torch.equal(member_data(3).member_permutations(0), p0)  # from (seed, epoch, member) alone
    assert not torch.equal(member_data(3, seed=6).member_permutations(0), p0)


def test_a_member_batch_holds_its_own_images_labels_and_positions():
    dm = member_data(3)
    positions = torch.tensor([4, 0, 7])  # the loader's batch: its images are ignored, its positions mapped
    x, y, index = dm.on_after_batch_transfer((dm.train[0][positions], positions), 0)
    assert x.shape == (3, 3, 1, 2, 2) and y.shape == index.shape == (3, 3)
    assert torch.equal(index, dm.member_permutations(0)[:, positions])
    assert torch.equal(x[:, :, 0, 0, 0].round().long(), index) and torch.equal(y, index % 10)
    # without member orders the batch is the loader's, as before
    shared = member_data(0)
    xs, ys, i = shared.on_after_batch_transfer((shared.train[0][positions], positions), 0)
    assert xs.shape == (3, 1, 2, 2) and torch.equal(i, positions) and torch.equal(ys, positions % 10)


def test_the_member_loss_takes_each_members_own_labels():
    logits = torch.randn(2, 3, 4)
    y = torch.tensor([[0, 1, 2], [3, 3, 0]])
    w = torch.ones(2, 3)
    expected = sum(F.cross_entropy(logits[i], y[i], reduction="sum") for i in range(2)) / 3
    assert weighted_member_loss(logits, y, w).item() == pytest.approx(expected.item(), rel=1e-6)
