"""Learning to Execute: the batches (exact layout), the two models (decoding equals teacher forcing), the
whole-answer check, the curricula and their level schedule, determinism and resume state, the claims, and a
smoke run end to end (the generator itself is tested in test_programs.py)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from datamodules.configs import ProgramDataConfig
from datamodules.execute import Curriculum, ProgramDataModule, collate
from datamodules.programs import END, GO, Example, decode, encode, encode_many
from engine.registry import get
from engine.spec import ReproError, Results
from lightning_modules.configs import ExecuteModelConfig
from lightning_modules.nets.program_nets import answer_text, build_execute_net, exact_answers, greedy_decode
from tests.conftest import repro, repro_here, train_whole_and_resumed


# ----------------------------------------------------------------------------- batches
def test_collate_lays_out_input_go_answer_and_labels_only_the_answer():
    batch = collate([Example("print(1+2)", "3."), Example("a=5", "-12.")])
    x0, x1 = encode("print(1+2)"), encode("a=5")
    assert batch["src_len"].tolist() == [10, 3] and batch["tgt_len"].tolist() == [2, 4]
    assert batch["src"][1].tolist() == x1 + [0] * 7  # right-padded with 0
    assert batch["seq"][0].tolist() == x0 + encode(GO) + encode("3.") + [0, 0]
    assert batch["seq"][1].tolist() == x1 + encode(GO) + encode("-12.") + [0] * 7
    # labels[t] is the character after seq[t] where that is an answer character: GO predicts the first
    labels = batch["labels"][1].tolist()
    assert labels == [-100] * 3 + encode("-12.") + [-100] * 7
    assert batch["labels"][0].tolist() == [-100] * 10 + encode("3.") + [-100] * 2
    assert batch["labels"].shape[1] == batch["seq"].shape[1] - 1


def test_encoding_a_batch_at_once_equals_encoding_each_text_and_names_a_stray_character():
    texts = ["a=12;print(a)", "", "for x in range(3):b+=4\nprint(b)", GO + END]
    ids, lengths = encode_many(texts)
    assert lengths.tolist() == [len(t) for t in texts] and ids.tolist() == sum((encode(t) for t in texts), [])
    with pytest.raises(ReproError, match="'é' is not in"):
        encode_many(["print(1)", "print(é)"])


def test_reversal_and_doubling_change_the_input_never_the_target():
    batch = collate([Example("ab=1", "7.")], reverse=True, double=True)
    assert batch["src"][0].tolist() == encode("1=ba1=ba")
    assert batch["tgt"][0].tolist() == encode("7.")


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("kind", ["lstm", "seq2seq"])
def test_reading_then_stepping_equals_teacher_forcing(kind):
    """read() gives the logits of the first answer character, step() the next ones: the same numbers as the
    teacher-forced forward pass, for programs of different lengths in one padded batch."""
    torch.manual_seed(0)
    net = build_execute_net(ExecuteModelConfig(kind=kind, hidden=24, layers=2)).eval()
    batch = collate([Example("print(12+345)", "357."), Example("b=4", "4."), Example("x", "-1234.")])
    logits, labels = net(batch)
    logits, state = logits.detach(), None
    answer = [logits[i][labels[i] != -100] for i in range(3)]  # [answer length, V] per example
    with torch.no_grad():
        first, state = net.read(batch)
        for i in range(3):
            torch.testing.assert_close(first[i], answer[i][0], atol=1e-5, rtol=1e-5)
        second, _ = net.step(batch["tgt"][:, 0], state)
        for i in range(3):
            torch.testing.assert_close(second[i], answer[i][1], atol=1e-5, rtol=1e-5)


def test_every_weight_starts_uniform_in_the_init_range():
    net = build_execute_net(ExecuteModelConfig(hidden=32, init_scale=0.08))
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert weights.abs().max() <= 0.08 and weights.abs().max() > 0.079  # uniform, biases included
    assert abs(float(weights.mean())) < 0.002


class Scripted(torch.nn.Module):
    """A fake network that writes a fixed answer per example whatever it reads (for greedy decoding)."""

    def __init__(self, answers: list[str], vocab: int = 64):
        super().__init__()
        self.answers, self.vocab = [encode(a) for a in answers], vocab

    def _logits(self, t):
        out = torch.zeros(len(self.answers), self.vocab)
        for i, a in enumerate(self.answers):
            out[i, a[min(t, len(a) - 1)]] = 1.0
        return out

    def read(self, batch):
        return self._logits(0), 1

    def step(self, chars, t):
        return self._logits(t), t + 1


def test_greedy_decoding_and_whole_answer_check():
    batch = collate([Example("a", "12."), Example("b", "12."), Example("c", "7."), Example("d", "-5.")])
    net = Scripted(["12.", "1.", "7.9", "-50."])  # right, stops early, right then junk, too long
    pred = greedy_decode(net, batch, batch["tgt"].shape[1])
    assert exact_answers(pred, batch["tgt"]).tolist() == [True, False, True, False]
    assert [answer_text(p) for p in pred] == ["12.", "1.", "7.", "-50"]


# ----------------------------------------------------------------------------- curricula
def _cfg(**kw) -> ProgramDataConfig:
    return ProgramDataConfig(**{"task": "program", "length": 3, "nesting": 2, **kw})


def test_each_curriculum_draws_the_levels_it_should():
    rng = random.Random(0)
    base, naive, mix, combined = (Curriculum(_cfg(curriculum=c)) for c in ("baseline", "naive", "mix", "combined"))
    assert {base.difficulty(rng) for _ in range(100)} == {(3, 2)}
    assert {naive.difficulty(rng) for _ in range(100)} == {(1, 1)}
    assert {mix.difficulty(rng) for _ in range(600)} == {(a, b) for a in (1, 2, 3) for b in (1, 2)}
    draws = [combined.difficulty(rng) for _ in range(5000)]
    at_level = sum(d == (1, 1) for d in draws) / len(draws)
    assert abs(at_level - (0.8 + 0.2 / 6)) < 0.02  # naive 4/5 of the time, plus mix's share of (1, 1)


def test_the_level_rises_length_first_then_nesting_then_the_lr_decays():
    c = Curriculum(_cfg(length=2, nesting=2, curriculum="naive"))
    levels = [c.level]
    for _ in range(3):
        assert c.update(val_acc=0.96, train_acc=0.5) == "harder"
        levels.append(c.level)
    assert levels == [(1, 1), (2, 1), (1, 2), (2, 2)]
    assert c.update(val_acc=0.99, train_acc=0.5) == "decay"  # at the target: lower the lr instead
    assert c.level == (2, 2)


def test_a_stall_in_training_accuracy_also_raises_the_level():
    c = Curriculum(_cfg(patience=3))
    assert [c.update(0.1, a) for a in (0.50, 0.60, 0.70)] == ["", "", ""]
    assert c.update(0.1, 0.65) == ""  # 0.65 is above 0.50, three evaluations back
    assert c.update(0.1, 0.55) == "harder"  # below 0.60, three evaluations back
    assert c.level == (2, 1) and c.train_accs == [0.55]  # the history restarts at the new level
    # a plateau is a stall too: a level memorized to 100% must not hold the curriculum forever
    assert [c.update(0.5, 1.0) for _ in range(4)] == ["", "", "", "harder"]
    assert c.level == (3, 1)


def test_the_original_stall_test_needs_a_lower_accuracy_patience_evaluations_back():
    """main.lua 285-298: a stall when the training accuracy is lower than the one recorded 5 evaluations back
    (a tie at 100% counts too); the record restarts at each change with the accuracy that made it."""
    lower, not_higher = (Curriculum(_cfg(stall_rule=r)) for r in ("lower", "not-higher"))
    accs = (0.50, 0.60, 0.60, 0.60, 0.60)
    assert [lower.update(0.1, a) for a in accs] == [""] * 5
    assert [not_higher.update(0.1, a) for a in accs] == [""] * 5
    assert lower.update(0.1, 0.50) == ""  # a tie with 5 back (0.50) is no stall ...
    assert not_higher.update(0.1, 0.50) == "harder"  # ... under the suite's earlier test it was
    assert lower.update(0.1, 0.59) == "harder" and lower.train_accs == [0.59]  # 0.60 five back is higher
    # after the change, the first test comes 5 evaluations later, against the accuracy that made the change
    assert [lower.update(0.1, a) for a in (0.1, 0.2, 0.3, 0.4)] == [""] * 4
    assert lower.update(0.1, 0.58) == "harder"  # 0.58 < 0.59, the first entry of the restarted record
    memorized = Curriculum(_cfg())
    assert [memorized.update(0.5, 1.0) for _ in range(6)] == [""] * 5 + ["harder"]  # a 100% plateau is a stall
    with pytest.raises(ValueError, match="stall_rule"):
        _cfg(stall_rule="never").validate()


def test_addition_has_one_nesting_level():
    c = Curriculum(_cfg(task="addition", length=2, nesting=3))
    assert c.target == (2, 1)
    assert [c.update(1.0, 0.0) for _ in range(2)] == ["harder", "decay"]


def test_curriculum_state_round_trips():
    a = Curriculum(_cfg())
    for acc in (0.2, 0.99, 0.3):
        a.update(acc, acc)
    b = Curriculum(_cfg())
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert (b.level, b.train_accs) == (a.level, a.train_accs)


# ----------------------------------------------------------------------------- data streams
def test_training_batches_are_fresh_per_epoch_and_deterministic():
    cfg = _cfg(batch_size=16, steps_per_epoch=3, curriculum="mix")

    def epoch(seed, e):
        dm = ProgramDataModule(cfg, seed=seed)
        dm.trainer = SimpleNamespace(current_epoch=e, global_rank=0, world_size=1)
        return [b["seq"] for b in dm.train_dataloader()]

    assert all(torch.equal(a, b) for a, b in zip(epoch(0, 1), epoch(0, 1), strict=True))
    assert not torch.equal(epoch(0, 1)[0], epoch(0, 2)[0])
    assert not torch.equal(epoch(0, 1)[0], epoch(1, 1)[0])


def test_test_programs_are_fixed_and_never_trained_on():
    cfg = _cfg(length=1, nesting=1, curriculum="baseline", batch_size=100, steps_per_epoch=10, test_size=300)
    dm = ProgramDataModule(cfg, seed=3)
    test = {e.input for e in dm.examples("test")}
    assert {e.input for e in ProgramDataModule(cfg, seed=9).examples("test")} == test  # same for every seed
    val = {e.input for e in dm.examples("val")}
    assert not test & val
    trained = {
        decode(row[:n].tolist())
        for batch in dm.train_dataloader()
        for row, n in zip(batch["src"], batch["src_len"], strict=True)
    }
    assert len(trained) > 50  # nesting-1, length-1 programs: a small space, sampled many times
    assert not trained & test and not trained & val


def test_resumed_training_matches_an_uninterrupted_run(tmp_path):
    """The checkpoint carries the curriculum's level, the decayed learning rate and the history; the
    programs of each epoch come from (seed, epoch) alone."""
    from experiments.learning_to_execute import ExecuteRunConfig, build

    def make():
        cfg = ExecuteRunConfig()
        cfg.data = _cfg(
            length=2,
            nesting=2,
            curriculum="combined",
            batch_size=8,
            steps_per_epoch=3,
            val_size=8,
            test_size=8,
            eval_batch_size=8,
            advance_accuracy=0.01,
        )
        cfg.model.hidden = 8
        cfg.optim.stop_lr = 0.35  # 0.5 -> 0.4 -> 0.32: the second decay ends training
        torch.manual_seed(0)
        return build(cfg, seed=0)

    whole, resumed = train_whole_and_resumed(make, stop=2, epochs=9, tmp_path=tmp_path)
    levels = [(r["level_length"], r["level_nesting"]) for r in whole.history]
    assert levels == [(1, 1), (2, 1), (1, 2), (2, 2), (2, 2)]  # the level rose after every evaluation
    assert [r["action"] for r in whole.history] == ["harder"] * 3 + ["decay"] * 2
    assert whole.history[-1]["lr"] == pytest.approx(0.5 * 0.8)  # logged before this epoch's decay
    # the learning-rate rule, not the 9-epoch cap, ended both runs
    assert whole.ended_by_lr_rule and resumed.ended_by_lr_rule and len(resumed.history) == 5
    assert whole.summary()["decays"] == 2 and whole.summary()["ended_by_lr_rule"] == 1
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in whole.history]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history] == strip
    assert resumed.curriculum.level == whole.curriculum.level == (2, 2)
    assert all(torch.equal(p, q) for p, q in zip(whole.parameters(), resumed.parameters(), strict=True))


# ----------------------------------------------------------------------------- claims
def _results(acc: dict[str, list[float]]) -> Results:
    return Results({name: {"test_acc": dict(enumerate(v))} for name, v in acc.items()})


def test_claims_pool_targets_and_seeds():
    exp = get("learning-to-execute")
    _, _, beats_baseline, beats_naive, beats_mix, naive_worse, exact_baseline, exact_naive = (
        c.check for c in exp.claims
    )
    acc = {}
    for t in ("program-1x2", "addition-3"):
        acc.update({f"{t}-baseline": [0.5, 0.6, 0.7], f"{t}-naive": [0.4, 0.5, 0.6]})
        acc.update({f"{t}-mix": [0.6, 0.7, 0.8], f"{t}-combined": [0.6, 0.71, 0.82]})
    r = _results(acc)
    assert beats_baseline(r).status == "supported" and "6 pairs" in beats_baseline(r).test
    assert beats_naive(r).status == "supported"
    assert beats_mix(r).status == "supported"  # +0.0, +1, +2 pts twice: the interval is above 0
    assert naive_worse(r).status == "supported"
    acc["addition-3-naive"] = [0.6, 0.7, 0.8]  # naive worse at one target only: still "sometimes"
    assert naive_worse(_results(acc)).status == "supported"
    acc["program-1x2-naive"] = [0.6, 0.7, 0.8]  # better at every target
    assert naive_worse(_results(acc)).status == "inconclusive"  # "sometimes": not shown, never contradicted
    assert beats_baseline(_results({})).status == "inconclusive"
    # whole answers are a second measure, read from their own metric
    exact = {name: {"test_exact": dict(enumerate(v))} for name, v in acc.items()}
    exact["addition-3-combined"]["test_exact"] = {0: 0.0, 1: 0.0, 2: 0.0}
    exact["program-1x2-combined"]["test_exact"] = {0: 0.0, 1: 0.0, 2: 0.0}
    both = Results({n: {**_results(acc).values[n], **exact[n]} for n in acc})
    assert beats_baseline(both).status == "supported"  # in characters, combined still beats baseline
    assert exact_baseline(both).status == "contradicted" and "whole answers" in exact_baseline(both).statistic


def test_executing_is_decided_against_a_net_that_cannot_read_the_programs():
    from experiments.learning_to_execute import BLIND, PLAIN

    executes = get("learning-to-execute").claims[0].check
    exact = {PLAIN: {"test_exact": {0: 0.99, 1: 0.98, 2: 0.995}}, BLIND: {"test_exact": {0: 0.01, 1: 0.0, 2: 0.02}}}
    assert executes(Results(exact)).status == "supported"
    # reading the programs no better than guessing from what answers look like: contradicted
    same = {PLAIN: {"test_exact": {0: 0.01, 1: 0.0, 2: 0.005}}, BLIND: {"test_exact": {0: 0.02, 1: 0.01, 2: 0.02}}}
    assert executes(Results(same)).status == "contradicted"
    # slide 38's scrambled programs are a table without a verdict: no claim reads the scrambled variant
    assert not any("scrambled" in c.statement for c in get("learning-to-execute").claims)


def test_slide_37_compares_the_encoder_decoder_with_one_lstm_in_whole_answers():
    from experiments.learning_to_execute import ONE_LSTM, PLAIN

    exp = get("learning-to-execute")
    (seq2seq,) = [c for c in exp.claims if c.slide == "37"]
    assert {PLAIN, ONE_LSTM} <= set(exp.profile("quick").variants)  # decided in the default table
    better = {PLAIN: {"test_exact": {0: 0.99, 1: 0.98, 2: 0.995}}, ONE_LSTM: {"test_exact": {0: 0.9, 1: 0.88, 2: 0.93}}}
    verdict = seq2seq.check(Results(better))
    assert verdict.status == "supported" and "encoder-decoder minus one LSTM" in verdict.statistic
    # the one LSTM better in every seed: contradicted; equal within noise: inconclusive
    worse = {PLAIN: better[ONE_LSTM], ONE_LSTM: better[PLAIN]}
    assert seq2seq.check(Results(worse)).status == "contradicted"
    noise = {PLAIN: {"test_exact": {0: 0.99, 1: 0.97, 2: 0.995}}, ONE_LSTM: {"test_exact": {0: 0.98, 1: 0.99, 2: 0.99}}}
    assert seq2seq.check(Results(noise)).status == "inconclusive"
    # character accuracy is not what it reads: a gap there alone decides nothing
    chars = {v: {"test_acc": {0: x, 1: x, 2: x}} for v, x in ((PLAIN, 0.99), (ONE_LSTM, 0.5))}
    assert not seq2seq.check(Results(chars)).has_runs


def test_a_blind_net_reads_one_fixed_character_whatever_the_program():
    from datamodules.execute import collate
    from datamodules.programs import BLIND_INPUT, Example, encode

    examples = [Example("print(12+34)", "46."), Example("print(5+7)", "12.")]
    blind, plain = collate(examples, blind=True), collate(examples)
    assert blind["src_len"].tolist() == [1, 1] and plain["src_len"].tolist() == [12, 10]
    assert blind["src"][:, 0].tolist() == [int(encode(BLIND_INPUT)[0])] * 2
    assert torch.equal(blind["tgt"], plain["tgt"])  # the answers to learn are the same


def test_claims_read_each_model_as_its_own_series():
    """The quick profile's encoder-decoder runs (<target>-<curriculum>-seq2seq) form a series of their own."""
    beats_baseline = get("learning-to-execute").claims[2].check
    acc = {f"addition-2-{c}-seq2seq": [0.9, 0.95, 0.97] for c in ("baseline", "naive", "mix")}
    acc["addition-2-combined-seq2seq"] = [0.92, 0.98, 1.0]
    acc["addition-2-combined"] = [0.1, 0.1, 0.1]  # one curriculum of the single-LSTM series: not a series
    verdict = beats_baseline(_results(acc))
    assert verdict.status == "supported" and verdict.test.endswith("3 pairs")
    assert "mean difference +2.67 pts" in verdict.statistic  # +2, +3, +3 pts


# ----------------------------------------------------------------------------- example predictions
def _record(seed: int, answers: list[str], inputs=("a=3;\nprint(a+4)", "print(12+34)", "print(5)")) -> dict:
    targets = ("7.", "46.", "5.")
    examples = [
        {"input": i, "target": t, "greedy": a, "right": a == t}
        for i, t, a in zip(inputs, targets, answers, strict=True)
    ]
    return {"seed": seed, "examples": examples}


def test_example_table_shows_each_curriculums_answers_to_the_same_programs():
    from experiments.learning_to_execute import EXPERIMENT

    example_table = EXPERIMENT.sections  # the figure module's table, handed the experiment's targets

    by_variant = {
        "program-1x2-baseline": [_record(1, ["7.", "4.", "5."]), _record(0, ["8.", "46.", "5."])],
        "program-1x2-naive": [_record(0, ["7.", "46.", "5."]), _record(1, ["7.", "46.", "5."])],
        "program-1x2-mix": [_record(0, ["7.", "46.", "5."])],
        "program-1x2-combined": [_record(0, ["7.", "46.", "6"])],
        "addition-3-baseline": [_record(0, ["7.", "46.", "5."])],  # one curriculum only: no table
    }
    heading, blank, *lines = example_table(by_variant, "quick", rows=2)
    assert (heading, blank) == ("## Example predictions (slide 39)", "")
    assert lines[0].startswith("**programs of length 1 (literals up to 10^1), nesting 2; one LSTM reads")
    assert "(quick profile, seed 0)" in lines[0]  # the one seed all four curricula share
    assert "of the first 3 test programs, 2 answered differently by the four (2 of them below" in lines[0]
    assert lines[2:] == [  # the two programs the curricula answer differently, in test order
        "| input | target | baseline | naive | mix | combined |",
        "|---|---|---|---|---|---|",
        "| `a=3;`<br>`print(a+4)` | `7.` | `8.` ✗ | `7.` ✓ | `7.` ✓ | `7.` ✓ |",
        "| `print(5)` | `5.` | `5.` ✓ | `5.` ✓ | `5.` ✓ | `6` ✗ |",
        "",
    ]
    by_variant["program-1x2-mix"] = [_record(0, ["", "46.", "5."])]
    rows = example_table(by_variant, "quick", rows=3)[6:9]  # all three, in test order
    assert [r.split(" | ")[0] for r in rows] == ["| `a=3;`<br>`print(a+4)`", "| `print(12+34)`", "| `print(5)`"]
    assert rows[0].split(" | ")[4] == "(nothing) ✗"  # mix wrote an empty answer
    by_variant["program-1x2-mix"] = [_record(0, ["7.", "46.", "5."], inputs=("print(1)", "print(2)", "print(3)"))]
    assert example_table(by_variant, "quick") == []  # records of other programs are not set side by side


def test_profiles_made_before_the_original_stall_rule_resolve_as_they_were_run():
    """The committed full (now full-8k) and gpu-short tables came from these configs."""
    exp = get("learning-to-execute")
    old_full = exp.resolve("addition-9-combined", "full-8k")
    assert (old_full.data.stall_rule, old_full.train.max_epochs, old_full.train.max_minutes) == ("not-higher", 80, 8.0)
    assert (old_full.data.steps_per_epoch, old_full.optim.lr, old_full.model.hidden) == (100, 0.5, 400)
    assert exp.variant_names("full-8k")[-1] == "program-6x3-combined-seq2seq" and exp.profile("full-8k").seeds == 1
    short = exp.resolve("program-4x2-naive", "gpu-short")
    assert (short.data.stall_rule, short.train.max_epochs, short.train.max_minutes) == ("not-higher", 200, 2.0)
    assert "long" not in [p.name for p in exp.profiles]  # superseded by full; its table was removed
    new = exp.resolve("addition-9-combined-reverse", "full")
    assert new.data.stall_rule == "lower" and new.data.reverse and not new.data.double
    assert exp.resolve("addition-2-naive-seq2seq", "quick").model.kind == "seq2seq"


# ----------------------------------------------------------------------------- end to end
def test_smoke_run_records_curves_examples_and_a_report(data_env, tmp_path):
    out = repro("run", "learning-to-execute", "--profile", "smoke", "--wandb", "off", "--jobs", "1", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = tmp_path / "runs" / "learning-to-execute" / "smoke"
    rec = json.loads((runs / "program-1x2-combined" / "seed0" / "record.json").read_text())
    m = rec["metrics"]
    assert 0 <= m["test_acc"] <= 1 and 0 <= m["test_exact"] <= 1 and m["steps"] == 12 and m["diverged"] == 0
    assert [row["epoch"] for row in rec["history"]] == [1, 2, 3]
    assert rec["provenance"]["stopped_by_time"] is False
    assert {"val_acc", "val_exact", "level_length", "lr", "action"} <= set(rec["history"][0])
    # the first test programs with greedy answers: as many as the first test batch holds, at most 20
    assert len(rec["examples"]) == 16 and all(e["target"].endswith(END) for e in rec["examples"])
    assert m["ended_by_lr_rule"] == 0 and m["decays"] < 28  # the smoke profile's 3-epoch cap ended it
    s2s = json.loads((runs / "program-1x2-combined-seq2seq" / "seed0" / "record.json").read_text())
    assert s2s["metrics"]["params_k"] > m["params_k"]  # separate encoder and decoder weights
    # every run answered the same test programs: the example table sets them side by side
    inputs = [e["input"] for e in rec["examples"]]
    for other in ("baseline", "naive", "mix", "combined-seq2seq"):
        r = json.loads((runs / f"program-1x2-{other}" / "seed0" / "record.json").read_text())
        assert [e["input"] for e in r["examples"]] == inputs
    md = (runs / "report" / "learning-to-execute-smoke.md").read_text()
    assert "combined curriculum beats" in md and "whole answers right" in md


def test_a_time_cap_stops_mid_epoch_then_evaluates_and_records(data_env, tmp_path):
    cap = ("--set", "train.max_minutes=0.0001", "--set", "train.max_epochs=50")  # 6 ms: after the first step
    out = repro(
        "run",
        "learning-to-execute",
        "--profile",
        "smoke",
        "--variant",
        "program-1x2-mix",
        *cap,
        "--wandb",
        "off",
        "--no-report",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "runs" / "learning-to-execute" / "smoke" / "program-1x2-mix" / "seed0"
    rec = json.loads((run / "record.json").read_text())
    assert rec["provenance"]["stopped_by_time"] is True and rec["config"]["train"]["max_minutes"] == 0.0001
    # stopped inside the first epoch of 4 steps, whose end-of-epoch evaluation still ran
    assert 1 <= rec["metrics"]["steps"] < 4 and [row["epoch"] for row in rec["history"]] == [1]
    assert 0 <= rec["metrics"]["test_acc"] <= 1


def test_a_diverged_run_is_noticed_stopped_and_recorded_without_test_scores(data_env, tmp_path):
    # lr = 1e30: the first update makes weights overflow, the next step's gradient norm is NaN. A training step
    # never waits for the GPU, so the divergence shows at the first look: the end of epoch 1 (4 steps).
    out = repro(
        "run",
        "learning-to-execute",
        "--profile",
        "smoke",
        "--variant",
        "program-1x2-mix",
        "--set",
        "optim.lr=1e30",
        "--wandb",
        "off",
        "--no-report",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "runs" / "learning-to-execute" / "smoke" / "program-1x2-mix" / "seed0"
    m = json.loads((run / "record.json").read_text())["metrics"]
    assert m["diverged"] == 1 and m["steps"] == 4 and m["epochs"] == 0
    assert m["test_acc"] is None and m["test_exact"] is None  # not a number: null in strict JSON


def test_two_ddp_ranks_count_each_step_once_in_the_epoch_statistics(data_env, tmp_path):
    # each rank's sums are added up across ranks: a clip threshold every gradient exceeds makes every step
    # clipped, so the fraction is exactly 1 (2 if the two ranks' steps were counted against one rank's)
    out = repro(
        "run",
        "learning-to-execute",
        "--profile",
        "smoke",
        "--variant",
        "program-1x2-mix",
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--set",
        "optim.clip_norm=1e-9",
        "--wandb",
        "off",
        "--no-report",
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    run = tmp_path / "runs" / "learning-to-execute" / "smoke" / "program-1x2-mix" / "seed0"
    rec = json.loads((run / "record.json").read_text())
    assert rec["provenance"]["devices"] == 2 and len(rec["history"]) == 3
    assert all(row["clipped_fraction"] == 1.0 and 0 <= row["train_acc"] <= 1 for row in rec["history"])
    # steps are counted per rank: 4 per epoch, 3 epochs
    assert rec["metrics"]["steps"] == 12


@pytest.mark.parametrize(
    "args",
    [
        ("--set", "train.max_minutes=-1"),
        ("--set", "data.length=0"),
        ("--set", "data.nesting=0"),
        ("--seed", "-1"),
        ("--set", "data.curriculum=x"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(data_env, args, capsys):
    code, _, err = repro_here(capsys, "run", "learning-to-execute", "--profile", "smoke", "--wandb", "off", *args)
    assert code == 2 and err.count("\n") == 1 and err.startswith("repro: error:"), err
    assert not list(Path(data_env["REPRO_RUNS_DIR"]).glob("learning-to-execute/smoke/*/seed*/record.json"))
