"""Dropout: weight scaling vs mask averaging (exact in a linear net), max-norm projection, the
adaptive-weight-decay identity by enumerating every mask, the MC evaluation, claims, a smoke run."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from engine.registry import get
from engine.spec import Results
from lightning_modules.dropout_eval import (
    all_masks,
    backprop_rule_gap,
    dropout_loss_closed_form,
    expected_dropout_loss,
    identity_gap,
    lecture_form,
    mc_error_counts,
    scaled_weights,
)
from lightning_modules.nets.mlp import MLP, MLPConfig
from tests.conftest import repro


# ----------------------------------------------------------------------------- weight scaling = mask average (linear)
def test_eval_mode_of_a_linear_dropout_net_is_exactly_the_average_over_all_masks():
    """No nonlinearity: the output is linear in the mask, so averaging over every mask (weighted by its
    probability) gives the output at the mean mask, which inverted dropout's 1/keep scaling makes all-ones:
    PyTorch's evaluation mode is exactly the weight-scaling rule, and exactly the ensemble average."""
    torch.manual_seed(0)
    d, keep = 5, 0.7
    net = nn.Sequential(nn.Dropout(1 - keep), nn.Linear(d, 3)).double()
    x = torch.randn(4, d, dtype=torch.float64)
    masks = all_masks(d)
    prob = (keep**masks * (1 - keep) ** (1 - masks)).prod(dim=1)
    assert float(prob.sum()) == pytest.approx(1.0, abs=1e-15)
    linear = net[1]
    per_mask = torch.stack([linear(x * m / keep) for m in masks])  # what a training-mode pass computes
    average = (prob.view(-1, 1, 1) * per_mask).sum(dim=0)
    net.eval()
    torch.testing.assert_close(average, net(x), rtol=0, atol=1e-12)
    # and a training-mode pass is one of those thinned nets: every input is 0 or x / keep
    net.train()
    dropped = net[0](x)
    assert torch.all((dropped == 0) | torch.isclose(dropped, x / keep))


def test_with_a_relu_the_mask_average_differs_from_weight_scaling():
    """The identity above needs linearity: through a ReLU, E[relu(.)] != relu(E[.]) in general."""
    torch.manual_seed(1)
    d = 4
    first, second = nn.Linear(d, 6).double(), nn.Linear(6, 2).double()
    x = torch.randn(3, d, dtype=torch.float64)
    masks = all_masks(d)  # keep 1/2: every mask equally likely
    average = torch.stack([second(torch.relu(first(x * m * 2))) for m in masks]).mean(dim=0)
    scaled = second(torch.relu(first(x)))
    assert (average - scaled).abs().max() > 1e-3


# ----------------------------------------------------------------------------- max-norm
def test_max_norm_scales_long_rows_to_exactly_c_and_leaves_the_others():
    net = MLP(MLPConfig(hidden=(3, 2), max_norm=2.0), in_features=4, num_classes=2)
    first, second = net.hidden_layers
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[3.0, 4.0, 0, 0], [1.0, 1.0, 1.0, 1.0], [0, 0, 0, 2.0]]))  # norms 5, 2, 2
        second.weight.copy_(torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, 10.0]]))  # norms 1, 10
        out_before = net.out.weight.clone()
        bias_before = first.bias.clone()
    net.after_step()
    torch.testing.assert_close(first.weight[0], torch.tensor([1.2, 1.6, 0, 0]))  # 5 -> 2, same direction
    torch.testing.assert_close(first.weight[1:], torch.tensor([[1.0, 1.0, 1.0, 1.0], [0, 0, 0, 2.0]]))  # at c: kept
    torch.testing.assert_close(second.weight, torch.tensor([[0.6, 0.8, 0.0], [0.0, 0.0, 2.0]]))
    assert torch.equal(net.out.weight, out_before) and torch.equal(first.bias, bias_before)  # output layer, biases
    assert torch.allclose(first.weight.norm(dim=1), torch.tensor([2.0, 2.0, 2.0]))


def test_max_norm_off_changes_nothing():
    net = MLP(MLPConfig(hidden=(3,)), in_features=4, num_classes=2)
    with torch.no_grad():
        net.hidden_layers[0].weight.mul_(100)
    before = net.hidden_layers[0].weight.clone()
    net.after_step()
    assert torch.equal(net.hidden_layers[0].weight, before)


# ----------------------------------------------------------------------------- adaptive weight decay
def regression(n=5, d=4, seed=0, centred=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 1.5  # not centred unless asked
    if centred:
        x = x - x.mean(dim=0)
    return x, torch.randn(n, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)


def test_expected_loss_by_hand_for_one_input_and_one_point():
    """d = 1, N = 1, x = 2, t = 1, w = 3, un-scaled mask m ~ Bernoulli(1/2): J = 1/2 (1 - 6m)^2, so
    E J = 1/2 (1/2 * 1 + 1/2 * 25) = 6.5. Closed form: w~ = 1.5, 1/2 (1 - 3)^2 + 1/2 * 1 * 4 * 2.25 = 2 + 4.5."""
    x, t, w = torch.tensor([[2.0]], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), torch.tensor([3.0])
    w = w.double()
    assert float(expected_dropout_loss(x, t, w, 0.5, inverted=False)) == 6.5
    assert float(dropout_loss_closed_form(x, t, w, 0.5, inverted=False)) == 6.5
    # inverted: y = 2 m w x in {0, 12}: E J = 1/2 (1/2 * 1 + 1/2 * 121) = 30.5; w~ = w = 3: 1/2 * 25 + 1/2 * 36
    assert float(expected_dropout_loss(x, t, w, 0.5, inverted=True)) == 30.5
    assert float(dropout_loss_closed_form(x, t, w, 0.5, inverted=True)) == 30.5


@pytest.mark.parametrize("inverted", [False, True])
@pytest.mark.parametrize("keep", [0.5, 0.8, 0.3])
def test_enumerated_expectation_equals_the_closed_form(keep, inverted):
    x, t, w = regression(n=5, d=4, centred=False)
    exact = expected_dropout_loss(x, t, w, keep, inverted)
    torch.testing.assert_close(exact, dropout_loss_closed_form(x, t, w, keep, inverted), rtol=1e-13, atol=0)


@pytest.mark.parametrize("inverted", [False, True])
def test_lecture_form_with_variances_holds_for_centred_inputs_at_rate_one_half(inverted):
    x, t, w = regression(n=6, d=4, centred=True)
    exact = expected_dropout_loss(x, t, w, 0.5, inverted)
    torch.testing.assert_close(exact, lecture_form(x, t, scaled_weights(w, 0.5, inverted)), rtol=1e-13, atol=0)
    # the penalty is 1/2 sum_j Var[x_j] w~_j^2: a weight on a high-variance input costs more (adaptive)
    data = 0.5 * ((x @ scaled_weights(w, 0.5, inverted) - t) ** 2).mean()
    assert float(exact - data) > 0


def test_with_uncentred_inputs_the_variance_form_is_not_the_expectation():
    """The general coefficient is the second moment E_n[x_j^2]; Var[x_j] only equals it for centred inputs."""
    x, t, w = regression(n=6, d=4, centred=False)
    exact = expected_dropout_loss(x, t, w, 0.5, inverted=True)
    assert abs(float(exact - lecture_form(x, t, w))) > 1e-3


def test_identity_gap_is_rounding_only():
    gaps = [identity_gap(seed) for seed in range(3)]
    assert max(gaps) < 1e-12


# ----------------------------------------------------------------------------- the MC evaluation
def test_backprop_through_dropout_is_backprop_through_the_thinned_nets(monkeypatch):
    gaps = [backprop_rule_gap(seed) for seed in range(3)]
    assert all(g < 1e-12 for g in gaps)  # rounding only
    real = torch.nn.functional.dropout

    def leaky(x, p=0.5, training=True, inplace=False):
        """Dropped outputs are 0, but backprop still reaches the dropped units: the rule slide 18 excludes."""
        out = real(x, p, training, inplace)
        return out + (x - x.detach()) * (out == 0)

    monkeypatch.setattr(torch.nn.functional, "dropout", leaky)
    assert all(backprop_rule_gap(seed) > 1e-3 for seed in range(3))
    # a "dropout" that drops nothing leaves the rule untested: no pass
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p=0.5, training=True, inplace=False: x / (1 - p))
    assert backprop_rule_gap(0) == float("inf")


def test_mc_error_counts_on_a_tiny_net():
    torch.manual_seed(0)
    net = MLP(MLPConfig(hidden=(16,), input_dropout=0.2, hidden_dropout=0.5), in_features=6, num_classes=3)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    net.train()  # the evaluation must not depend on, nor change, the net's mode
    torch.manual_seed(7)
    ws, mc = mc_error_counts(net, x, y, samples=30)
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    assert ws == int((net(x).argmax(1) != y).sum())
    # the same masks by hand: the global stream seeded the same way, cumulative mean of the softmax outputs
    torch.manual_seed(7)
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.train()
    with torch.no_grad():
        probs = torch.stack([torch.softmax(net(x), dim=1) for _ in range(30)])
    by_hand = [int((probs[:k].mean(dim=0).argmax(1) != y).sum()) for k in range(1, 31)]
    assert mc.tolist() == by_hand


def test_without_dropout_every_mask_is_the_weight_scaled_net():
    torch.manual_seed(0)
    net = MLP(MLPConfig(hidden=(8,)), in_features=5, num_classes=3)
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    ws, mc = mc_error_counts(net, x, y, samples=5)
    assert mc.tolist() == [ws] * 5


# ----------------------------------------------------------------------------- claims
def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_decide_from_paired_seeds():
    exp = get("dropout")
    helps, beats_l2, adds_to_l2, averaging, meets = exp.claims
    backprop, identity = exp.checks
    r = results(none={"test_error": [0.030, 0.031, 0.029]}, dropout={"test_error": [0.025, 0.027, 0.024]})
    assert helps.check(r).status == "supported"
    r = results(none={"test_error": [0.025, 0.027, 0.024]}, dropout={"test_error": [0.030, 0.031, 0.029]})
    assert helps.check(r).status == "contradicted"
    # "better than weight decay" is dropout alone against L2 alone; dropout+L2 against L2 is a claim of its own
    r = results(l2={"test_error": [0.030, 0.031, 0.029]}, dropout={"test_error": [0.025, 0.027, 0.024]})
    assert beats_l2.check(r).status == "supported" and adds_to_l2.check(r).status == "inconclusive"
    r = results(l2={"test_error": [0.030, 0.031, 0.029]}, **{"dropout+l2": {"test_error": [0.025, 0.027, 0.024]}})
    assert adds_to_l2.check(r).status == "supported" and beats_l2.check(r).status == "inconclusive"
    r = results(dropout={"mc_k1_error": [0.05, 0.06, 0.055], "mc_k100_error": [0.03, 0.031, 0.029]})
    assert averaging.check(r).status == "supported"
    close = {"mc_k100_error": [0.030, 0.031, 0.029], "weight_scaling_error": [0.0305, 0.0305, 0.0295]}
    assert meets.check(results(dropout=close)).status == "supported"
    far = {"mc_k100_error": [0.040, 0.041, 0.039], "weight_scaling_error": [0.030, 0.030, 0.030]}
    assert meets.check(results(dropout=far)).status == "contradicted"
    noisy = {"mc_k100_error": [0.030, 0.040, 0.025], "weight_scaling_error": [0.030, 0.030, 0.030]}
    assert meets.check(results(dropout=noisy)).status == "inconclusive"
    assert identity.check(results(none={"wd_identity_gap": [0.0, 1e-16]})).holds
    assert not identity.check(results(none={"wd_identity_gap": [0.0, 1e-6]})).holds
    assert backprop.check(results(none={"backprop_rule_gap": [7e-15, 0.0]})).holds
    assert not backprop.check(results(none={"backprop_rule_gap": [7e-15, 0.3]})).holds


def test_max_norm_counts_how_often_it_binds():
    from lightning_modules import measures
    from lightning_modules.nets.mlp import MLPConfig

    net = MLP(MLPConfig(hidden=(3,), max_norm=1.0), in_features=2, num_classes=2)
    with torch.no_grad():
        net.hidden_layers[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.6, 0.8]]))  # norms 5, 0.5, 1
    net.after_step()  # one unit of three is longer than c = 1
    assert torch.allclose(net.hidden_layers[0].weight.norm(dim=1), torch.tensor([1.0, 0.5, 1.0]))
    net.after_step()  # now none is
    assert measures.max_norm_binding(net) == {"max_norm_steps_pct": 50.0, "max_norm_units_pct": 100 / 6}
    assert "max_norm_counters" in net.state_dict()  # the counts survive a resume


def test_full_profile_is_table_9s_net():
    from experiments.dropout import MAX_NORM_C

    exp = get("dropout")
    cfg = exp.resolve("dropout+max-norm", "full")
    assert cfg.model.hidden == (1024, 1024, 2048) and cfg.model.max_norm == MAX_NORM_C  # sized to bind (quick)
    assert (cfg.model.input_dropout, cfg.model.hidden_dropout) == (0.2, 0.5)
    assert cfg.mc.samples == 100 and cfg.mc.images == 0 and cfg.data.train_size == 0
    params = sum(p.numel() for p in MLP(cfg.model).parameters())
    assert params == 785 * 1024 + 1025 * 1024 + 1025 * 2048 + 2049 * 10
    assert exp.resolve("none", "full").model.input_dropout == 0.0


# ----------------------------------------------------------------------------- end to end
def test_smoke_run_records_the_mc_curve_and_writes_the_report(data_env):
    result = repro("run", "dropout", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    rec = json.loads(open(f"{runs}/dropout/smoke/dropout/seed0/record.json").read())
    mc, m = rec["mc"], rec["metrics"]
    assert mc["k"] == list(range(1, 11)) and len(mc["error"]) == 10 and mc["images"] == 128
    assert m["weight_scaling_error"] == mc["weight_scaling_error"] and m["mc_k10_error"] == mc["error"][-1]
    assert m["mc_minus_ws_error"] == pytest.approx(mc["error"][-1] - mc["weight_scaling_error"])
    assert m["wd_identity_gap"] < 1e-12 and m["wd_expected_loss"] == pytest.approx(m["wd_closed_form"], rel=1e-12)
    assert m["backprop_rule_gap"] == backprop_rule_gap(0) < 1e-12  # seeded by the run
    plain = json.loads(open(f"{runs}/dropout/smoke/none/seed0/record.json").read())
    assert "mc" not in plain and "mc_k1_error" not in plain["metrics"]  # no dropout: nothing to average
    md = open(f"{data_env['REPRO_RUNS_DIR']}/dropout/smoke/report/dropout-smoke.md").read()
    assert "Table 9" in md and "weight scaling" in md and "dropout-smoke.png" in md
