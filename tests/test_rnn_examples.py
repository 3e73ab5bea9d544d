"""The hand-set RNNs of slides 29-30 (exact), training from a random init, the claims, and a smoke run."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from datamodules.sequences import TinyRNNConfig, TinySequenceDataModule, make_batch
from engine.registry import get
from engine.spec import Results
from lightning_modules.nets.tiny_rnn import TinyRNN
from lightning_modules.tiny_rnns import TinyRNNModule, accuracy, hand_set, hand_table
from tests.conftest import repro


def sequence(*steps) -> torch.Tensor:
    """One sequence, (1, time, inputs), float64: each step a number or a tuple of numbers."""
    return torch.tensor([[list(s) if isinstance(s, tuple) else [s] for s in steps]], dtype=torch.float64)


def test_summing_rnn_gives_the_slides_numbers_exactly():
    h, z = hand_set("summing")(sequence(2, -0.5, 1, 1))
    assert torch.equal(z[0], torch.tensor([2, 1.5, 2.5, 3.5], dtype=torch.float64))
    assert torch.equal(h, z)  # output weight 1, linear output
    table = hand_table("summing")
    assert table["exact"] and table["outputs"] == [2.0, 1.5, 2.5, 3.5]
    # the check can fail: a self-weight a hair below 1 forgets a little of the past
    _, z = TinyRNN(1 - 2**-20, [1.0], 1.0)(sequence(2, -0.5, 1, 1))
    assert not torch.equal(z[0], torch.tensor([2, 1.5, 2.5, 3.5], dtype=torch.float64))


def test_comparing_rnn_on_hand_made_sequences():
    table = hand_table("comparing")  # totals 2, 1.5, 2.5, 3.5 against 1, 2, 1, 4
    assert table["exact"] and table["hidden"] == [1.0, -0.5, 1.5, -0.5]
    assert [y > 0.5 for y in table["outputs"]] == [True, False, True, False]
    assert table["outputs"] == pytest.approx([1 / (1 + math.exp(-5 * h)) for h in table["hidden"]], rel=1e-15)
    # input 2 ahead, then input 1 ahead, then input 1 still ahead by a quarter
    h, z = hand_set("comparing", output_weight=5.0)(sequence((0, 1), (3, 0), (0.25, 2)))
    assert h[0].tolist() == [-1.0, 2.0, 0.25]
    assert torch.sigmoid(z[0]).tolist() == pytest.approx([1 / (1 + math.e**5), 1 / (1 + math.e**-10), 0.77729986])
    # on random sequences its decisions are right at every step, whatever the (positive) output weight
    x, target = make_batch("comparing", 200, 50, torch.Generator().manual_seed(0))
    for weight in (0.1, 5.0, 100.0):
        assert accuracy(hand_set("comparing", weight)(x)[1], target) == 1.0
    # and a net with the input weights swapped gets every step wrong
    assert accuracy(TinyRNN(1.0, [-1.0, 1.0], 5.0)(x)[1], target) == 0.0


def test_training_stream_is_keyed_by_seed_and_epoch():
    cfg = TinyRNNConfig(task="comparing", steps_per_epoch=3, batch_size=4, n_test=10)
    a, b, other = (TinySequenceDataModule(cfg, seed=s) for s in (1, 1, 2))
    first = [x for x, _ in a.train_dataloader()]
    assert len(first) == 3 and all(torch.equal(x, y) for x, (y, _) in zip(first, b.train_dataloader(), strict=True))
    assert not torch.equal(first[0], next(iter(other.train_dataloader()))[0])
    assert torch.equal(a.test[0], b.test[0]) and not torch.equal(a.test[0], other.test[0])
    assert not torch.equal(first[0], a.test[0][:4])  # the test set is not a training batch


def fit(task: str, seed: int, epochs: int, **cfg) -> dict[str, float]:
    L.seed_everything(seed, verbose=False)
    config = TinyRNNConfig(task=task, **cfg)
    module, data = TinyRNNModule(config), TinySequenceDataModule(config, seed=seed)
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    return module.record_metrics() | {"history": module.history}


def test_training_recovers_the_summing_weights():
    m = fit("summing", seed=1, epochs=3, steps_per_epoch=100, lr=0.05, n_test=200, long_seq_len=50)
    start = m["history"][0]
    assert start["w_self"] < -0.5 and start["w_in1"] * start["w_out"] < 0.5  # it starts far from the solution
    assert m["w_self_error_e3"] < 1 and m["gain_error_e3"] < 1  # within 0.001 of the hand-set weights
    assert m["test_loss"] < 1e-3 and m["hand_exact"] == 1.0 and m["hand_test_loss"] < 1e-20
    assert [r["step"] for r in m["history"]] == [0, 100, 200, 300]


def test_divergence_is_recorded_not_raised():
    """|w_self| near 3 over 1,000 steps overflows float64: the run stops in its first epoch and says so."""
    m = fit("summing", seed=0, epochs=2, steps_per_epoch=20, init_scale=3.0, seq_len=1000, n_test=20, long_seq_len=20)
    assert m["diverged"] == 1.0 and not math.isfinite(m["train_loss"])
    assert len(m["history"]) == 2  # the init row, then epoch 1, where it stopped
    assert m["w_self"] == m["history"][0]["w_self"]  # no update was applied
    # the test sequences (20 steps) do not overflow, but a diverged run's test scores are no result: NaN
    assert math.isnan(m["test_loss"]) and math.isnan(m["log10_test_loss_long"]) and m["hand_test_loss"] < 1e-20


def results(**per_variant) -> Results:
    return Results({v: {m: dict(enumerate(vals)) for m, vals in ms.items()} for v, ms in per_variant.items()})


def test_claims_decide_from_per_seed_metrics():
    exp = get("rnn-examples")
    summing_exact, comparing_exact = (c.check for c in exp.checks)
    summing_recovered, accurate, comparing_recovered = (c.check for c in exp.claims)
    assert summing_exact(results(summing={"hand_exact": [1.0, 1.0, 1.0]})).holds
    assert not summing_exact(results(summing={"hand_exact": [1.0, 0.0, 1.0]})).holds
    assert summing_exact(results()).holds is None
    exact = {"hand_exact": [1.0] * 3, "hand_test_accuracy": [1.0] * 3}
    outcome = comparing_exact(results(comparing={**exact, "hand_test_accuracy_long": [1, 1, 0.999]}))
    assert not outcome.holds and outcome.largest_error == pytest.approx(0.001)
    # errors in thousandths: tolerance 0.01 for summing
    good = {"w_self_error_e3": [1.0, 2.0, 0.5], "gain_error_e3": [0.5, 3.0, 1.0]}
    assert summing_recovered(results(summing=good)).status == "supported"
    bad = {"w_self_error_e3": [300.0, 320.0, 310.0], "gain_error_e3": [0.5, 3.0, 1.0]}
    assert summing_recovered(results(summing=bad)).status == "contradicted"
    diverged = {"w_self_error_e3": [1.0, math.nan, 1.0], "gain_error_e3": [1.0, math.nan, 1.0], "hand_exact": [1.0] * 3}
    assert "within 0.01 in 2 of 3 seeds" in summing_recovered(results(summing=diverged)).statistic
    assert accurate(results(comparing={"test_accuracy": [0.99, 0.995, 0.98]})).status == "supported"
    assert accurate(results(comparing={"test_accuracy": [0.7, 0.8, 0.75]})).status == "contradicted"
    wrong_sign = {"w_self_error_e3": [1.0, 1.0, 1.0], "ratio_error_e3": [math.inf] * 3}
    assert comparing_recovered(results(comparing=wrong_sign)).status == "contradicted"


def test_smoke_run_records_hand_tables_and_writes_the_report(data_env):
    result = repro("run", "rnn-examples", "--profile", "smoke", "--wandb", "off", env=data_env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = data_env["REPRO_RUNS_DIR"]
    for variant in ("summing", "comparing"):
        rec = json.loads(open(f"{runs}/rnn-examples/smoke/{variant}/seed0/record.json").read())
        m = rec["metrics"]
        assert m["hand_exact"] == 1.0 and rec["hand_table"]["exact"]
        assert [r["step"] for r in rec["history"]] == [0, 20, 40]
        assert [r["step"] for r in rec["trace"]] == [0, 10, 20, 30, 40]
        assert rec["trace"][-1]["w_self"] == m["w_self"] and rec["trace"][0] == {
            "step": 0,
            **{k: v for k, v in rec["history"][0].items() if k.startswith("w_")},
        }
        assert rec["provenance"]["params"] == (3 if variant == "summing" else 4)
    summing = json.loads(open(f"{runs}/rnn-examples/smoke/summing/seed0/record.json").read())
    assert [summing["metrics"][f"hand_y{t}"] for t in range(1, 5)] == [2.0, 1.5, 2.5, 3.5]
    comparing = json.loads(open(f"{runs}/rnn-examples/smoke/comparing/seed0/record.json").read())
    assert comparing["metrics"]["hand_test_accuracy"] == comparing["metrics"]["hand_test_accuracy_long"] == 1.0
    md = open(f"{runs}/rnn-examples/smoke/report/rnn-examples-smoke.md").read()
    assert "hand-set summing RNN" in md and "w_in2 / w_in1" in md and "rnn-examples-smoke.png" in md
    assert md.count("**holds**") == 2  # the two exact identities hold in every run, even in a smoke run
