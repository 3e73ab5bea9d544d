"""The ResNet ablation: gradient probes (exact cases), its claims, and a smoke run end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from engine.registry import get
from engine.spec import Results
from lightning_modules.nets.resnet_cifar import ResNetCifar, ResNetConfig
from lightning_modules.probes import block_gradient_norms, log10_spread
from tests.conftest import repro


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def net(depth=20, width=4, seed=1, **kw):
    torch.manual_seed(seed)
    return ResNetCifar(ResNetConfig(depth=depth, width=width, **kw))


def test_probe_matches_gradients_taken_by_hand_and_changes_nothing():
    m, (x, y) = net(depth=8, residual=False), batch()
    m.eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    got = block_gradient_norms(m, x, y)
    # the same quantities with retain_grad and .backward(), on a copy in training mode
    ref = net(depth=8, residual=False).train()
    ref.load_state_dict(before)
    logits, acts = ref.forward_with_activations(x)
    for a in acts:
        a.retain_grad()
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert got["activation"] == pytest.approx([float(a.grad.norm()) for a in acts], rel=1e-5)
    by_hand = [math.sqrt(sum(float(p.grad.norm()) ** 2 for p in b.parameters())) for b in ref.blocks]
    assert got["weight"] == pytest.approx(by_hand, rel=1e-5)
    assert len(got["activation"]) == 4 and len(got["weight"]) == len(got["branch"]) == 3  # stem + 3 blocks
    # running statistics, parameters, .grad and the train/eval flag are as they were
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert all(p.grad is None for p in m.parameters()) and not m.training


def test_zero_residual_branches_pass_gradients_through_unchanged():
    """With F(x) = 0 each block is relu(x + 0) = x on post-ReLU inputs, and its Jacobian masks the gradient
    with the pattern of x > 0, which the gradient coming from above already has: inside a stage, every
    block output's gradient is the same tensor, so the norms are exactly equal. The branch sizes are 0."""
    m, (x, y) = net(depth=20, zero_init_residual=True), batch()
    got = block_gradient_norms(m, x, y)
    a = got["activation"]  # stem, then 3 blocks per stage
    assert a[0] == a[1] == a[2] == a[3] and a[4] == a[5] == a[6] and a[7] == a[8]
    assert got["branch"] == [0.0] * 9
    # without shortcuts, zeroed branches let nothing through: the first block outputs 0, at distance 1
    plain = block_gradient_norms(net(depth=20, zero_init_residual=True, residual=False), x, y)
    assert plain["branch"] == [1.0] + [0.0] * 8  # then 0 in, 0 out


def test_deep_plain_stack_spreads_gradients_over_more_orders_of_magnitude_than_a_resnet():
    x, y = batch(32)
    plain = block_gradient_norms(net(depth=56, width=8, residual=False), x, y)["activation"]
    residual = block_gradient_norms(net(depth=56, width=8, residual=True), x, y)["activation"]
    assert log10_spread(plain) > log10_spread(residual) + 2  # measured 4.2 vs 1.5 orders of magnitude
    assert plain[0] > 100 * plain[-1]  # the plain stack's gradient explodes towards the input


def test_log10_spread():
    assert log10_spread([1.0, 10.0, 1000.0]) == pytest.approx(3.0)
    assert log10_spread([2.0, 2.0]) == 0.0


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_decide_from_paired_seeds():
    exp = get("resnet-ablation")
    degradation, (identity,) = exp.claims[0], exp.checks
    r = results(**{"plain-20": {"train_error": [0.10, 0.12, 0.11]}, "plain-56": {"train_error": [0.15, 0.16, 0.18]}})
    assert degradation.check(r).status == "supported"
    two = results(**{"plain-20": {"train_error": [0.10, 0.12]}, "plain-56": {"train_error": [0.15, 0.16]}})
    assert degradation.check(two).status == "inconclusive"  # two seeds decide nothing, however clear
    r = results(**{"plain-20": {"train_error": [0.15, 0.16, 0.18]}, "plain-56": {"train_error": [0.10, 0.12, 0.11]}})
    assert degradation.check(r).status == "contradicted"
    ok = results(**{"residual-56-zero": {"branch_init": [0.0, 0.0]}, "residual-56": {"branch_init": [1.1, 1.0]}})
    assert identity.check(ok).holds
    bad = results(**{"residual-56-zero": {"branch_init": [0.0, 1e-7]}, "residual-56": {"branch_init": [1.1, 1.0]}})
    assert not identity.check(bad).holds and identity.check(bad).largest_error == 1e-7
    assert identity.check(results()).holds is None
    at_20 = results(**{"residual-20-zero": {"branch_init": [0.0, 0.0]}, "residual-20": {"branch_init": [0.9, 1.0]}})
    assert identity.check(at_20).holds


def test_variants_share_parameters_and_match_the_papers_counts():
    exp = get("resnet-ablation")
    counts = {}
    for v in exp.variants:
        cfg = exp.resolve(v.name, "full")
        counts[v.name] = sum(p.numel() for p in ResNetCifar(cfg.model).parameters())
    assert counts["plain-20"] == counts["residual-20"] == 269_722
    assert round(counts["plain-56"] / 1e6, 2) == round(counts["residual-56-zero"] / 1e6, 2) == 0.85
    assert round(counts["residual-110"] / 1e6, 1) == 1.7


def test_smoke_run_records_probes_and_writes_the_report(data_env):
    result = repro("run", "resnet-ablation", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant in ("plain-20", "residual-20"):
        rec = json.loads(open(f"{runs}/resnet-ablation/smoke/{variant}/seed0/record.json").read())
        probes = rec["probes"]
        assert [p["epoch"] for p in probes] == [0, 1, 2]  # before the first step, then after each epoch
        assert all(len(p["activation"]) == 10 and len(p["weight"]) == 9 for p in probes)
        m = rec["metrics"]
        assert m["grad_spread_init"] == pytest.approx(log10_spread(probes[0]["activation"]))
        assert m["branch_init"] > 0 and m["params_m"] == pytest.approx(rec["provenance"]["params"] / 1e6)
    md = open(f"{data_env['REPRO_RUNS_DIR']}/resnet-ablation/smoke/report/resnet-ablation-smoke.md").read()
    assert "Degradation" in md and "params (M)" in md and "resnet-ablation-smoke.png" in md
