"""The configs of the data modules: plain dataclasses (and the names they are checked against), importable
without torch, so that the experiment layer can declare its runs, and `repro list` answer, in a fraction of a
second. The data modules that read them import them from here."""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGE_DATASETS = ("cifar10", "mnist")


# The order in which ``augment`` applies them: the pixel-exact ones as one uint8 gather first, then
# the float ops: warps (local, then global) before the noises, so that noise is never smeared by
# interpolation. An op that is not requested draws nothing from the generator, so adding names here
# leaves the random stream, and so the results, of every older combination exactly as they were.
GEOMETRIC = ("flip", "vflip", "translate")


FLOAT = ("elastic", "rotate", "pixelflip", "noise")


AUGMENTATIONS = GEOMETRIC + FLOAT


# The defaults suit 32x32 photos (CIFAR-10); the augmentation experiment's MNIST variant sets Simard et al.'s own
# alpha 34, sigma 4 for 28x28 digits. Simard et al.'s setting:
# fields that vary over ~4 pixels (an eighth of the image, the scale of a stroke's bend) and move a
# pixel by 1.4 pixels rms per axis, up to ~4 in a typical image: a strong wobble for digits, and it
# would smear CIFAR's small objects and textures. We keep their smoothness scale and halve the
# amplitude: alpha 16, sigma 4 moves a pixel by 0.66 pixels rms per axis, its largest move in a
# typical 32x32 image ~2 pixels (measured over 2,000 fields): a visible bend of strokes and
# outlines that leaves what the image shows intact.
ELASTIC_ALPHA = 16.0


ELASTIC_SIGMA = 4.0


# Inverting 1 pixel in 20 (~50 of CIFAR's 1024, ~40 of MNIST's 784) corrupts an image as plainly as
# the Gaussian noise's std 0.1 does, while leaving nearly all of it intact.
PIXEL_FLIP_PROB = 0.05


@dataclass
class ImageDataConfig:
    dataset: str = "cifar10"  # cifar10 | mnist
    val_size: int = 5000  # held out from the training set (fixed split_seed) for model selection
    train_size: int = 0  # 0: every remaining training image; else a fixed subset of this many
    test_size: int = 0  # 0: the whole test set; else a fixed subset
    # Clean (unaugmented) training error is measured on up to this many of the training images (all of a smaller
    # train_size subset); more than the training images left after val_size is an error, as for the sizes above.
    train_eval_size: int = 5000
    batch_size: int = 128
    eval_batch_size: int = 1000
    augment: tuple[str, ...] = ()  # any of AUGMENTATIONS (applied in that order, whatever the order here)
    pad: int = 4  # translate: pixels of zero padding before the random crop
    rotate_degrees: float = 15.0
    noise_std: float = 0.1
    elastic_alpha: float = ELASTIC_ALPHA  # elastic: scale of the displacement field, in pixels
    elastic_sigma: float = ELASTIC_SIGMA  # elastic: std of its Gaussian smoothing, in pixels
    pixel_flip_prob: float = PIXEL_FLIP_PROB  # pixelflip: chance that each pixel is inverted
    split_seed: int = 0  # the train/val split and subsets; independent of the run seed

    def validate(self) -> None:
        if self.dataset not in IMAGE_DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(IMAGE_DATASETS)}")
        unknown = set(self.augment) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"unknown augmentation {sorted(unknown)[0]!r}; known: {', '.join(AUGMENTATIONS)}")
        for name in ("val_size", "train_size", "test_size", "train_eval_size", "pad"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")
        if not self.elastic_alpha >= 0:  # (written so that NaN fails too)
            raise ValueError("elastic_alpha must be >= 0")
        if not self.elastic_sigma > 0:
            raise ValueError("elastic_sigma must be > 0")
        if not 0 <= self.pixel_flip_prob <= 1:
            raise ValueError("pixel_flip_prob must be in [0, 1]")


@dataclass
class TextDataConfig:
    # tinyshakespeare (char-rnn's file), hf:<name>[:<config>] (the Hugging Face hub) or a local file or folder read
    # through datasets (datamodules/corpus.py: every split's rows joined by "\n", then split as Tiny Shakespeare)
    dataset: str = "tinyshakespeare"
    text_column: str = ""  # hf: and local corpora: the column holding the text ("": the only string column, or "text")
    val_fraction: float = 0.1  # the last 10% of the characters, as nanoGPT
    batch_size: int = 64  # B: parallel streams of the training text
    seq_len: int = 128  # T: characters per chunk (the truncated-BPTT length)
    chunks_per_epoch: int = 0  # 0: one pass over the streams per epoch
    train_chars: int = 0  # 0: the whole training text; else only its first train_chars characters
    # 0: the whole validation text; else the stateful evaluation reads only its first val_chars characters
    # (the random windows are drawn from all of it)
    val_chars: int = 0
    eval_batch_size: int = 32  # streams of the validation (and held-out) text
    eval_seq_len: int = 0  # 0: each validation stream is one chunk (all of it scored, the state never cut)
    # the last holdout_chars characters of the training split, never trained on: they choose the epoch
    # whose weights are reported (0: none held out, the last epoch's weights are reported)
    holdout_chars: int = 0
    # the windowed validation loss (nanoGPT's estimate_loss: block_size 256, 200 batches of 64)
    window_len: int = 256
    windows: int = 12800
    window_batch_size: int = 64
    window_seed: int = 0

    def validate(self) -> None:
        if self.dataset != "tinyshakespeare":
            from datamodules.corpus import check_form  # the form only: no file is read here

            check_form(self.dataset)
        if not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must be in (0, 1)")
        if min(self.batch_size, self.seq_len, self.eval_batch_size) < 1 or self.eval_seq_len < 0:
            raise ValueError("batch sizes and seq_len must be >= 1, eval_seq_len >= 0")
        if min(self.chunks_per_epoch, self.train_chars, self.val_chars, self.holdout_chars) < 0:
            raise ValueError("chunks_per_epoch, train_chars, val_chars and holdout_chars must be >= 0")
        if min(self.window_len, self.windows, self.window_batch_size) < 1:
            raise ValueError("window_len, windows and window_batch_size must be >= 1")


RECALL_GUESS_MSE = 1 / 3  # Var(U[-1, 1]): the MSE of predicting 0, the best constant


@dataclass
class RecallConfig:
    length: int = 100  # T: time steps per sequence
    train_size: int = 2048  # sequences in the fixed training set
    test_size: int = 1024
    batch_size: int = 32

    def validate(self) -> None:
        if self.length < 1 or self.train_size < 1 or self.test_size < 1 or self.batch_size < 1:
            raise ValueError("length, train_size, test_size and batch_size must be >= 1")


TASKS = ("summing", "comparing")


INPUTS = {"summing": 1, "comparing": 2}


@dataclass
class TinyRNNConfig:
    task: str = "summing"  # summing | comparing
    seq_len: int = 10  # training and test sequences
    long_seq_len: int = 100  # a second test set, 10x longer than training: does the learned rule extrapolate?
    batch_size: int = 32
    steps_per_epoch: int = 100  # fresh sequences every step, drawn from the run seed and the epoch
    n_test: int = 1000
    lr: float = 0.01  # Adam; cosine decay to final_lr_fraction * lr over the run
    final_lr_fraction: float = 0.01
    init_scale: float = 1.0  # each trained weight starts ~ U(-init_scale, init_scale)
    hand_output_weight: float = 5.0  # the comparing net's large output weight (summing: 1)
    trace_every: int = 10  # training steps between the weight snapshots the plot draws

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}")
        if (
            min(self.seq_len, self.long_seq_len, self.batch_size, self.steps_per_epoch, self.n_test, self.trace_every)
            < 1
        ):
            raise ValueError("lengths, sizes and steps must be >= 1")
        if self.lr <= 0 or not 0 < self.final_lr_fraction <= 1 or self.init_scale <= 0:
            raise ValueError("need lr > 0, 0 < final_lr_fraction <= 1, init_scale > 0")


ADDING_GUESS_MSE = 1 / 6  # Var(x1 + x2) for x1, x2 ~ U[0, 1]: the MSE of predicting the mean, 1


@dataclass
class AddingConfig:
    length: int = 100  # T, steps per sequence
    batch_size: int = 50
    steps_per_epoch: int = 100  # training batches between two evaluations on the test set
    test_size: int = 2000
    eval_batch_size: int = 1000

    def validate(self) -> None:
        if self.length < 2:
            raise ValueError("length must be >= 2 (one marker in each half)")
        if min(self.batch_size, self.steps_per_epoch, self.test_size, self.eval_batch_size) < 1:
            raise ValueError("batch_size, steps_per_epoch, test_size and eval_batch_size must be >= 1")


@dataclass
class PolyConfig:
    degree: int = 9
    l2: float = 0.0  # lambda of the penalty lambda/2 ||w||^2 (0: plain least squares)
    n_train: int = 10
    n_test: int = 1000
    noise_std: float = 0.3
    even_x: bool = True  # training x evenly spaced on [0, 1] (Bishop); False: drawn from U[0, 1]

    def validate(self) -> None:
        if self.degree < 0 or self.l2 < 0:
            raise ValueError("degree and l2 must be >= 0")
        if self.n_train < 1 or self.n_test < 1 or self.noise_std < 0:
            raise ValueError("need n_train >= 1, n_test >= 1, noise_std >= 0")


@dataclass
class PairConfig:
    """Two nearly identical inputs (slide 10): x1 = x, x2 = x + eps z with x, z ~ N(0, 1), and the target
    t = x1 + x2 + N(0, noise_std^2). Test sets: the same eps (matched) and ``mismatch`` times eps."""

    l2: float = 0.0  # lambda of the penalty lambda/2 ||w||^2 (0: plain least squares)
    n_train: int = 20
    n_test: int = 1000
    eps: float = 0.02  # std of x2 - x1 in training and in the matched test set
    mismatch: float = 10.0  # the mismatched test set's x2 - x1 has std mismatch * eps
    noise_std: float = 0.5

    def validate(self) -> None:
        if self.l2 < 0 or self.noise_std < 0:
            raise ValueError("l2 and noise_std must be >= 0")
        if self.n_train < 2 or self.n_test < 1:
            raise ValueError("need n_train >= 2 (two weights) and n_test >= 1")
        if not (self.eps > 0 and self.mismatch > 0):
            raise ValueError("eps and mismatch must be > 0")


# ----------------------------------------------------------------------------- Learning to Execute
CURRICULA = ("baseline", "naive", "mix", "combined")


STALL_RULES = ("lower", "not-higher")


@dataclass
class ProgramDataConfig:
    task: str = "program"  # program | addition | copy
    length: int = 6  # the target length: literals up to 10**length (digits, for addition and copy)
    nesting: int = 3  # the target nesting: operations chained (1 for addition and copy)
    curriculum: str = "combined"
    mix_share: float = 0.2  # combined: the share of examples drawn from mix
    reverse: bool = False  # the paper's input reversal
    double: bool = False  # the paper's input doubling
    batch_size: int = 100
    steps_per_epoch: int = 100  # an epoch = this many fresh batches, then an evaluation
    val_size: int = 1000  # validation programs per level (the current one and the target)
    test_size: int = 2000  # test programs at the target
    eval_batch_size: int = 500
    advance_accuracy: float = 0.95  # raise the level when validation accuracy exceeds this
    patience: int = 5  # ... or when training accuracy is lower than this many evaluations ago
    stall_rule: str = "lower"  # lower: the original's test (and a 100% plateau); not-higher: the suite's earlier
    # 0: the characters as they are; k > 0: every character but padding, GO and the end mark replaced by another,
    # the same way in every program, input and answer alike (a permutation drawn from k): slide 38's scrambled text
    scramble: int = 0
    # every program replaced by one fixed character: a model that cannot read the program (a baseline for "it
    # learns to execute"). Added after runs were recorded: left out of the config while False (engine/config.py's
    # ADDED_LATER), so their identities stand
    blind: bool = field(default=False, metadata={"added_later": True})

    def validate(self) -> None:
        if self.curriculum not in CURRICULA:
            raise ValueError(f"curriculum must be one of {', '.join(CURRICULA)}")
        from datamodules.programs import check_difficulty  # (numpy: imported when a config is checked)

        try:
            check_difficulty(self.task, self.length, self.nesting)
        except Exception as e:  # ReproError: one line saying what is wrong
            raise ValueError(str(e)) from None
        if not 0 <= self.mix_share <= 1 or not 0 < self.advance_accuracy <= 1:
            raise ValueError("mix_share must be in [0, 1] and advance_accuracy in (0, 1]")
        if min(self.batch_size, self.steps_per_epoch, self.val_size, self.test_size, self.eval_batch_size) < 1:
            raise ValueError("batch and set sizes must be >= 1")
        if self.patience < 1:
            raise ValueError("patience must be >= 1")
        if self.scramble < 0:
            raise ValueError("scramble must be >= 0 (0: plain characters)")
        if self.stall_rule not in STALL_RULES:
            raise ValueError(f"stall_rule must be one of {', '.join(STALL_RULES)}")

    @property
    def target_nesting(self) -> int:
        return self.nesting if self.task == "program" else 1
