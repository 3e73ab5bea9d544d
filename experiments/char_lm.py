"""Slides 31-35: a recurrent network as a character-level language model.

"An RNN language model reads one character at a time and predicts the next; its hidden state can carry
information from arbitrarily far back, where a fixed-context (Markov) model such as slide 28's MLP sees
only the last few characters. Trained with teacher forcing, it generates Shakespeare-like text."

Tiny Shakespeare split like nanoGPT (first 90% train, last 10% val, 65 characters). A vanilla RNN (tanh),
an LSTM and a GRU of about the same parameter count, trained by truncated backpropagation through time
with the hidden state carried across the chunks of parallel streams and the global gradient norm clipped;
against two memoryless baselines: a context-3 MLP of the same size and an add-one-smoothed bigram table.
Every run ends by generating a sample from a fixed prompt and seed (in the run record and the plot);
``repro sample char-lm`` generates more from a run's checkpoint.
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field

import torch
import yaml

from datamodules.text import TextDataConfig, TextDataModule
from experiments import stats
from experiments.report import pyplot, save_figure
from experiments.spec import (
    Claim,
    Experiment,
    Profile,
    Reference,
    ReproError,
    Results,
    Table,
    TrainConfig,
    Variant,
    Verdict,
    config_from_dict,
)
from lightning_modules.char_lm import (
    CharLanguageModel,
    CharModelConfig,
    LMOptimConfig,
    SampleConfig,
    build_char_net,
    generate,
)


@dataclass
class CharLMRunConfig:
    """Defaults are the full (GPU) profile: nanoGPT's data layout (batch 64, context 256, dropout 0.2) with
    2-layer recurrent nets of about 3.46M parameters each."""

    data: TextDataConfig = field(default_factory=lambda: TextDataConfig(batch_size=64, seq_len=256))
    model: CharModelConfig = field(default_factory=lambda: CharModelConfig(dropout=0.2))
    optim: LMOptimConfig = field(default_factory=lambda: LMOptimConfig(lr=2e-3, warmup_steps=100))
    sample: SampleConfig = field(default_factory=SampleConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=60, log_every_n_steps=20))


def build(cfg: CharLMRunConfig, seed: int):
    data = TextDataModule(cfg.data, seed=seed)
    return CharLanguageModel(cfg.model, cfg.optim, cfg.sample, data.vocab), data


RECURRENT = ("rnn", "lstm", "gru")
VARIANTS = (
    Variant("rnn", "vanilla RNN: h_t = tanh(W x_t + U h_(t-1) + b)", {"model.kind": "rnn"}),
    Variant("lstm", "LSTM (gated memory cell)", {"model.kind": "lstm"}),
    Variant("gru", "GRU (gated, no separate memory cell)", {"model.kind": "gru"}),
    Variant(
        "mlp-3",
        "slide 28's memoryless model: an MLP on the embeddings of the last 3 characters, about as many "
        "parameters as the recurrent nets",
        {"model.kind": "mlp", "model.context": 3},
    ),
    Variant(
        "bigram",
        "counts of (character, next character) in the training text with add-one smoothing; no training "
        "steps (one epoch measures its training loss)",
        {"model.kind": "bigram", "train.max_epochs": 1},
    ),
)

# Hidden sizes with about equal parameter counts (65 characters, embedding 64, one layer):
# RNN 269 -> 111,825; LSTM 128 -> 111,873; GRU 150 -> 111,175; MLP-3 417 -> 111,875; bigram 65 x 65 = 4,225.
QUICK_MODEL = {
    "model.embed": 64,
    "model.layers": 1,
    "model.rnn_hidden": 269,
    "model.lstm_hidden": 128,
    "model.gru_hidden": 150,
    "model.mlp_hidden": 417,
    "model.dropout": 0.0,
}

PROFILES = (
    Profile(
        "smoke",
        "tiny nets on the first 4,096 training and 1,024 validation characters, 2 epochs of 8 chunks: checks "
        "the plumbing only",
        seeds=1,
        overrides={
            "data.train_chars": 4096,
            "data.val_chars": 1024,
            "data.batch_size": 4,
            "data.seq_len": 16,
            "data.chunks_per_epoch": 8,
            "data.eval_batch_size": 4,
            "data.eval_seq_len": 32,
            "model.embed": 8,
            "model.layers": 1,
            "model.rnn_hidden": 16,
            "model.lstm_hidden": 8,
            "model.gru_hidden": 9,
            "model.mlp_hidden": 16,
            "model.dropout": 0.0,
            "optim.warmup_steps": 0,
            "sample.length": 40,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
    ),
    Profile(
        "quick",
        "one-layer nets of about 112k parameters (RNN 269, LSTM 128, GRU 150 hidden units; MLP-3 417), "
        "32 streams x 64-character chunks, 5 epochs of 80 chunks (400 AdamW steps, lr 1e-2, cosine to 1/10, "
        "clip norm 1; 819k training characters, under one pass); validation on the first 32,768 "
        "validation characters (32 streams, 32,736 predictions)",
        seeds=3,
        overrides={
            **QUICK_MODEL,
            "data.batch_size": 32,
            "data.seq_len": 64,
            "data.chunks_per_epoch": 80,
            "data.val_chars": 32768,
            "data.eval_batch_size": 32,  # 32 streams of 1,023 characters, each read in one chunk
            "optim.lr": 1e-2,  # better than 3e-3 for every model on seed 0 (RNN 1.86 -> 1.81, LSTM 1.97 -> 1.78)
            "optim.warmup_steps": 0,
            "train.max_epochs": 5,
        },
        cpu_jobs=2,
    ),
    Profile(
        "full",
        "two-layer nets of about 3.46M parameters (RNN 1040, LSTM 512, GRU 595 hidden units, dropout 0.2; "
        "MLP-3 7,680), nanoGPT's batch 64 x context 256, 60 passes over the training text (3,660 AdamW "
        "steps, lr 2e-3, 100 warm-up steps, cosine to 1/10, clip norm 1); validation on the whole validation "
        "text as 32 streams (111,520 of its 111,539 predictions); for a GPU",
        seeds=1,
    ),
)


# ----------------------------------------------------------------------------- claims
def _lower_loss(better: str, worse: str, results: Results) -> Verdict:
    seeds, d = stats.paired(results.get(worse, "val_loss"), results.get(better, "val_loss"))
    return stats.expect_positive(d, seeds, f"val loss {worse} minus {better}", scale=1, unit=" nats")


def _lstm_beats_rnn(results: Results) -> Verdict:
    return _lower_loss("lstm", "rnn", results)


def _all_recurrent_beat(baseline: str):
    """Supported when every recurrent model has a lower val loss than the baseline; contradicted when any
    has a higher one; inconclusive otherwise (or when a model has no runs)."""

    def check(results: Results) -> Verdict:
        verdicts = [_lower_loss(m, baseline, results) for m in RECURRENT]
        statuses = [v.status for v in verdicts]
        status = (
            "contradicted"
            if "contradicted" in statuses
            else "supported"
            if all(s == "supported" for s in statuses)
            else "inconclusive"
        )
        return Verdict(status, " | ".join(v.statistic for v in verdicts), weak=any(v.weak for v in verdicts))

    return check


CLAIMS = (
    Claim(
        "31-35, 49-53",
        "At the same parameter count and number of steps, the LSTM reaches a lower validation loss than the "
        "vanilla RNN",
        _lstm_beats_rnn,
    ),
    Claim(
        "28, 31",
        "Recurrent models (RNN, LSTM, GRU) use more than a fixed window: each beats the context-3 MLP of the "
        "same size in validation loss",
        _all_recurrent_beat("mlp-3"),
    ),
    Claim(
        "28, 31",
        "Each recurrent model beats the bigram (context-1 Markov) model in validation loss",
        _all_recurrent_beat("bigram"),
    ),
)

METRICS = {
    "val_loss": "val loss (nats/char)",
    "val_bpc": "val bits/char",
    "best_val_loss": "best val loss (per epoch)",
    "train_loss": "train loss (last epoch)",
    "params": "parameters",
    "kchars_per_second": "train kchars/s",
    "clipped_fraction": "steps clipped",
    "diverged": "diverged",
    "wall_time": "train time (s)",
}


# ----------------------------------------------------------------------------- plot
def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Top: validation loss per epoch (mean over seeds) against characters seen, with nanoGPT's published
    figure for scale. Bottom: each model's end-of-training sample (lowest seed), the slide-35 demonstration."""
    plt = pyplot()

    names = [v.name for v in exp.variants if v.name in by_variant]
    fig, (curves, samples) = plt.subplots(2, 1, figsize=(11, 12), gridspec_kw={"height_ratios": [1, 1.1]})
    for name in names:
        recs = [r for r in by_variant[name] if r["history"]]
        if not recs:
            continue
        epochs = min(len(r["history"]) for r in recs)
        x = [recs[0]["history"][e]["tokens"] / 1e6 for e in range(epochs)]
        y = [statistics.fmean(r["history"][e].get("val_loss", float("nan")) for r in recs) for e in range(epochs)]
        if recs[0]["metrics"]["steps"] and recs[0]["config"]["model"]["kind"] != "bigram":
            curves.plot(x, y, marker="o", ms=3, label=name)
        else:  # the counted bigram has no training curve: its loss as a level
            curves.axhline(y[-1], ls=":", color="tab:purple", label=f"{name} (counted, no training steps)")
    for ref in exp.references:
        curves.axhline(ref.value, color="gray", ls="--", lw=1, label=f"{ref.value}: nanoGPT transformer (published)")
    curves.set(
        xlabel="training characters seen (millions)",
        ylabel="validation loss (nats/char)",
        title=f"{exp.title} ({profile} profile): validation loss, mean over seeds",
    )
    curves.legend(fontsize=8)
    curves.grid(alpha=0.3)

    samples.axis("off")
    lines = []
    for name in names:
        rec = min(by_variant[name], key=lambda r: r["seed"])
        s = rec.get("sample") or {}
        text = s.get("prompt", "") + s.get("text", "")
        body = "\n".join(
            textwrap.fill(line, 110, replace_whitespace=False) or " " for line in text.splitlines()[:8]
        )  # fmt: skip
        lines += [f"--- {name} (seed {rec['seed']}, temperature {s.get('temperature', '?')}) ---", body, ""]
    samples.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=7.5, parse_math=False,
                 transform=samples.transAxes)  # fmt: skip
    samples.set_title("samples generated after training (prompt, then the model's characters)", loc="left")
    fig.tight_layout()
    save_figure(fig, path)


# ----------------------------------------------------------------------------- `repro sample`
DEFAULT_SAMPLE_VARIANT = "lstm"


def sample(
    exp: Experiment,
    profile: str,
    variant: str | None,
    seed: int,
    prompt: str,
    length: int,
    temperature: float,
    sample_seed: int,
) -> str:
    """The prompt followed by ``length`` characters generated from the run's ``checkpoints/last.ckpt``."""
    from experiments.runner import RunSpec

    variant = variant or DEFAULT_SAMPLE_VARIANT
    exp.variant(variant)
    if length < 0 or temperature < 0:
        raise ReproError("--length and --temperature must be >= 0")
    run_dir = RunSpec(exp, profile, variant, seed, None).dir
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    if not (run_dir / "config.yaml").is_file():
        raise ReproError(
            f"no run at {run_dir}; train it first: repro run {exp.name} --profile {profile} --variant {variant} "
            f"--seed {seed}"
        )
    if not ckpt_path.is_file():
        raise ReproError(f"{run_dir} has no checkpoints/last.ckpt (the run has not finished an epoch yet)")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    cfg = config_from_dict(exp.config(), {k: v for k, v in saved.items() if k not in ("experiment", "profile",
                                                                                   "variant", "seed")})  # fmt: skip
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        vocab = ckpt["repro"]["vocab"]
        net = build_char_net(cfg.model, len(vocab))
        net.load_state_dict({k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")})
    except Exception as e:
        raise ReproError(f"{ckpt_path} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ReproError(f"the prompt has characters outside the model's vocabulary: {''.join(unknown)!r}")
    ids = [vocab.index(c) for c in prompt] or [vocab.index("\n") if "\n" in vocab else 0]
    out = generate(net, ids, length, temperature, sample_seed)
    return prompt + "".join(vocab[i] for i in out)


EXPERIMENT = Experiment(
    name="char-lm",
    title="A recurrent character-level language model on Tiny Shakespeare",
    slides="31-35",
    claim="An RNN language model predicts one character at a time from a hidden state that can carry "
    "information from far back, so it beats fixed-context models; gated units (LSTM) train better than a "
    "vanilla RNN; sampled, it writes Shakespeare-like text",
    config=CharLMRunConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "Recurrent models vs fixed-context baselines (Tiny Shakespeare, characters)",
            tuple(v.name for v in VARIANTS),
            (
                "val_loss",
                "val_bpc",
                "best_val_loss",
                "train_loss",
                "params",
                "kchars_per_second",
                "clipped_fraction",
                "diverged",
                "wall_time",
            ),
            "Loss: cross-entropy of the next character in nats (bits = nats / ln 2) on the validation text, "
            "read as parallel streams, each from a zero state with its state carried to its end (the last few "
            "characters, beyond the equal streams, are not scored; the run records say how many are). Train "
            "loss: mean over the last epoch's chunks (dropout on where the profile uses it). Train kchars/s: "
            "thousands of characters through forward, backward and update per second of training steps (the "
            "bigram only looks its table up). Steps clipped: fraction of steps whose global gradient norm "
            "exceeded the clip norm. The published figure is nanoGPT's 6-layer transformer (10.7M parameters) on "
            "the same split, a different and larger model: a scale, not a target for the quick profile. Each "
            "model's generated sample is in the plot below and in its run record (`sample`).",
        ),
    ),
    references=(
        Reference(
            "lstm",
            "val_loss",
            1.4697,
            "nanoGPT shakespeare-char transformer, val loss nats/char (not an LSTM)",
        ),
    ),
    plot=plot,
)
