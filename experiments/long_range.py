"""Slides 49-53: long short-term memory.

"A vanilla RNN's gradient through time is a product of Jacobians, so it vanishes over long spans and the
network cannot learn long-range dependencies. The LSTM's memory cell c_t = f_t * c_{t-1} + i_t * g_t
carries information (and its gradient) across many steps: with the forget gate at 1 and the input gate
at 0 it passes the gradient back unchanged (slide 51)."

The adding problem (Le, Jaitly & Hinton 2015's variant, ``datamodules/adding.py``): read T pairs (value,
marker), output the sum of the two marked values, one marked in each half of the sequence. Predicting
the constant 1 gives MSE 1/6; a run has solved the task when its final test MSE is below 1/10 of that
(``solved_below`` = 1/60). Four cells (``lightning_modules/sequence_regressor.py``): the tanh RNN, the
IRNN (ReLU with identity recurrent init, Le et al.), the LSTM and the GRU (slide 52's gated unit with no
separate memory cell: its update gate interpolates between the old state and a new candidate, so with the
gate near 1 the state, and its gradient, pass through unchanged), at several lengths T. Every LSTM run
also checks the slide-51 exercise on its trained cell, in float64.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass, field

from datamodules.configs import ADDING_GUESS_MSE, AddingConfig
from engine import stats
from engine.claims import Compare, identity, lower
from engine.spec import TABLE_SEEDS, Check, Claim, Experiment, Profile, Results, Table, TrainConfig, Variant
from engine.stats import Verdict
from experiments.figures.long_range import plot
from lightning_modules.configs import SequenceModelConfig, SequenceOptimConfig

SOLVED_FRACTION = 0.1  # solved: final test MSE below this fraction of the constant guess's 1/6


@dataclass
class LongRangeConfig:
    data: AddingConfig = field(default_factory=AddingConfig)
    model: SequenceModelConfig = field(default_factory=SequenceModelConfig)
    # Adam at 1e-2: an LSTM solved T = 100 in 1,100 steps (64 units, batch 32); at 1e-3 not within 1,500
    optim: SequenceOptimConfig = field(default_factory=lambda: SequenceOptimConfig(lr=0.01, clip=1.0))
    # an epoch is data.steps_per_epoch training steps, then one evaluation on the test set
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=300, channels_last=False))
    solved_below: float = SOLVED_FRACTION * ADDING_GUESS_MSE


def build(cfg: LongRangeConfig, seed: int):
    from datamodules.adding import AddingDataModule
    from lightning_modules.sequence_regressor import SequenceRegressor

    return SequenceRegressor(cfg.model, cfg.optim, cfg.solved_below), AddingDataModule(cfg.data, seed=seed)


CELL_NAMES = {"rnn": "tanh RNN", "irnn": "IRNN (ReLU, identity init)", "lstm": "LSTM", "gru": "GRU"}
# The IRNN's own learning rate, fixed before its table's runs: at the suite's 1e-2 it diverged at its second step
# (T = 100, 3 of 3 seeds). The largest of 1e-3, 3e-4 and 1e-4 that trained stably in a pilot run on a seed outside
# the tables (seed 100, quick, T = 100, 2026-11-29): test MSE 0.0092 at 1e-3, 0.015 at 3e-4, 0.066 at 1e-4, none
# diverged. (The tanh RNN at 1e-3 in the same pilot stayed at the constant guess: 0.18, as at 1e-2.)
CELL_LR = {"irnn": 1e-3}
LENGTHS = (50, 100, 200, 400)
VARIANTS = tuple(
    Variant(
        f"{cell}-{length}",
        f"{CELL_NAMES[cell]}, sequences of T = {length} steps"
        + (f", Adam lr {CELL_LR[cell]:g} (stable for it)" if cell in CELL_LR else ""),
        {"model.cell": cell, "data.length": length, **({"optim.lr": CELL_LR[cell]} if cell in CELL_LR else {})},
    )
    for length in LENGTHS
    for cell in CELL_NAMES
)


def _names(*lengths: int) -> tuple[str, ...]:
    return tuple(f"{cell}-{length}" for length in lengths for cell in CELL_NAMES)


PROFILES = (
    Profile(
        "smoke",
        "8 hidden units, 2 epochs of 5 batches of 16, T = 50: checks the plumbing only",
        seeds=1,
        overrides={
            "model.hidden": 8,
            "data.batch_size": 16,
            "data.steps_per_epoch": 5,
            "data.test_size": 64,
            "data.eval_batch_size": 64,
            "train.max_epochs": 2,
            "train.log_every_n_steps": 1,
        },
        variants=_names(50),
    ),
    Profile(
        "quick",
        "64 hidden units; T = 50 (tanh RNN, LSTM) and T = 100 (all four); 1,000 Adam steps (lr 1e-2, the IRNN "
        "1e-3; clip 1) on fresh batches of 128, test MSE on 1,000 fixed sequences every 100 steps",
        seeds=3,
        first_seed=TABLE_SEEDS,
        overrides={
            "model.hidden": 64,
            "data.batch_size": 128,  # at 32, one LSTM seed of three was still on the 1/6 plateau after 1,500 steps
            "data.steps_per_epoch": 100,
            "data.test_size": 1000,
            "train.max_epochs": 10,
            "train.log_every_n_steps": 20,
            "train.threads": 1,
        },
        variants=("rnn-50", "lstm-50", *_names(100)),
        cpu_jobs=2,
        power=(
            "3 seeds, about 5 min (4.8 at 96a4006). In the committed runs before 2026-11-28 the LSTM solved "
            "T = 100 in 3 of 3 seeds and the tanh RNN in 0 of 3 (test MSE 111% of the constant guess's above the "
            "LSTM's, 95% "
            "CI +-36 pts): 3 seeds decide it. The IRNN (Le et al., beyond the slides) diverged at lr 1e-2 (at "
            "T = 100 in 3 of 3 seeds, at its second step, 2026-11-28), which left its comparison undecided: it "
            "trains at its own lr 1e-3 since 2026-11-29, chosen before its runs from a pilot on seed 100 (see "
            "CELL_LR). In that pilot it solved T = 100 (MSE 0.0092, 5.5% of 1/6) where the tanh RNN at the "
            "same lr stayed at 108% (as at 1e-2, so the lower lr is no handicap for it): if the seeds spread like "
            "the LSTM's (95% CI +-21 pts of the LSTM-RNN gap), 3 seeds decide a gap of that size. The GRU "
            "(slide 52) joined on 2026-12-06, its claim fixed before any of its runs; its pilot (seeds 0-2, the "
            "`pilot` profile, at 206f9a9) solved T = 100 in 3 of 3 runs (test MSE 0.12-0.15% of the constant "
            "guess's) where the tanh RNN of the same seeds stayed at 99-116%: a paired gap of 109 pts, sd 8.5, so "
            "3 seeds decide it (95% half width about 21 pts)."
        ),
    ),
    Profile(
        "full",
        "128 hidden units, T = 50 to 400, 30,000 Adam steps (lr 1e-2, the IRNN 1e-3; clip 1) on fresh batches of "
        "50, test MSE on 2,000 fixed sequences every 100 steps; for a GPU",
        seeds=3,
        first_seed=TABLE_SEEDS,  # a table: seeds no pilot used
        overrides={"model.hidden": 128},
    ),
)


# ----------------------------------------------------------------------------- claims
def _runs(results: Results, variant: str) -> set[int]:
    return set(results.get(variant, "test_mse")) | set(results.get(variant, "diverged"))


def _longest(results: Results, *cells: str) -> int | None:
    """The longest length at which every one of ``cells`` has runs (the profile decides which lengths run): a run
    has a test MSE, or (diverged) none."""
    done = [n for n in LENGTHS if all(_runs(results, f"{c}-{n}") for c in cells)]
    return done[-1] if done else None


def _mse_lower(better: str, than: str, length: int) -> Compare:
    return lower(
        "test_mse",
        f"{better}-{length}",
        than=f"{than}-{length}",
        scale=100 / ADDING_GUESS_MSE,
        unit=" pts",
        what=f"T = {length}: test MSE {than} minus {better}, in % of 1/6",
    )


@dataclass(frozen=True)
class AtLongest:
    """A claim about two cells, decided at the longest length both were run at. A diverged run's test MSE (as
    large as 1e21) is no score to average: a run that diverged leaves the claim undecided, and says so."""

    better: str
    than: str

    def __call__(self, results: Results) -> Verdict:
        length = _longest(results, self.better, self.than)
        if length is None:
            return stats.no_runs(f"needs runs of {self.better}-T and {self.than}-T")
        cells = (self.better, self.than)
        diverged = {c: sum(v > 0 for v in results.get(f"{c}-{length}", "diverged").values()) for c in cells}
        if any(diverged.values()):
            runs = ", ".join(
                f"{c} {diverged[c]} of {len(_runs(results, f'{c}-{length}'))}" for c in cells if diverged[c]
            )
            text = (
                f"T = {length}: runs diverged ({runs}), so no mean difference is measured; runs that train "
                "stably (a smaller learning rate) would decide it"
            )
            return Verdict("inconclusive", text, "none: a run diverged")
        return _mse_lower(self.better, self.than, length)(results)

    def example(self, holds: bool) -> Results:
        return _mse_lower(self.better, self.than, LENGTHS[1]).example(holds)


def _solved_where_rnn_is_not(results: Results) -> Verdict:
    """Per seed: the LSTM run solved the task and the tanh RNN run of the same seed did not."""
    length = _longest(results, "rnn", "lstm")
    if length is None:
        return stats.no_runs("needs runs of rnn-T and lstm-T")
    lstm, rnn = (results.get(f"{c}-{length}", "solved_pct") for c in ("lstm", "rnn"))
    seeds = sorted(set(lstm) & set(rnn))
    failed = [s for s in seeds if not (lstm[s] > 0 and rnn[s] == 0)]
    rnn_mse = statistics.fmean(results.get(f"rnn-{length}", "test_mse").values() or [math.nan])  # all diverged
    text = (
        f"T = {length}: LSTM solved {sum(v > 0 for v in lstm.values())}/{len(lstm)} runs, tanh RNN "
        f"{sum(v > 0 for v in rnn.values())}/{len(rnn)} (RNN mean test MSE {rnn_mse:.4f}; constant guess "
        f"{ADDING_GUESS_MSE:.4f})"
    )
    return stats.every_seed(seeds, failed, text)


def _counter_solved() -> Results:
    seeds = range(3)
    return Results(
        {
            "lstm-100": {"solved_pct": {s: 100.0 for s in seeds}, "test_mse": {s: 0.001 for s in seeds}},
            "rnn-100": {"solved_pct": {s: 100.0 for s in seeds}, "test_mse": {s: 0.001 for s in seeds}},
        }
    )


CHECKS = (
    Check(
        "51",
        "With the forget gate at 1 and the input gate at 0, the memory cell passes its gradient back unchanged: "
        "dc_T/dc_1 = I exactly",
        identity(
            "forced_carry_deviation",
            "max |dc_T/dc_1 - I| over the trained LSTM cells with f = 1, i = 0 forced (float64, one test sequence "
            "each, T steps)",
        ),
    ),
)

CLAIMS = (
    Claim(
        "49-53",
        "An LSTM learns the long-range dependency better than a vanilla (tanh) RNN: lower test MSE at the longest "
        "length run",
        AtLongest("lstm", "rnn"),
    ),
    Claim(
        "49-53",
        f"At that length the LSTM solves the adding problem (test MSE < {SOLVED_FRACTION:g} x 1/6) in every run "
        "while the tanh RNN solves it in none",
        _solved_where_rnn_is_not,
        _counter_solved,
    ),
    Claim(
        "49-53",
        "(Le et al. 2015, beyond the slides) A ReLU RNN with identity init (IRNN) does better than the tanh RNN",
        AtLongest("irnn", "rnn"),
    ),
    Claim(
        "52",
        "The GRU, gated like the LSTM but with no separate memory cell, also learns the long-range dependency "
        "better than the vanilla (tanh) RNN: lower test MSE at the longest length run",
        AtLongest("gru", "rnn"),
    ),
)

METRICS = {
    "test_mse": "test MSE",
    "mse_pct_of_guess": "test MSE (% of 1/6)",
    "solved_pct": "solved (% of runs)",
    "steps_to_solve": "steps to solve (solved runs)",
    "diverged": "diverged (1 = yes)",
    "forced_carry_deviation": "max abs(dc_T/dc_1 - I), f=1, i=0",
    "carry_gain": "norm of dc_T/dc_1 (trained)",
    "wall_time": "train time (s)",
}


EXPERIMENT = Experiment(
    name="long-range",
    title="LSTM vs vanilla RNNs on a long-range dependency (the adding problem)",
    slides="49-53",
    claim="A vanilla RNN's gradient vanishes over long time spans, so it cannot learn long-range dependencies; "
    "the LSTM's memory cell (forget gate 1, input gate 0: c_t = c_{t-1}) carries information and gradients "
    "across many steps; the GRU, gated with no separate memory cell, learns them too",
    config=LongRangeConfig,
    variants=VARIANTS,
    profiles=PROFILES,
    claims=CLAIMS,
    checks=CHECKS,
    build=build,
    metrics=METRICS,
    tables=(
        Table(
            "The adding problem: final test MSE by model and sequence length",
            tuple(v.name for v in VARIANTS),
            ("mse_pct_of_guess", "solved_pct", "steps_to_solve", "diverged", "wall_time"),
            f"Test MSE as a percentage of the constant guess's (predict 1) 1/6 = {ADDING_GUESS_MSE:.4f}: 100 means "
            "nothing learned. Solved: final test MSE below "
            f"{SOLVED_FRACTION:g} x 1/6 = {SOLVED_FRACTION * ADDING_GUESS_MSE:.4f}. Steps to solve: the first "
            "evaluation (every epoch of training steps) below that threshold, averaged over the runs that reached "
            "it. The test set is fixed per seed and never used to select anything.",
        ),
        Table(
            "Slide 51 on the trained LSTMs: the memory cell's gradient dc_T/dc_1",
            tuple(f"lstm-{n}" for n in LENGTHS),
            ("forced_carry_deviation", "carry_gain"),
            "Each trained LSTM cell in float64 over the first test sequence: with its forget-gate bias set to +1000 "
            "and its input-gate bias to -1000 (sigmoid then rounds to exactly 1 and 0), the largest entry of "
            "abs(dc_T/dc_1 - I); and, as trained, the spectral norm of dc_T/dc_1.",
        ),
    ),
    plot=functools.partial(plot, cells=CELL_NAMES, lengths=LENGTHS, solved_fraction=SOLVED_FRACTION),
)
