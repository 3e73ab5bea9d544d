"""The configs of the networks, optimizers and LightningModules (and the metric names experiments declare tables
with): plain dataclasses, importable without torch. The modules that read them import them from here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MLPConfig:
    hidden: tuple[int, ...] = (1024, 1024, 2048)
    input_dropout: float = 0.0  # the paper's MNIST nets: 0.2
    hidden_dropout: float = 0.0  # the paper's MNIST nets: 0.5
    max_norm: float = 0.0  # > 0: after every step, each hidden unit's incoming weights get norm <= max_norm
    bottleneck: int = 0  # > 0: a linear layer of this width (no bias, no nonlinearity) right after the input
    activation: str = "relu"  # relu | sigmoid (the logistic: near-linear while its inputs are small, slide 15)
    # "" | batch: batch normalization after each hidden linear layer, normalizing with each mini-batch's statistics
    # while training | fixed: the same layer normalizing with its running statistics instead (no batch noise)
    batch_norm: str = ""

    def validate(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError("hidden must list one or more layer widths >= 1")
        if self.activation not in ("relu", "sigmoid"):
            raise ValueError("activation must be relu or sigmoid")
        if self.batch_norm not in ("", "batch", "fixed"):
            raise ValueError("batch_norm must be empty, batch or fixed")
        if not (0 <= self.input_dropout < 1 and 0 <= self.hidden_dropout < 1):
            raise ValueError("dropout rates must be in [0, 1)")
        if self.max_norm < 0 or self.bottleneck < 0:
            raise ValueError("max_norm and bottleneck must be >= 0")


@dataclass
class ResNetConfig:
    depth: int = 20  # 6n+2: 8, 14, 20, 32, 44, 56, 110, ...
    width: int = 16  # filters in the first stage (then 2x, 4x)
    residual: bool = True  # False: the same net without shortcuts (a "plain" net)
    zero_init_residual: bool = False  # zero the last BN scale of each block, so each block starts as F(x)=0

    def validate(self) -> None:
        if self.depth < 8 or (self.depth - 2) % 6:
            raise ValueError("depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)")
        if self.width < 1:
            raise ValueError("width must be >= 1")


@dataclass
class OptimConfig:
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"  # step: /10 at each milestone | cosine | constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training, for "step"
    warmup: float = 0.0  # fraction of training with a linear warm-up from 0
    l1: float = 0.0  # L1 penalty l1 * sum |w| on weight matrices and kernels (not biases), added to the loss

    def validate(self) -> None:
        if self.schedule not in ("step", "cosine", "constant"):
            raise ValueError("schedule must be step, cosine or constant")
        if self.lr <= 0 or self.weight_decay < 0 or self.l1 < 0 or not 0 <= self.momentum < 1:
            raise ValueError("need lr > 0, weight_decay >= 0, l1 >= 0, 0 <= momentum < 1")
        if not 0 <= self.warmup < 1 or any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("warmup and milestones are fractions of training in [0, 1)")


# Position of a character within its line: the characters since the last newline, so 0 is a line's first
# character and the newline that ends a line counts at the line's length. Buckets by lower edge:
# 0, 1, 2, 3, 4-7, 8-15, 16-31, 32+ (Tiny Shakespeare's verse lines are mostly 30-50 characters long).
LINE_POSITION_EDGES = (0, 1, 2, 3, 4, 8, 16, 32)


LINE_POSITION_LABELS = ("0", "1", "2", "3", "4-7", "8-15", "16-31", "32+")


LINE_POSITION_METRICS = tuple(
    f"line_pos_loss_{label.replace('-', '_').replace('+', '_up')}" for label in LINE_POSITION_LABELS
)  # line_pos_loss_0 ... line_pos_loss_4_7 ... line_pos_loss_32_up


# Target characters whose mean loss is recorded: "\n" (where a line ends needs its length so far) and ":"
# (in the validation text 74% of the 1,272 colons end a speaker's name, a line begun after a blank line, and
# most names are longer than 3 characters; another 12% end a verse line).
PROBE_TARGETS = {"newline_loss": "\n", "colon_loss": ":"}


LONG_RANGE_METRICS = (*LINE_POSITION_METRICS, "line_start_loss", "line_rest_loss", *PROBE_TARGETS)


RECURRENT_KINDS = ("rnn", "lstm", "gru")


KINDS = (*RECURRENT_KINDS, "mlp", "bigram")


@dataclass
class CharModelConfig:
    kind: str = "lstm"  # rnn | lstm | gru | mlp | bigram
    embed: int = 128
    layers: int = 2  # recurrent layers
    # hidden units per kind, chosen so that rnn, lstm, gru and mlp have about the same parameter count
    rnn_hidden: int = 1040
    lstm_hidden: int = 512
    gru_hidden: int = 595
    mlp_hidden: int = 7680
    context: int = 3  # mlp: characters of context
    dropout: float = 0.0  # between recurrent layers and before the head

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if min(self.embed, self.layers, self.rnn_hidden, self.lstm_hidden, self.gru_hidden, self.mlp_hidden) < 1:
            raise ValueError("sizes must be >= 1")
        if self.context < 1 or not 0 <= self.dropout < 1:
            raise ValueError("need context >= 1 and 0 <= dropout < 1")


@dataclass
class LMOptimConfig:
    """AdamW (nanoGPT's choice for Tiny Shakespeare: betas 0.9, 0.99), global-norm clipping, cosine decay."""

    lr: float = 2e-3
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # clip the global gradient norm to this (0: no clipping); nanoGPT's value
    schedule: str = "cosine"  # cosine (to lr/10 at the end, as nanoGPT) | constant
    warmup_steps: int = 0

    def validate(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0 or self.clip_norm < 0 or self.warmup_steps < 0:
            raise ValueError("need lr > 0, weight_decay >= 0, clip_norm >= 0, warmup_steps >= 0")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError("schedule must be cosine or constant")


@dataclass
class SampleConfig:
    """The text generated at the end of training for the run record (slide 35's demonstration)."""

    prompt: str = "ROMEO:"  # characters outside the vocabulary are dropped (a newline if none is left)
    length: int = 200
    temperature: float = 0.8
    seed: int = 0
    # characters generated (the same prompt, temperature and seed) to measure the share of known words, slide 35's
    # "Shakespeare-like" as a number; 0: none. Added after runs were recorded: left out of the config while 0
    # (engine/config.py's ADDED_LATER), so their identities stand
    words_length: int = field(default=0, metadata={"added_later": True})

    def validate(self) -> None:
        if self.length < 0 or self.temperature < 0 or self.words_length < 0:
            raise ValueError("need length >= 0, words_length >= 0 and temperature >= 0")


CELLS = ("rnn", "irnn", "lstm", "gru")


@dataclass
class SequenceModelConfig:
    cell: str = "lstm"  # rnn (tanh) | irnn (ReLU, identity init) | lstm | gru (PyTorch's default init)
    hidden: int = 128
    # LSTM only: initial forget-gate bias (PyTorch's default init gives about 0, i.e. f about 0.5 per step); 1.0 is
    # the usual LSTM practice (Gers et al. 2000, Jozefowicz et al. 2015): the cell starts out remembering
    forget_bias: float = 1.0

    def validate(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}")
        if self.hidden < 1:
            raise ValueError("hidden must be >= 1")


@dataclass
class SequenceOptimConfig:
    lr: float = 1e-3  # Adam
    clip: float = 1.0  # max gradient norm (0: no clipping)

    def validate(self) -> None:
        if self.lr <= 0 or self.clip < 0:
            raise ValueError("need lr > 0 and clip >= 0")


# ----------------------------------------------------------------------------- the analysis module
@dataclass
class AnalysisConfig:
    scalar_steps: int = 50  # T of the slide's scalar example
    bptt_steps: int = 8  # the hand-vs-autograd check: sequence length and sizes
    bptt_sizes: tuple[int, ...] = (3, 5, 2)  # inputs m, hidden n, outputs k
    hidden: int = 64  # Jacobian study: hidden units
    max_steps: int = 100  # largest T of ||dh_T/dh_1||
    radii: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)  # spectral radii of W; the orthogonal W is added
    input_std: float = 0.1  # std of each entry of U x_t + b (the input drive)
    logistic_points: int = 20001  # starting points on [0, 1]
    logistic_steps: int = 30  # n of (f^n)'
    small: float = 1e-3  # "near zero" for |(f^n)'|

    def validate(self) -> None:
        if min(self.scalar_steps, self.bptt_steps, self.hidden, self.max_steps, self.logistic_steps) < 1:
            raise ValueError("step counts and sizes must be >= 1")
        if len(self.bptt_sizes) != 3 or min(self.bptt_sizes) < 1 or not self.radii or min(self.radii) <= 0:
            raise ValueError("bptt_sizes is (m, n, k), all >= 1; radii must be > 0")
        if self.logistic_points < 10 or self.input_std < 0:
            raise ValueError("logistic_points must be >= 10 and input_std >= 0")


def radius_key(radius: float | None) -> str:
    return "orth" if radius is None else f"r{radius:g}"


# ----------------------------------------------------------------------------- 5. clipping
@dataclass
class ClipModelConfig:
    hidden: int = 32
    init_radius: float = 1.5  # spectral radius of the initial recurrent matrix (Gaussian, rescaled)


@dataclass
class ClipOptimConfig:
    lr: float = 0.1  # plain SGD, no momentum, constant rate
    clip: float = 0.0  # gradient-norm threshold c; 0: no clipping

    def validate(self) -> None:
        if self.lr <= 0 or self.clip < 0:
            raise ValueError("need lr > 0 and clip >= 0")


# slide 29's example, and a hand-made example for slide 30 (ours: the lead changes hands at every step)
SUMMING_INPUTS = (2.0, -0.5, 1.0, 1.0)


SUMMING_OUTPUTS = (2.0, 1.5, 2.5, 3.5)


COMPARING_INPUTS = ((2.0, 1.0), (-0.5, 1.0), (1.0, -1.0), (1.0, 3.0))  # (input 1, input 2) at each step


# ----------------------------------------------------------------------------- Learning to Execute
EXECUTE_KINDS = ("lstm", "seq2seq")


@dataclass
class ExecuteModelConfig:
    kind: str = "lstm"  # lstm: one LSTM reads, then writes (the paper); seq2seq: encoder + decoder
    hidden: int = 400
    layers: int = 2
    embed: int = 0  # 0: as wide as the LSTM (the original's Embedding(vocab, rnn_size))
    init_scale: float = 0.08  # every weight uniform in [-init_scale, init_scale]
    dropout: float = 0.0  # between LSTM layers (the original code had 0.5 on each layer's input)

    def validate(self) -> None:
        if self.kind not in EXECUTE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(EXECUTE_KINDS)}")
        if self.hidden < 1 or self.layers < 1 or self.embed < 0 or self.init_scale <= 0:
            raise ValueError("hidden and layers must be >= 1, embed >= 0, init_scale > 0")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")


@dataclass
class ExecuteOptimConfig:
    optimizer: str = "sgd"  # sgd (the paper) | adam
    lr: float = 0.5
    clip_norm: float = 5.0  # global gradient norm clipping (0: off)
    decay: float = 0.8  # lr *= decay whenever the curriculum is at its target and progress stalls
    stop_lr: float = 1e-3  # the original's end of training (28 decays from 0.5): stop once the lr falls below this

    def validate(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError("optimizer must be sgd or adam")
        if self.lr <= 0 or self.clip_norm < 0 or not 0 < self.decay <= 1 or self.stop_lr < 0:
            raise ValueError("lr > 0, clip_norm >= 0, decay in (0, 1], stop_lr >= 0")
