"""The character-level language model: stream chunking and carried state (exact), the baselines, clipping,
sampling, the long-range measures (line positions aligned with the targets, exact), the claims, and a smoke
run plus `repro sample` through the CLI on a tiny generated text."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from datamodules.text import (
    RandomWindows,
    StreamChunks,
    TextDataConfig,
    TextDataModule,
    decode,
    encode,
    split_text,
    stream_matrices,
    window_starts,
)
from engine.callbacks import LastCheckpoint
from engine.cli import main
from engine.registry import get
from engine.spec import ReproError, Results, config_to_dict
from experiments.char_lm import sample
from lightning_modules.char_lm import (
    LONG_RANGE_METRICS,
    BigramLM,
    CharLanguageModel,
    CharModelConfig,
    LMOptimConfig,
    SampleConfig,
    bits_per_char,
    build_char_net,
    detach_state,
    generate,
    line_position_buckets,
    line_positions,
    reported_net_weights,
)
from lightning_modules.configs import LINE_POSITION_METRICS
from lightning_modules.nets.char_nets import ContextMLP, RecurrentLM
from tests.conftest import repro, tiny_text


@pytest.fixture
def text_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "text_data"
    (root / "tinyshakespeare").mkdir(parents=True)
    (root / "tinyshakespeare" / "input.txt").write_text(tiny_text())
    monkeypatch.setenv("REPRO_DATA_DIR", str(root))
    return root


# ----------------------------------------------------------------------------- data: split, streams, chunks
def test_split_is_nanogpts_first_90_last_10_with_the_whole_texts_vocabulary():
    vocab, train, val = split_text("abcdefghiZ", 0.1)
    assert (train, val) == ("abcdefghi", "Z")
    assert vocab == "Zabcdefghi"  # sorted, and Z only occurs in the validation text
    assert split_text("hello world!", 0.25)[1:] == ("hello wor", "ld!")


def test_streams_are_contiguous_and_targets_are_inputs_shifted_by_one_across_chunks():
    tokens = torch.arange(103)  # token i is the number i, so positions can be read off the values
    x, y = stream_matrices(tokens, 4)
    assert x.shape == (4, 25)  # S = (103 - 1) // 4
    chunks = list(StreamChunks(tokens, streams=4, seq_len=5))
    assert len(chunks) == 5 and [reset for _, _, reset in chunks] == [True, False, False, False, False]
    for b in range(4):
        xs = torch.cat([cx[b] for cx, _, _ in chunks])
        ys = torch.cat([cy[b] for _, cy, _ in chunks])
        assert torch.equal(xs, torch.arange(25 * b, 25 * b + 25))  # stream b: one contiguous slice
        assert torch.equal(ys, xs + 1)  # next characters, across chunk boundaries too
    for (_, y0, _), (x1, _, _) in zip(chunks[:-1], chunks[1:], strict=True):
        assert torch.equal(y0[:, -1], x1[:, 0])  # the last target of a chunk is the next chunk's first input


def test_short_epochs_walk_on_through_the_streams_and_wrap_with_a_reset():
    tokens = torch.arange(103)
    epoch = {"e": 0}
    loader = StreamChunks(tokens, streams=4, seq_len=5, per_epoch=3, epoch_fn=lambda: epoch["e"])
    first = [(cx[0, 0].item(), reset) for cx, _, reset in loader]
    epoch["e"] = 1
    second = [(cx[0, 0].item(), reset) for cx, _, reset in loader]
    assert first == [(0, True), (5, False), (10, False)]
    assert second == [(15, True), (20, False), (0, True)]  # chunks 3, 4, then back to the start: reset
    # a second rank takes every other stream
    sharded = next(iter(StreamChunks(tokens, streams=4, seq_len=5, rank=1, world=2)))[0]
    assert sharded[:, 0].tolist() == [25, 75]


def test_the_data_module_splits_the_text_and_scores_whole_validation_streams(text_dir):
    text = (text_dir / "tinyshakespeare" / "input.txt").read_text()
    data = TextDataModule(TextDataConfig(eval_batch_size=4, eval_seq_len=0))
    t = data.load()
    n_train = int(len(text) * 0.9)
    assert t.vocab == "".join(sorted(set(text))) and len(t.train) == n_train and len(t.val) == len(text) - n_train
    assert text[n_train : n_train + 5] == "".join(t.vocab[i] for i in t.val[:5])
    loaders = data.val_dataloader()
    assert len(loaders) == 1  # nothing held out: the validation text alone
    chunks = list(loaders[0])  # eval_seq_len 0: each stream is read in one chunk
    per_stream = (len(t.val) - 1) // 4
    assert len(chunks) == 1 and chunks[0][0].shape == (4, per_stream)
    assert data.data_info()["val_chars_scored"] == 4 * per_stream


# the training split ends with a region of characters found nowhere else, exactly the held-out part
HELD_TEXT = "ab\n" * 300 + "XY" * 50 + "ba\n" * 37 + "\n"  # 1,112 characters: the first 1,000 are the training split


def test_the_held_out_text_is_the_end_of_the_training_split_and_never_trained_on(tmp_path, monkeypatch):
    (tmp_path / "tinyshakespeare.txt").write_text(HELD_TEXT)
    monkeypatch.setenv("REPRO_DATA_DIR", str(tmp_path))
    cfg = TextDataConfig(batch_size=4, seq_len=8, holdout_chars=100, eval_batch_size=2, window_len=16)
    data = TextDataModule(cfg)
    t = data.load()
    x_id, y_id = t.vocab.index("X"), t.vocab.index("Y")
    assert decode(t.train, t.vocab) == "ab\n" * 300 and decode(t.holdout, t.vocab) == "XY" * 50
    assert decode(t.val, t.vocab) == HELD_TEXT[1000:]  # the validation split is nanoGPT's, unchanged
    for x, y, _ in data.train_dataloader():  # one whole pass over the training streams
        assert not torch.isin(torch.cat([x, y]), torch.tensor([x_id, y_id])).any()
    val, holdout = data.val_dataloader()
    assert decode(torch.cat([c[0][0] for c in holdout]), t.vocab).startswith("XYXY")
    assert decode(next(iter(val))[0][0], t.vocab).startswith("ba\n")
    info = data.data_info()
    assert (info["train_chars"], info["holdout_chars"], info["holdout_chars_scored"]) == (900, 100, 98)
    # the counted bigram sees only the training text: it never saw an X, so it predicts uniformly after one
    module = CharLanguageModel(CharModelConfig(kind="bigram"), LMOptimConfig(), SampleConfig(), t.vocab)
    module.net.fit(t.train)
    assert torch.allclose(module.net.log_probs[x_id].exp(), torch.full((len(t.vocab),), 1 / len(t.vocab)))
    # train_chars keeps the first characters of what is left; too much held out is a user error
    monkeypatch.setattr(cfg, "train_chars", 30)
    assert decode(TextDataModule(cfg).load().train, t.vocab) == "ab\n" * 10
    monkeypatch.setattr(cfg, "holdout_chars", 999)
    with pytest.raises(ReproError, match="holdout_chars=999 leaves no training text"):
        TextDataModule(cfg).load()
    monkeypatch.setattr(cfg, "holdout_chars", 100)
    monkeypatch.setattr(cfg, "window_len", 112)  # the whole validation text: no room for its targets
    with pytest.raises(ReproError, match="window_len=112 does not fit in the validation text"):
        TextDataModule(cfg).load()


def test_windows_are_fixed_by_their_seed_and_cover_the_text_uniformly():
    starts = window_starts(1000, 256, 12_800, seed=0)
    torch.manual_seed(123)  # the global generator plays no part
    torch.rand(7)
    assert torch.equal(window_starts(1000, 256, 12_800, seed=0), starts)
    assert not torch.equal(window_starts(1000, 256, 12_800, seed=1), starts)
    assert starts.min() == 0 and starts.max() == 1000 - 256 - 1  # every start whose window and targets fit
    tokens = torch.arange(1000)  # token i is the number i
    windows = RandomWindows(tokens, 256, 100, batch_size=32, seed=0)
    batches = list(windows)
    assert [len(x) for x, _, _ in batches] == [32, 32, 32, 4] and len(windows) == 4
    assert all(reset for _, _, reset in batches)  # every window from a zero state
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(x[:, 0], window_starts(1000, 256, 100, seed=0)) and torch.equal(x, x[:, :1] + torch.arange(256))
    assert torch.equal(y, x + 1)
    ranks = [torch.cat([b[0][:, 0] for b in RandomWindows(tokens, 256, 100, 32, 0, rank, 3)]) for rank in range(3)]
    assert sorted(torch.cat(ranks).tolist()) == sorted(starts[:100].tolist())  # each window on exactly one rank
    with pytest.raises(ReproError, match="too short for windows of 256"):
        window_starts(256, 256, 1, 0)


def test_carried_state_makes_chunks_equal_to_the_whole_sequence_at_once():
    torch.manual_seed(0)
    x = torch.randint(0, 11, (3, 24))
    for net in (RecurrentLM("lstm", 11, 5, 7, 2), RecurrentLM("rnn", 11, 5, 7, 1), ContextMLP(11, 3, 4, 6)):
        whole, _ = net(x)
        state, parts = None, []
        for k in range(4):
            logits, state = net(x[:, 6 * k : 6 * k + 6], state)
            state = detach_state(state)
            parts.append(logits)
        assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-6)
    h, c = detach_state((torch.ones(2, requires_grad=True) * 2, torch.ones(2, requires_grad=True) * 3))
    assert not h.requires_grad and not c.requires_grad and h.tolist() == [2.0, 2.0]


def test_the_context_mlp_sees_only_its_last_three_characters():
    torch.manual_seed(0)
    net = ContextMLP(11, 3, 4, 6)
    a = torch.tensor([[1, 2, 3, 4, 5, 6]])
    b = torch.tensor([[9, 9, 9, 4, 5, 6]])  # differs only more than 3 characters before the last position
    assert torch.equal(net(a)[0][0, -1], net(b)[0][0, -1])
    assert not torch.equal(net(a)[0][0, -2], net(b)[0][0, -2])


# ----------------------------------------------------------------------------- losses
def test_bits_are_nats_over_ln2():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(math.log(65)) == pytest.approx(math.log2(65))
    assert bits_per_char(1.4697) == pytest.approx(2.1203, abs=1e-4)


def test_bigram_loss_on_a_hand_made_text():
    """Train 'abab': (a,b) twice, (b,a) once. Add-one: P(b|a) = 3/4, P(a|a) = 1/4, P(a|b) = 2/3, P(b|b) = 1/3.
    Evaluated on 'abba' (pairs ab, bb, ba): loss = -(ln 3/4 + ln 1/3 + ln 2/3) / 3."""
    net = BigramLM(2)
    net.fit(torch.tensor([0, 1, 0, 1]))
    assert net.log_probs.exp().tolist() == [pytest.approx([1 / 4, 3 / 4]), pytest.approx([2 / 3, 1 / 3])]
    logits, _ = net(torch.tensor([[0, 1, 1]]))
    loss = F.cross_entropy(logits.reshape(-1, 2), torch.tensor([1, 1, 0]))
    assert float(loss) == pytest.approx(-(math.log(3 / 4) + math.log(1 / 3) + math.log(2 / 3)) / 3, rel=1e-6)


def test_recurrent_variants_have_about_the_same_parameter_count():
    exp = get("char-lm")
    for profile, expected in (("quick", 111_873), ("full", 3_457_729)):
        counts = {}
        for v in ("rnn", "lstm", "gru", "mlp-3"):
            cfg = exp.resolve(v, profile)
            counts[v] = sum(p.numel() for p in build_char_net(cfg.model, 65).parameters())
        assert counts["lstm"] == expected
        assert all(abs(c / expected - 1) < 0.01 for c in counts.values()), counts


def test_text_is_held_out_in_quick_and_full_and_full_60_keeps_its_old_config():
    exp = get("char-lm")
    held = {p: exp.resolve("lstm", p).data.holdout_chars for p in ("smoke", "quick", "full", "full-60")}
    assert held == {"smoke": 1024, "quick": 32768, "full": 100_000, "full-60": 0}
    full, full_60 = config_to_dict(exp.resolve("lstm", "full")), config_to_dict(exp.resolve("lstm", "full-60"))
    assert (full["train"]["max_epochs"], full_60["train"]["max_epochs"]) == (15, 60)
    full["train"]["max_epochs"], full["data"]["holdout_chars"] = 60, 0
    assert full["sample"].pop("words_length") == 2000  # slide 35's measured sample, since 2026-12-06
    assert full == full_60  # the same model and recipe otherwise
    assert (full["data"]["window_len"], full["data"]["windows"]) == (256, 12_800)  # nanoGPT's estimate_loss


# ----------------------------------------------------------------------------- long-range measures
HAND_TEXT = "xy\nab\n\ncd:\nefg"  # 14 characters: one stream reads the first 13, predicts the last 13


def test_line_positions_of_a_hand_made_text():
    vocab = "".join(sorted(set(HAND_TEXT)))
    x, y = stream_matrices(encode(HAND_TEXT, vocab), 1)
    assert "".join(vocab[i] for i in y[0]) == "y\nab\n\ncd:\nefg"
    positions, last = line_positions(x, vocab.index("\n"))
    # targets:      y   \n  a  b  \n \n  c  d  :  \n  e  f  g
    expected = [[-1, -1, 0, 1, 2, 0, 0, 1, 2, 3, 0, 1, 2]]  # -1: the line began before the stream
    assert positions.tolist() == expected and last.tolist() == [2]
    # the same in chunks of 4 (the last one cut), the positions carried from chunk to chunk
    parts, last = [], None
    for k in range(0, 13, 4):
        p, last = line_positions(x[:, k : k + 4], vocab.index("\n"), last)
        parts += p[0].tolist()
    assert [parts] == expected
    assert line_positions(x, -1)[0].eq(-1).all()  # a text without newlines: every position unknown


def test_line_positions_follow_the_text_across_streams_and_chunks():
    text = "".join(f"{'w' * (i % 11)}{':' * (i % 3 == 0)}\n" for i in range(60))  # lines of 0 to 11 characters
    vocab = "".join(sorted(set(text)))
    tokens = encode(text, vocab)
    streams, seq_len = 3, 7
    found = [[] for _ in range(streams)]
    last = None
    for x, _, reset in StreamChunks(tokens, streams, seq_len):
        positions, last = line_positions(x, vocab.index("\n"), None if reset else last)
        for b in range(streams):
            found[b] += positions[b].tolist()
    length = (len(tokens) - 1) // streams
    for b, got in enumerate(found):
        start = b * length  # stream b reads text[start : start + length] and predicts the next characters
        for j, position in enumerate(got):
            target = start + j + 1
            seen = text[start:target]
            if "\n" in seen:  # characters since the last newline, read off the whole text
                assert position == target - text.rindex("\n", 0, target) - 1
            else:
                assert position == -1
        assert len(got) == (length // seq_len) * seq_len and got.count(-1) == text[start:].index("\n")


def test_line_position_buckets():
    positions = torch.tensor([-1, 0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 500])
    assert line_position_buckets(positions).tolist() == [8, 0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    assert LINE_POSITION_METRICS[0] == "line_pos_loss_0" and LINE_POSITION_METRICS[-1] == "line_pos_loss_32_up"


def test_final_evaluation_averages_the_losses_of_each_position_and_target():
    """A counted bigram scores the hand-made text twice (two streams), in chunks of 3; every long-range
    metric must equal the mean of the per-character losses picked out by hand."""
    text = HAND_TEXT[:13] + HAND_TEXT  # two streams of 13 characters, both reading HAND_TEXT[:13]
    vocab = "".join(sorted(set(text)))
    tokens = encode(text, vocab)
    module = CharLanguageModel(CharModelConfig(kind="bigram"), LMOptimConfig(), SampleConfig(length=3), vocab)
    module.net.fit(tokens)
    x, y = stream_matrices(tokens, 2)
    losses = F.cross_entropy(module.net(x)[0].transpose(1, 2), y, reduction="none")[0]  # [13], stream 1
    assert torch.equal(x[0], x[1]) and torch.equal(y[0, :12], y[1, :12])  # the same characters, scored alike
    module.on_test_epoch_start()
    for k, (cx, cy, reset) in enumerate(StreamChunks(tokens, streams=2, seq_len=3)):
        module.test_step((cx, cy, reset), k)
    module.on_test_epoch_end()
    m = module.summary()
    # positions as in test_line_positions_of_a_hand_made_text; the chunks of 3 score the first 12 targets
    by_position = {0: [2, 5, 6, 10], 1: [3, 7, 11], 2: [4, 8], 3: [9]}

    def mean(idx):
        return float(losses[idx].mean())

    for bucket, idx in by_position.items():
        assert m[LINE_POSITION_METRICS[bucket]] == pytest.approx(mean(idx), rel=1e-6)
    assert all(math.isnan(m[k]) for k in LINE_POSITION_METRICS[4:])  # no line is longer than 3 here
    assert m["line_start_loss"] == pytest.approx(mean([2, 3, 4, 5, 6, 7, 8, 10, 11]), rel=1e-6)
    assert m["line_rest_loss"] == pytest.approx(mean([9]), rel=1e-6)
    assert m["newline_loss"] == pytest.approx(mean([1, 4, 5, 9]), rel=1e-6)
    assert m["colon_loss"] == pytest.approx(mean([8]), rel=1e-6)
    assert m["val_loss"] == pytest.approx(mean(list(range(12))), rel=1e-6)
    assert module.extras()["long_range_counts"] == {
        "line_position_buckets": ["0", "1", "2", "3", "4-7", "8-15", "16-31", "32+"],
        "line_position_counts": [8, 6, 4, 2, 0, 0, 0, 0],  # two streams
        "line_position_unknown": 4,
        "newline_targets": 8,
        "colon_targets": 2,
    }
    assert set(LONG_RANGE_METRICS) <= set(m)


def _final_evaluation(module: CharLanguageModel, loaders) -> dict:
    """Run the test loop by hand over (stateful streams, windows)."""
    module.on_test_epoch_start()
    for index, loader in enumerate(loaders):
        for k, batch in enumerate(loader):
            module.test_step(batch, k, index)
    module.on_test_epoch_end()
    return module.summary()


def test_windowed_loss_of_a_bigram_equals_a_hand_computation():
    """A bigram counted on 'aaabaaab' (pairs aa 4, ab 2, ba 1, bb 0; add-one over 2 characters): P(a|a) = 5/8,
    P(b|a) = 3/8, P(a|b) = 2/3, P(b|b) = 1/3. Each window's loss is the mean of -ln P over its 3 pairs of the
    validation text 'abbaab', read off by hand; the metric is their mean and its standard error over windows."""
    vocab = "ab"
    module = CharLanguageModel(CharModelConfig(kind="bigram"), LMOptimConfig(), SampleConfig(length=0), vocab)
    module.net.fit(encode("aaab" * 2, vocab))
    nll = {
        ("a", "a"): -math.log(5 / 8),
        ("a", "b"): -math.log(3 / 8),
        ("b", "a"): -math.log(2 / 3),
        ("b", "b"): -math.log(1 / 3),
    }
    val = "abbaab"
    tokens = encode(val, vocab)
    starts = window_starts(len(tokens), 3, 7, seed=5).tolist()
    hand = [sum(nll[val[s + i], val[s + i + 1]] for i in range(3)) / 3 for s in starts]
    assert len(set(hand)) > 1  # the windows differ
    streams = StreamChunks(tokens, streams=1, seq_len=5)
    m = _final_evaluation(module, [streams, RandomWindows(tokens, 3, 7, batch_size=2, seed=5)])
    assert m["val_loss_windows"] == pytest.approx(sum(hand) / 7, rel=1e-6)
    sem = math.sqrt(sum((h - sum(hand) / 7) ** 2 for h in hand) / 6 / 7)
    assert m["val_loss_windows_sem"] == pytest.approx(sem, rel=1e-5)
    pairs = [(val[i], val[i + 1]) for i in range(5)]
    assert m["val_loss"] == pytest.approx(sum(nll[pair] for pair in pairs) / 5, rel=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "mlp"])
def test_each_window_is_read_from_a_zero_state_whatever_precedes_it(kind):
    """The windowed loss equals scoring every window alone from a fresh state; and the text before a
    window does not change its loss (it would, were a state carried into it)."""
    torch.manual_seed(0)
    module = CharLanguageModel(
        CharModelConfig(kind=kind, embed=4, layers=1, lstm_hidden=6, mlp_hidden=6),
        LMOptimConfig(),
        SampleConfig(length=0),
        "abcdefghijk",
    )
    tokens = torch.randint(0, 11, (200,))
    windows = RandomWindows(tokens, 16, 10, batch_size=4, seed=0)
    alone = []
    for s in windows.starts.tolist():
        logits, _ = module.net(tokens[None, s : s + 16])
        alone.append(float(F.cross_entropy(logits[0], tokens[s + 1 : s + 17])))
    m = _final_evaluation(module, [StreamChunks(tokens, 2, 50), windows])
    assert m["val_loss_windows"] == pytest.approx(sum(alone) / 10, rel=1e-5)
    changed = tokens.clone()
    assert windows.starts.min() > 0
    changed[: windows.starts.min()] = 0  # the text before every window
    m2 = _final_evaluation(module, [StreamChunks(changed, 2, 50), RandomWindows(changed, 16, 10, 4, 0)])
    assert m2["val_loss_windows"] == pytest.approx(m["val_loss_windows"], rel=1e-6)


# ----------------------------------------------------------------------------- training: clipping
def _fit(clip_norm: float, text_dir: Path):
    cfg = TextDataConfig(
        batch_size=4,
        seq_len=16,
        chunks_per_epoch=5,
        train_chars=2000,
        val_chars=600,
        eval_batch_size=2,
        eval_seq_len=32,
    )
    data = TextDataModule(cfg)
    model = CharModelConfig(kind="gru", embed=8, layers=1, gru_hidden=16)
    module = CharLanguageModel(model, LMOptimConfig(lr=1e-2, clip_norm=clip_norm), SampleConfig(length=5), data.vocab)
    seen = []  # the global gradient norm the optimizer actually steps with

    def record(module=module):
        return seen.append(math.sqrt(sum(float(p.grad.norm()) ** 2 for p in module.trainable)))

    configure = module.configure_optimizers

    def configure_and_watch():
        out = configure()
        out["optimizer"].register_step_pre_hook(lambda opt, args, kwargs: record())
        return out

    module.configure_optimizers = configure_and_watch
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )
    trainer.fit(module, datamodule=data)
    return module, seen


def test_gradient_clipping_engages_and_bounds_the_step_norm(text_dir):
    module, seen = _fit(1e-3, text_dir)
    assert module.steps == 5 and module.clipped_steps == 5
    assert module.history[0]["grad_norm"] > 1e-2  # the norms before clipping were far above the limit
    assert all(n <= 1e-3 * (1 + 1e-4) for n in seen) and len(seen) == 5
    free, seen = _fit(0.0, text_dir)  # no clipping: the optimizer sees the raw gradients
    assert free.clipped_steps == 0 and min(seen) > 1e-2


# ----------------------------------------------------------------------------- training: the best held-out epoch
class Scramble(L.Callback):
    """Replace the weights with large noise at the start of one epoch (0-based): from then on the model is
    far worse than before, so a later epoch is worse than an earlier one."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in module.net.parameters():
                    p.copy_(3 * torch.randn(p.shape, generator=g))


class StopAfter(L.Callback):
    """End the training after ``epochs`` epochs of a longer run (its schedule unchanged), like a kill."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


class Snapshots(L.Callback):
    """The network's weights as each epoch's evaluation scored them."""

    def __init__(self):
        self.weights = []

    def on_validation_end(self, trainer, module):
        self.weights.append({k: v.clone() for k, v in module.net.state_dict().items()})


HOLDOUT_DATA = dict(
    batch_size=4,
    seq_len=16,
    chunks_per_epoch=5,
    train_chars=2000,
    holdout_chars=600,
    val_chars=600,
    eval_batch_size=2,
    eval_seq_len=32,
    window_len=16,
    windows=12,
    window_batch_size=5,
)


def _holdout_module():
    torch.manual_seed(0)
    data = TextDataModule(TextDataConfig(**HOLDOUT_DATA))
    model = CharModelConfig(kind="gru", embed=8, layers=1, gru_hidden=16)
    return CharLanguageModel(model, LMOptimConfig(lr=1e-2), SampleConfig(length=20), data.vocab), data


def _trainer(epochs: int, *callbacks) -> L.Trainer:
    saves = any(isinstance(c, LastCheckpoint) for c in callbacks)
    return L.Trainer(
        max_epochs=epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=saves,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
    )


def _without_time(module) -> tuple[dict, list]:
    drop = {"wall_time", "seconds", "tokens_per_second", "kchars_per_second"}
    return (
        {k: v for k, v in module.summary().items() if k not in drop},
        [{k: v for k, v in row.items() if k not in drop} for row in module.history],
    )


def test_the_reported_metrics_are_those_of_the_best_held_out_epoch(text_dir, tmp_path):
    module, data = _holdout_module()
    snapshots = Snapshots()
    trainer = _trainer(3, Scramble(2), snapshots)
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    holdout = [row["holdout_loss"] for row in module.history]
    assert holdout[1] < holdout[0] < holdout[2]  # epoch 2 is the best; the scrambled epoch 3 is far worse
    m = module.summary()
    assert m["best_holdout_epoch"] == 2 and m["holdout_loss"] == holdout[1] and m["epochs"] == 3
    assert m["val_loss"] == pytest.approx(module.history[1]["val_loss"], rel=1e-6)  # epoch 2's, not the last
    assert m["val_loss"] < module.history[2]["val_loss"] - 1
    best = snapshots.weights[1]
    assert all(torch.equal(v, best[k]) for k, v in module.net.state_dict().items())
    # the windowed loss and the sample are those of epoch 2's weights, scored afresh
    again, _ = _holdout_module()
    again.net.load_state_dict(best)
    expected = _final_evaluation(again, data.test_dataloader())
    assert m["val_loss_windows"] == pytest.approx(expected["val_loss_windows"], rel=1e-6)
    assert m["val_loss_windows_sem"] == pytest.approx(expected["val_loss_windows_sem"], rel=1e-5)
    assert module.sample == again.sample and len(module.sample["text"]) == 20
    last, _ = _holdout_module()
    last.net.load_state_dict(snapshots.weights[2])
    assert _final_evaluation(last, data.test_dataloader())["val_loss_windows"] > m["val_loss_windows"] + 1
    # `repro sample` reads the same weights from the checkpoint
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    weights = reported_net_weights(torch.load(tmp_path / "last.ckpt", weights_only=True))
    assert all(torch.equal(v, best[k]) for k, v in weights.items()) and weights.keys() == best.keys()


def test_a_resumed_run_keeps_the_best_epoch_and_reports_what_an_uninterrupted_run_does(text_dir, tmp_path):
    """Stopped after epoch 2, the best epoch so far: only the checkpoint can carry its weights to the end."""
    whole, data = _holdout_module()
    trainer = _trainer(4, Scramble(2))
    trainer.fit(whole, datamodule=data)
    trainer.test(whole, datamodule=data, verbose=False)
    assert whole.summary()["best_holdout_epoch"] == 2
    first, data = _holdout_module()
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    _trainer(4, Scramble(2), LastCheckpoint(ckpt, identity="test"), StopAfter(2)).fit(
        first, datamodule=data
    )  # as if killed
    assert torch.load(ckpt, weights_only=True)["repro"]["best_holdout_epoch"] == 2 and len(first.history) == 2
    resumed, data = _holdout_module()
    trainer = _trainer(4, Scramble(2))
    trainer.fit(resumed, datamodule=data, ckpt_path=str(ckpt))
    trainer.test(resumed, datamodule=data, verbose=False)
    assert _without_time(resumed) == _without_time(whole)
    assert resumed.sample == whole.sample
    assert all(torch.equal(p, q) for p, q in zip(resumed.net.parameters(), whole.net.parameters(), strict=True))


# ----------------------------------------------------------------------------- sampling
def test_sampling_is_deterministic_given_the_seed():
    torch.manual_seed(0)
    net = RecurrentLM("lstm", 11, 5, 7, 1)
    a = generate(net, [1, 2], 50, 1.0, seed=3)
    assert a == generate(net, [1, 2], 50, 1.0, seed=3) and len(a) == 50 and all(0 <= i < 11 for i in a)
    assert a != generate(net, [1, 2], 50, 1.0, seed=4)
    assert generate(net, [1, 2], 20, 0.0, seed=3) == generate(net, [1, 2], 20, 0.0, seed=4)  # greedy
    assert net.training  # left as it was found


# ----------------------------------------------------------------------------- claims
def results(**per_variant) -> Results:
    return Results({v: {"val_loss": dict(enumerate(vals))} for v, vals in per_variant.items()})


def test_claims_decide_from_paired_seeds():
    lstm_vs_rnn, vs_mlp, *_ = get("char-lm").claims
    good = {"rnn": [2.0, 2.1, 2.05], "lstm": [1.8, 1.85, 1.83], "gru": [1.79, 1.8, 1.81], "mlp-3": [2.3, 2.31, 2.32]}
    assert lstm_vs_rnn.check(results(**good)).status == "supported"
    assert vs_mlp.check(results(**good)).status == "supported"
    worse_gru = {**good, "gru": [2.4, 2.5, 2.45]}
    assert vs_mlp.check(results(**worse_gru)).status == "contradicted"
    # a model the profile did not run is left out, not counted against the claim
    assert vs_mlp.check(results(**{k: v for k, v in good.items() if k != "gru"})).status == "supported"
    assert vs_mlp.check(results(rnn=good["rnn"])).status == "inconclusive"
    assert lstm_vs_rnn.check(results(rnn=[1.8, 1.85, 1.83], lstm=[2.0, 2.1, 2.05])).status == "contradicted"


def test_known_word_share_of_a_hand_made_sample():
    from lightning_modules.char_metrics import known_word_share, words_of

    assert words_of("ROMEO: Thou'rt here,\nthe e'er-KING's 3x") == [
        "romeo",
        "thou'rt",
        "here",
        "the",
        "e'er",
        "king's",
        "x",
    ]
    known = set(words_of("Romeo thou art here the king"))
    assert known_word_share("romeo thou'rt HERE\nxq.", known) == (0.5, 4)  # romeo, here of 4 words
    share, words = known_word_share(" ,;\n", known)
    assert math.isnan(share) and words == 0


def test_sample_claims_compare_known_word_shares_with_the_bigram_and_the_mlp():
    *_, vs_bigram, vs_mlp = get("char-lm").claims
    good = {"rnn": [0.85, 0.86, 0.84], "lstm": [0.88, 0.87, 0.89], "gru": [0.9, 0.89, 0.91]}
    r = Results(
        {
            **{v: {"sample_known_words": dict(enumerate(x))} for v, x in good.items()},
            "bigram": {"sample_known_words": {0: 0.29, 1: 0.29, 2: 0.29}},
            "mlp-3": {"sample_known_words": {0: 0.75, 1: 0.78, 2: 0.74}},
        }
    )
    assert vs_bigram.check(r).status == "supported" and vs_mlp.check(r).status == "supported"
    r.values["mlp-3"]["sample_known_words"] = {0: 0.95, 1: 0.96, 2: 0.94}  # the MLP spells better
    assert vs_mlp.check(r).status == "contradicted" and vs_bigram.check(r).status == "supported"
    # measured only where the profile sets sample.words_length: the runs before it decide nothing
    exp = get("char-lm")
    lengths = {p: exp.resolve("lstm", p).sample.words_length for p in ("smoke", "quick", "full", "full-60")}
    assert lengths == {"smoke": 200, "quick": 2000, "full": 2000, "full-60": 0}
    assert "words_length" not in config_to_dict(exp.resolve("lstm", "full-60"))["sample"]  # old identities stand


def test_long_range_claims_decide_from_paired_seeds():
    line_ends, beyond_start = get("char-lm").claims[3:5]

    def metric(name, **per_variant) -> dict:
        return {v: {name: dict(enumerate(vals))} for v, vals in per_variant.items()}

    newline = metric("newline_loss", lstm=[1.0, 1.1, 1.05], **{"mlp-3": [1.5, 1.52, 1.6]})
    assert line_ends.check(Results(newline)).status == "supported"
    swapped = metric("newline_loss", lstm=[1.5, 1.52, 1.6], **{"mlp-3": [1.0, 1.1, 1.05]})
    assert line_ends.check(Results(swapped)).status == "contradicted"
    assert line_ends.check(Results({})).status == "inconclusive"

    def positions(start_adv: float, rest_adv: float, gru_rest_adv: float | None = None) -> Results:
        """mlp-3 loses 2.0 at positions 0-2 and 1.5 at 3+; the recurrent nets have the given advantages."""
        values = {
            "mlp-3": {"line_start_loss": {s: 2.0 for s in range(3)}, "line_rest_loss": {s: 1.5 for s in range(3)}}
        }
        for m in ("rnn", "lstm", "gru"):
            rest = gru_rest_adv if m == "gru" and gru_rest_adv is not None else rest_adv
            values[m] = {
                "line_start_loss": {s: 2.0 - start_adv + 0.01 * s for s in range(3)},
                "line_rest_loss": {s: 1.5 - rest - 0.01 * s for s in range(3)},
            }
        return Results(values)

    assert beyond_start.check(positions(0.0, 0.1)).status == "supported"
    assert beyond_start.check(positions(0.2, 0.1)).status == "contradicted"
    assert beyond_start.check(positions(0.0, 0.1, gru_rest_adv=-0.3)).status == "contradicted"


# ----------------------------------------------------------------------------- through the CLI
def test_sample_command_needs_a_trained_run(data_env, text_dir, capsys):
    assert main(["sample", "char-lm", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "no run at" in err and "repro run char-lm --profile smoke --variant lstm --seed 0" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["sample", "augmentation"]) == 2  # not a language model
    assert "does not generate text" in capsys.readouterr().err


def test_smoke_run_records_losses_and_samples_and_sample_command_generates(data_env, text_dir):
    env = {**data_env, "REPRO_DATA_DIR": str(text_dir)}
    result = repro("run", "char-lm", "--profile", "smoke", "--wandb", "off", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = Path(env["REPRO_RUNS_DIR"]) / "char-lm" / "smoke"
    for variant in ("rnn", "lstm", "gru", "mlp-3", "bigram"):
        rec = json.loads((runs / variant / "seed0" / "record.json").read_text())
        m = rec["metrics"]
        assert m["val_bpc"] == pytest.approx(m["val_loss"] / math.log(2))
        assert 0 < m["val_loss"] < math.log(rec["provenance"]["data"]["vocab_size"]) + 0.5 and m["diverged"] == 0
        assert m["params"] == rec["provenance"]["params"] and m["tokens_per_second"] > 0
        assert len(rec["sample"]["text"]) == 40 and rec["sample"]["prompt"] == "ROMEO:"
        words = rec["words_sample"]  # 200 characters generated as the sample is: it begins with the sample
        assert len(words["text"]) == 200 and words["text"].startswith(rec["sample"]["text"])
        assert (m["sample_known_words"], m["sample_words"]) == (words["known_share"], words["words"])
        assert 0 <= m["sample_known_words"] <= 1 and m["sample_words"] > 0
        assert m["epochs"] == (1 if variant == "bigram" else 2) and len(rec["history"]) == m["epochs"]
        for k in ("line_start_loss", "line_rest_loss", "newline_loss", "colon_loss"):  # tiny lines are < 32 long
            assert 0 < m[k] < 10, (variant, k)
        counts = rec["long_range_counts"]
        assert sum(counts["line_position_counts"]) + counts["line_position_unknown"] == 4 * 224  # all scored
        assert 0 < m["val_loss_windows"] < 10 and 0 < m["val_loss_windows_sem"] < 1  # 16 windows of 32
        chosen = int(m["best_holdout_epoch"])
        assert 1 <= chosen <= m["epochs"] and m["holdout_loss"] == rec["history"][chosen - 1]["holdout_loss"]
        data = rec["provenance"]["data"]
        assert (data["train_chars"], data["holdout_chars"], data["val_windows"]) == (4096, 1024, 16)
    assert json.loads((runs / "bigram" / "seed0" / "record.json").read_text())["metrics"]["steps"] == 8
    md = (runs / "report" / "char-lm-smoke.md").read_text()
    assert "val bits/char" in md and "LSTM reaches a lower validation loss" in md
    assert "val loss, random windows (nats/char) | ± s.e. over windows | published |" in md
    assert "epoch reported (lowest held-out loss)" in md
    assert "loss on line ends (newlines)" in md and "predicts line ends better" in md
    args = ("sample", "char-lm", "--profile", "smoke", "--prompt", "ROMEO:", "--length", "60", "--temperature", "0.8")
    shown = repro(*args, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.startswith("ROMEO:") and len(shown.stdout) == 6 + 60 + 1  # and print's newline
    # the same run, prompt and seeds give the same text; another sampling seed another one
    exp = get("char-lm")
    assert sample(exp, "smoke", None, 0, "ROMEO:", 60, 0.8, 0) + "\n" == shown.stdout
    # the command samples from the weights the run reports: those the run's own sample came from
    lstm = json.loads((runs / "lstm" / "seed0" / "record.json").read_text())["sample"]
    assert sample(exp, "smoke", "lstm", 0, "ROMEO:", 40, lstm["temperature"], lstm["seed"]) == "ROMEO:" + lstm["text"]
    assert sample(exp, "smoke", "lstm", 0, "ROMEO:", 60, 0.8, 1) + "\n" != shown.stdout
    with pytest.raises(ReproError, match="outside the model's vocabulary"):
        sample(exp, "smoke", "gru", 0, "~~", 10, 0.8, 0)
