"""The bottleneck experiment: the rank of W1 B (exact small case and random nets), the merged net computes
the same function, parameter counts by hand, the exact claims, and a smoke run end to end."""

from __future__ import annotations

import json

import pytest
import torch

from engine.registry import get
from engine.spec import Results
from experiments.bottleneck import mlp_params
from experiments.common import build_mlp
from lightning_modules.nets.mlp import (
    MLP,
    MLPConfig,
    first_layer_matrix,
    first_layer_rank,
    merge_bottleneck,
    merge_difference,
)
from tests.conftest import repro


def mlp(hidden=(64, 32), bottleneck=0, in_features=784, seed=0, **kw):
    torch.manual_seed(seed)
    return MLP(MLPConfig(hidden=hidden, bottleneck=bottleneck, **kw), in_features=in_features)


def test_first_layer_matrix_by_hand():
    net = mlp(hidden=(3,), bottleneck=1, in_features=4)
    with torch.no_grad():
        net.body[2].weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # B: 1 x 4 (body = flatten, dropout, B, ...)
        net.hidden_layers[0].weight.copy_(torch.tensor([[1.0], [2.0], [3.0]]))  # W1: 3 x 1
    expected = torch.tensor([[1, 2, 3, 4], [2, 4, 6, 8], [3, 6, 9, 12]], dtype=torch.float64)
    assert torch.equal(first_layer_matrix(net), expected)
    assert first_layer_rank(net) == 1


@pytest.mark.parametrize("k", [1, 5, 32])
def test_bottlenecked_first_layer_has_rank_at_most_k_and_a_plain_one_full_rank(k):
    for seed in range(3):
        assert first_layer_rank(mlp(bottleneck=k, seed=seed)) == k  # <= k always; = k for random weights
        assert torch.linalg.matrix_rank(mlp(seed=seed).hidden_layers[0].weight) == 64  # min(64, 784)
    assert first_layer_rank(mlp(bottleneck=100)) == 64  # a bottleneck wider than the layer limits nothing


@pytest.mark.parametrize("k", [0, 3, 16])
def test_merged_net_computes_the_same_function(k):
    net = mlp(hidden=(20, 10), bottleneck=k, in_features=30, input_dropout=0.2, hidden_dropout=0.5)
    net.eval()
    merged = merge_bottleneck(net)
    assert merged.cfg.bottleneck == 0 and not merged.training
    # the merged net is an ordinary 30-20-10-10 MLP
    assert sum(p.numel() for p in merged.parameters()) == mlp_params((20, 10), inputs=30)
    x = torch.randn(64, 30, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(merged(x), net.double()(x), rtol=1e-12, atol=1e-12)
    assert merge_difference(mlp(hidden=(20, 10), bottleneck=k, in_features=30)) < 1e-12


def test_parameter_counts_by_hand():
    assert mlp_params((256, 256)) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10 == 269_322
    assert mlp_params((256, 256), 32) == 784 * 32 + 32 * 256 + 256 + 256 * 256 + 256 + 2570 == 101_898
    exp = get("bottleneck")
    for name, k in (("none", 0), ("k-8", 8), ("k-32", 32), ("k-128", 128)):
        cfg = exp.resolve(name, "quick")
        assert cfg.model.bottleneck == k and cfg.model.hidden == (256, 256)
        assert sum(p.numel() for p in build_mlp(cfg).parameters()) == mlp_params((256, 256), k)


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_exact_identities_are_checks_that_hold_or_fail():
    fewer, rank, merge = get("bottleneck").checks
    ok = results(
        none={"params_k": [269.322] * 3, "first_layer_rank": [256] * 3, "merge_diff": [0.0] * 3},
        **{"k-8": {"params_k": [76.938] * 3, "first_layer_rank": [8, 8, 8], "merge_diff": [1e-16, 0.0, 2e-16]}},
    )
    assert fewer.check(ok).holds and rank.check(ok).holds and merge.check(ok).holds
    assert rank.check(ok).largest_error == 0 and merge.check(ok).largest_error == 2e-16
    bad = results(
        none={"params_k": [269.322], "first_layer_rank": [256]},
        **{"k-8": {"params_k": [300.0], "first_layer_rank": [9], "merge_diff": [1e-3]}},
    )
    assert not fewer.check(bad).holds and not rank.check(bad).holds and not merge.check(bad).holds
    assert rank.check(bad).largest_error == 1  # rank 9 for k = 8
    assert rank.check(results()).holds is None


def test_a_bottleneck_might_help_is_not_shown_never_contradicted_when_every_one_hurts():
    might = get("bottleneck").claims[0]
    base = [0.10, 0.11, 0.12]
    one_helps = results(
        none={"test_error": base},
        **{"k-8": {"test_error": [e + 0.05 for e in base]}, "k-32": {"test_error": [e - 0.02 for e in base]}},
    )
    assert might.check(one_helps).status == "supported"
    all_hurt = results(
        none={"test_error": base},
        **{"k-8": {"test_error": [e + 0.05 for e in base]}, "k-32": {"test_error": [e + 0.02 for e in base]}},
    )
    verdict = might.check(all_hurt)  # "might" is not refuted by the settings tried: it is not shown
    assert verdict.status == "inconclusive" and verdict.statistic.startswith("not shown") and "2 parts" in verdict.test


def test_smoke_run_records_rank_and_merge_check(data_env):
    result = repro("run", "bottleneck", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant, k, rank in (("none", 0, 32), ("k-8", 8, 8)):
        rec = json.loads(open(f"{runs}/bottleneck/smoke/{variant}/seed0/record.json").read())
        m = rec["metrics"]
        assert m["first_layer_rank"] == rank and m["merge_diff"] < 1e-12
        assert m["params_k"] * 1000 == pytest.approx(mlp_params((32, 32), k)) == rec["provenance"]["params"]
    md = open(f"{runs}/bottleneck/smoke/report/bottleneck-smoke.md").read()  # a preview: smoke is never citable
    assert "rank of W1 B" in md and "**holds**" in md and "bottleneck-smoke.png" in md
