"""Slides 38-39: Learning to Execute (Zaremba & Sutskever 2014).

"An LSTM can learn to read a short Python program one character at a time and write out what it prints;
it helps to train on a curriculum of easier programs, and the best curriculum mixes easy and hard
examples (combined); raising the difficulty step by step (naive) can be worse than no curriculum at all."

Programs come from ``datamodules/programs.py`` (the paper's generator: six operations, literals up to
10**length, ``nesting`` operations chained), fresh every epoch; the curricula and their level schedule
from ``datamodules/execute.py``; the models from ``lightning_modules/execute.py``. Each variant is one task
at one target difficulty with one curriculum; the test programs (the test split of the generator's hash
split, at the target) are the same for every run.
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field

from datamodules.execute import CURRICULA, ProgramDataConfig, ProgramDataModule
from experiments.claims import Compare, any_of, higher
from experiments.plots import pyplot, save_figure
from experiments.spec import Claim, Experiment, Profile, Reference, Table, TrainConfig, Variant
from lightning_modules.execute import ExecuteModelConfig, ExecuteOptimConfig, ProgramExecutor


@dataclass
class ExecuteRunConfig:
    """Defaults are the paper's: batch 100, 2 x 400 LSTM, SGD lr 0.5, clip 5, target length 6, nesting 3."""

    data: ProgramDataConfig = field(default_factory=ProgramDataConfig)
    model: ExecuteModelConfig = field(default_factory=ExecuteModelConfig)
    optim: ExecuteOptimConfig = field(default_factory=ExecuteOptimConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=200, channels_last=False))


def build(cfg: ExecuteRunConfig, seed: int):
    data = ProgramDataModule(cfg.data, seed=seed)
    return ProgramExecutor(cfg.model, cfg.optim, cfg.data, data.curriculum), data


# ----------------------------------------------------------------------------- variants
# (task, length, nesting): the targets. quick runs the small ones on a CPU; full the paper-scale grid.
QUICK_TARGETS = (("program", 1, 2), ("addition", 3, 1))
FULL_TARGETS = (("program", 4, 2), ("program", 4, 3), ("program", 6, 2), ("program", 6, 3), ("addition", 9, 1))
CURRICULUM_TEXT = {
    "baseline": "no curriculum: every example at the target",
    "naive": "naive curriculum: from length 1, nesting 1, one step harder whenever progress stalls",
    "mix": "mix: length and nesting uniform in [1, target] per example",
    "combined": "combined: per example, mix with probability 1/5, else naive",
}


def target_name(task: str, length: int, nesting: int) -> str:
    return f"program-{length}x{nesting}" if task == "program" else f"{task}-{length}"


def _target_text(task: str, length: int, nesting: int) -> str:
    if task == "program":
        return f"programs of length {length} (literals up to 10^{length}), nesting {nesting}"
    return f"addition of two {length}-digit numbers" if task == "addition" else f"copying {length} digits"


def _variant(target: tuple[str, int, int], curriculum: str, kind: str = "lstm") -> Variant:
    task, length, nesting = target
    name = f"{target_name(*target)}-{curriculum}" + ("-seq2seq" if kind == "seq2seq" else "")
    model = "encoder-decoder LSTMs (slide 37)" if kind == "seq2seq" else "one LSTM reads, then writes (the paper)"
    return Variant(
        name,
        f"{_target_text(*target)}; {CURRICULUM_TEXT[curriculum]}; {model}",
        {
            "data.task": task,
            "data.length": length,
            "data.nesting": nesting,
            "data.curriculum": curriculum,
            "model.kind": kind,
        },
    )


TARGETS = tuple(dict.fromkeys(QUICK_TARGETS + FULL_TARGETS))
VARIANTS = tuple(_variant(t, c) for t in TARGETS for c in CURRICULA) + tuple(
    _variant(t, "combined", "seq2seq") for t in TARGETS
)


def _names(targets, seq2seq: tuple[str, int, int] | None = None) -> tuple[str, ...]:
    names = tuple(f"{target_name(*t)}-{c}" for t in targets for c in CURRICULA)
    return names + ((f"{target_name(*seq2seq)}-combined-seq2seq",) if seq2seq else ())


# quick and long, on a CPU: Adam (the paper's SGD learns too slowly for these budgets), small epochs and sets
CPU_RECIPE = {
    "optim.optimizer": "adam",
    "optim.lr": 0.01,
    "optim.stop_lr": 2e-5,  # the paper's end of training, 1e-3 at lr 0.5, is 28 decays: so is this
    "data.steps_per_epoch": 20,
    "data.val_size": 300,
    "data.test_size": 1000,
    "train.threads": 1,
}

PROFILES = (
    Profile(
        "smoke",
        "a 2 x 16 LSTM, 3 epochs of 4 batches of 8 programs: checks the plumbing only",
        seeds=1,
        variants=_names(QUICK_TARGETS[:1], QUICK_TARGETS[0]),
        overrides={
            "data.batch_size": 8,
            "data.steps_per_epoch": 4,
            "data.val_size": 16,
            "data.test_size": 24,
            "data.eval_batch_size": 16,
            "model.hidden": 16,
            "train.max_epochs": 3,
            "train.log_every_n_steps": 1,
        },
    ),
    Profile(
        "quick",
        "small targets for 2 CPU cores: programs of length 1, nesting 2, and addition of 3-digit numbers; the "
        "paper's model narrowed to 2 x 96 and trained with Adam at lr 1e-2 (the paper's SGD at 0.5 learned "
        "too slowly for this budget: addition of 4-digit numbers, 600 steps, test character accuracy 38.6% "
        "against 41.3% with Adam at 3e-3, seed 0); 28 epochs of 20 batches of 100 (56,000 programs); "
        "validation on 300 programs per level, test on 1,000; the encoder-decoder on the addition target. At this "
        "budget the models have not yet learned to execute (a few % of whole answers right), so the curricula's "
        "ordering is not expected to show here: the full profile is the test",
        seeds=3,
        variants=_names(QUICK_TARGETS, QUICK_TARGETS[1]),
        overrides={
            **CPU_RECIPE,
            "model.hidden": 96,
            "train.max_epochs": 28,
        },
        cpu_jobs=2,
    ),
    Profile(
        "long",
        "the quick profile's addition target trained 3.6 times longer on 2 CPU cores (measured: 22 minutes for "
        "seeds 0-2, 11.5 more for seeds 3-4): a 2 x "
        "128 LSTM, Adam at lr 1e-2, 100 epochs of 20 batches of 100 (200,000 programs), long enough for the "
        "curricula to separate (in a trial, seed 0: baseline 41.7% and combined 66.5% test character accuracy)",
        seeds=5,
        variants=_names(QUICK_TARGETS[1:], QUICK_TARGETS[1]),
        overrides={
            **CPU_RECIPE,
            "model.hidden": 128,
            "train.max_epochs": 100,
        },
        cpu_jobs=2,
    ),
    Profile(
        "full",
        "the paper's model and recipe (2 x 400 LSTM, SGD lr 0.5, batch 100, clip 5) on the paper-scale grid: "
        "programs of length 4 and 6 at nesting 2 and 3 and addition of 9-digit numbers under every curriculum, "
        "and the encoder-decoder on programs 6x3; sized for one 15-minute GPU session: 80 epochs of 100 "
        "batches (800,000 programs) per run, the 21 runs at once on one GPU (`bench/gpu_execute.sh`), each "
        "run's training capped at 8 minutes (the steps column shows where the cap came first). Far shorter "
        "than the paper's training: a test of the curricula's early ordering, not of its 99%",
        seeds=1,
        variants=_names(FULL_TARGETS, ("program", 6, 3)),
        overrides={"train.max_epochs": 80, "train.max_minutes": 8.0},
    ),
    Profile(
        "gpu-short",
        "the start of the full profile, sized for one 15-minute GPU session: its model and recipe (2 x 400 "
        "LSTM, SGD lr 0.5, batch 100, clip 5) on two of its targets, addition of 9-digit numbers and programs "
        "of length 4, nesting 2, the eight runs at once on one GPU, each stopped after 2 minutes of training "
        "(`train.max_minutes`; the steps column says how far each got). It measures the full profile's speed "
        "and how far the curricula get in that time, not the paper's end point",
        seeds=1,
        variants=_names((("addition", 9, 1), ("program", 4, 2))),
        overrides={"train.max_minutes": 2.0},
    ),
)


# ----------------------------------------------------------------------------- claims
TARGET_NAMES = tuple(target_name(*t) for t in TARGETS)


def _beats(better: str, worse: str) -> Compare:
    """Test char accuracy of ``better`` minus ``worse``, pooled over every (target, seed) pair that ran."""
    return higher(
        "test_acc",
        tuple(f"{t}-{better}" for t in TARGET_NAMES),
        than=tuple(f"{t}-{worse}" for t in TARGET_NAMES),
        what=f"test char accuracy, {better} minus {worse}, pooled over (target, seed) pairs",
    )


CLAIMS = (
    Claim(
        "38-39",
        "The combined curriculum beats no curriculum (baseline) in test accuracy",
        _beats("combined", "baseline"),
    ),
    Claim("38-39", "The combined curriculum beats the naive curriculum", _beats("combined", "naive")),
    Claim("38-39", "The combined curriculum beats mix", _beats("combined", "mix")),
    Claim(
        "38-39",
        "The naive curriculum is *sometimes* worse than no curriculum at all: below baseline at some target "
        "(contradicted only if it is above baseline at every target run)",
        any_of(*(higher("test_acc", f"{t}-baseline", than=f"{t}-naive") for t in TARGET_NAMES)),
    ),
)

METRICS = {
    "test_acc": "char accuracy (teacher forcing, %)",
    "test_exact": "whole answers right (greedy, %)",
    "best_val_acc": "best val char accuracy (%)",
    "train_acc": "train char accuracy (last epoch, %)",
    "level_length": "final level: length",
    "level_nesting": "final level: nesting",
    "final_lr": "final lr",
    "chars_per_second": "train chars/s",
    "steps": "steps",
    "wall_time": "train time (s)",
}


def _tables() -> tuple[Table, ...]:
    tables = []
    for t in TARGETS:
        name = target_name(*t)
        variants = tuple(f"{name}-{c}" for c in CURRICULA) + tuple(
            v.name for v in VARIANTS if v.name == f"{name}-combined-seq2seq"
        )
        tables.append(
            Table(
                f"{_target_text(*t)}",
                variants,
                (
                    "test_acc",
                    "test_exact",
                    "best_val_acc",
                    "train_acc",
                    "level_length",
                    "level_nesting",
                    "steps",
                    "chars_per_second",
                ),
                caption="Character accuracy is the paper's measure: the share of answer characters (end mark "
                "included) predicted right when every earlier answer character is given (teacher forcing). Whole "
                "answers right: the model writes the answer from its own previous characters (greedy) and all of "
                "it, end mark included, must equal the target. The final level is the naive schedule's (length, "
                "nesting) at the end; under baseline and mix it only chooses validation programs and delays the "
                "learning-rate decay. Steps: batches trained on (a profile with `train.max_minutes` stops runs by "
                "time, so their steps differ). Training speed depends on what else ran at the same time.",
            )
        )
    return tuple(tables)


REFERENCES = (
    # in the table's unit (%), like every published figure
    Reference(
        "addition-9-combined",
        "test_acc",
        99,
        "Zaremba & Sutskever 2014",
        setting="2 x 400 LSTM, SGD lr 0.5, trained until the learning rate, decayed by 0.8 at every stall, falls "
        "below 1e-3; the combined curriculum; character accuracy under teacher forcing",
        why_not={
            "full": "8,000 steps with the learning rate never decayed; the paper trains until its lr rule ends",
            "gpu-short": "2 minutes of training; the paper trains until its lr rule ends",
        },
    ),
)


# ----------------------------------------------------------------------------- plot
def plot(exp: Experiment, by_variant: dict[str, list[dict]], path, profile: str) -> None:
    """Top: validation character accuracy at the target (solid) and whole answers right (dashed) against
    training steps, one panel per target, a line per curriculum (mean over seeds). Bottom: test programs
    with a model's greedy answers (the slide-39 table)."""
    plt = pyplot()
    targets = [target_name(*t) for t in TARGETS if any(n.startswith(target_name(*t) + "-") for n in by_variant)]
    fig = plt.figure(figsize=(6 * max(1, len(targets)), 11))
    grid = fig.add_gridspec(2, max(1, len(targets)), height_ratios=[1, 1])
    for i, target in enumerate(targets):
        ax = fig.add_subplot(grid[0, i])
        for name in [n for n in (v.name for v in exp.variants) if n.startswith(target + "-") and n in by_variant]:
            recs = [r for r in by_variant[name] if r["history"]]
            if not recs:
                continue
            epochs = min(len(r["history"]) for r in recs)
            x = [recs[0]["history"][e]["steps"] for e in range(epochs)]
            color = None
            for key, style in (("val_acc", "-"), ("val_exact", "--")):
                y = [100 * statistics.fmean(r["history"][e][key] for r in recs) for e in range(epochs)]
                label = name[len(target) + 1 :] if key == "val_acc" else None
                color = ax.plot(x, y, style, color=color, label=label)[0].get_color()  # dashed: same colour
        ax.set(xlabel="training steps", ylabel="validation accuracy at the target (%)", title=target, ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, title="solid: characters (teacher forcing); dashed: whole answers (greedy)",
                  title_fontsize=7)  # fmt: skip
    text = fig.add_subplot(grid[1, :])
    text.axis("off")
    lines = []
    for target in targets:
        name = f"{target}-combined"
        if name not in by_variant:
            continue
        rec = min(by_variant[name], key=lambda r: r["seed"])
        lines.append(f"--- {name}, seed {rec['seed']}: test programs and the model's greedy answers ---")
        for ex in (rec.get("examples") or [])[:3]:
            lines += textwrap.indent(ex["input"], "    ").splitlines()
            mark = "right" if ex["right"] else "wrong"
            lines.append(f"    target: {ex['target']}   model: {ex['greedy']}   ({mark})")
        lines.append("")
    text.text(0, 1, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8, parse_math=False,
              transform=text.transAxes)  # fmt: skip
    fig.suptitle(f"{exp.title} ({profile} profile)")
    fig.tight_layout()
    save_figure(fig, path)


EXPERIMENT = Experiment(
    name="learning-to-execute",
    title="Learning to Execute: programs in, printed output out, with curricula",
    slides="38-39",
    claim="An LSTM can learn to evaluate short programs read one character at a time; a curriculum that mixes "
    "easy and hard examples (combined) trains best, and raising the difficulty step by step (naive) can be "
    "worse than no curriculum",
    config=ExecuteRunConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    build=build,
    tables=_tables(),
    references=REFERENCES,
    metrics=METRICS,
    plot=plot,
)
