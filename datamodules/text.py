"""Character-level text: Tiny Shakespeare (or any corpus, ``datamodules/corpus.py``), split like nanoGPT, served
as truncated-BPTT chunks.

The text is found under ``REPRO_DATA_DIR`` (``tinyshakespeare/input.txt``, char-rnn's layout, or
``tinyshakespeare.txt``), else downloaded from char-rnn's URL into it. Nothing damaged is used
silently: a file listed in a ``SHA256SUMS`` (beside it or above it in the data directory) must match;
char-rnn's text is recognised by its sha256; a copy of its length with other content, one holding
control characters (a zero-filled block), or one ending mid-line (cut short) is refused; any other
copy is used under a name that says so ("Tiny Shakespeare (another copy: 16,012 characters)").

The vocabulary is every distinct character of the whole text, sorted (65 for Tiny Shakespeare); the
first 90% of the characters are the training text and the last 10% the validation text (nanoGPT's
``data/shakespeare_char/prepare.py``: 1,003,854 and 111,540 characters).

Training batches are chunks of B parallel *streams* (char-rnn's layout): the training text is cut
into B contiguous slices of S characters, stream b reading characters b*S .. (b+1)*S - 1, and chunk k
of every stream is the next T characters of it. Targets are the inputs shifted by one character, also
across chunk boundaries (the last target of chunk k is the first input of chunk k+1), so a hidden
state carried from one chunk to the next continues exactly where the stream left off.

Held-out training text: ``holdout_chars`` takes the last characters of the training split (the first
90%) away from training; they are scored every epoch, like the validation text, to choose the epoch
whose weights a run reports, so that the training length is never chosen on the validation text.

Two measures of the validation text: the *stateful* one reads it as parallel streams with the state
carried across chunks (every character but the first of each stream has its whole stream before it);
the *windowed* one is nanoGPT's ``estimate_loss``: random windows of ``window_len`` characters, each
read from a zero state, every position counted. The windows come from a generator seeded with
``window_seed``, so every run and model is scored on the same windows.

Each batch is ``(x, y, reset)``: ``reset`` says that the state must start from zero at this chunk. It
is True at the first chunk of every epoch and whenever the streams wrap around to their beginnings.
An epoch is ``chunks_per_epoch`` consecutive chunks (0: one pass over the streams); epoch e starts at
chunk e * chunks_per_epoch (mod the chunks in a pass), so short epochs still walk through the whole
text. Resetting the state at each epoch start makes a run resumed from a checkpoint (which holds the
weights, not the hidden state) continue exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from base.errors import ReproError
from base.files import remove_stale_temp_files, temp_path
from datamodules.base import RecordedDataModule
from datamodules.batches import epoch_of
from datamodules.configs import TextDataConfig
from datamodules.decode import verify_checksum
from datamodules.files import data_dir

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # char-rnn's file
TINY_SHAKESPEARE_CHARS = 1_115_394
_LAYOUTS = ("tinyshakespeare/input.txt", "tiny_shakespeare/input.txt", "tinyshakespeare.txt")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # none in any text; a zero-filled block is full of them


# ----------------------------------------------------------------------------- finding the text
def find_text(root: Path) -> Path | None:
    for layout in _LAYOUTS:
        if (root / layout).is_file():
            return root / layout
    return None


def _download(root: Path) -> Path | None:
    """char-rnn's copy into ``root/tinyshakespeare/input.txt``; None when offline (or REPRO_OFFLINE=1)."""
    if os.environ.get("REPRO_OFFLINE", "") not in ("", "0"):
        return None
    target = root / _LAYOUTS[0]
    tmp = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(target.parent)
        urllib.request.urlretrieve(TINY_SHAKESPEARE_URL, tmp)  # refuses a body shorter than its Content-Length
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
        if digest == TINY_SHAKESPEARE_SHA256:
            os.replace(tmp, target)
    except Exception as e:  # offline, refused, read-only: report what was looked for instead
        print(f"[data] download of Tiny Shakespeare into {root} failed: {type(e).__name__}: {str(e)[:120]}")
        return None
    finally:
        tmp.unlink(missing_ok=True)
    if digest != TINY_SHAKESPEARE_SHA256:
        raise ReproError(
            f"the download from {TINY_SHAKESPEARE_URL} is not char-rnn's Tiny Shakespeare (sha256 {digest[:16]}, "
            f"expected {TINY_SHAKESPEARE_SHA256[:16]}); nothing was saved"
        )
    return target


def load_text(download: bool = True) -> tuple[str, Path]:
    root = data_dir()
    source = find_text(root) or (_download(root) if download else None)
    if source is None:
        looked = ", ".join(f"{root}/{layout}" for layout in _LAYOUTS)
        raise ReproError(
            f"Tiny Shakespeare not found: looked for {looked}; set REPRO_DATA_DIR to a folder holding one of "
            "these, or go online to download it"
        )
    verify_checksum(source, root)
    try:
        return source.read_text(encoding="utf-8"), source
    except (OSError, UnicodeDecodeError) as e:
        raise ReproError(f"{source} cannot be read as UTF-8 text ({type(e).__name__}); replace it") from None


def text_name(text: str, source: Path) -> str:
    """The name results tables print for this text; a one-line error for a copy that is damaged."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest == TINY_SHAKESPEARE_SHA256:
        return "Tiny Shakespeare (char-rnn)"
    if len(text) == TINY_SHAKESPEARE_CHARS:
        raise ReproError(
            f"{source} has the length of char-rnn's Tiny Shakespeare ({TINY_SHAKESPEARE_CHARS:,} characters) but "
            f"not its content (sha256 {digest[:16]}, expected {TINY_SHAKESPEARE_SHA256[:16]}): the file is "
            "damaged; replace it"
        )
    control = _CONTROL.search(text)
    if control:
        raise ReproError(
            f"{source} holds the control character {control[0]!r} at character {control.start():,}: the file is "
            "damaged; replace it"
        )
    if not text.endswith("\n"):
        raise ReproError(
            f"{source} ends in the middle of a line ({len(text):,} characters): the file looks cut short; replace "
            "it (an excerpt made on purpose should end with a newline)"
        )
    return f"Tiny Shakespeare (another copy: {len(text):,} characters)"


@dataclass
class CharText:
    """A text encoded as character ids over the sorted set of its characters."""

    vocab: str  # the characters, in id order
    train: torch.Tensor  # int64 ids: what the model trains on
    holdout: torch.Tensor  # the end of the training split, held out from training (may be empty)
    val: torch.Tensor  # the whole validation text
    source: str
    fingerprint: str  # sha256 of the text, first 16 hex digits
    name: str  # as printed in results tables (see ``text_name``)


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str, str]:
    """(vocabulary of the whole text, first 1 - val_fraction, last val_fraction), as nanoGPT splits."""
    n = int(len(text) * (1 - val_fraction))
    return "".join(sorted(set(text))), text[:n], text[n:]


def encode(text: str, vocab: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(vocab)}
    return torch.tensor([index[c] for c in text], dtype=torch.int64)


def decode(ids, vocab: str) -> str:
    return "".join(vocab[int(i)] for i in ids)


# ----------------------------------------------------------------------------- streams and chunks
def stream_matrices(tokens: torch.Tensor, streams: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets as [streams, S] matrices: row b is the contiguous slice b*S .. (b+1)*S - 1 of
    ``tokens`` and its targets are the next characters (tokens[b*S + 1 .. (b+1)*S]); S = (N - 1) // streams,
    so the characters after streams * S + 1 are unused."""
    length = (len(tokens) - 1) // streams
    if length < 1:
        raise ReproError(f"a text of {len(tokens)} characters is too short for {streams} streams")
    used = streams * length
    return tokens[:used].view(streams, length), tokens[1 : used + 1].view(streams, length)


class StreamChunks:
    """Iterate over ``(x [B, T], y [B, T], reset)`` chunks of parallel streams (see the module docstring).

    ``per_epoch`` chunks per epoch (0: all), starting at chunk ``epoch * per_epoch`` mod the chunks in a
    pass; the characters after the last whole chunk of each stream are unused. With several ranks, rank r
    takes streams r, r + world, ...; the evaluation loader (``per_epoch=0``) reads each stream once.
    """

    def __init__(self, tokens, streams, seq_len, per_epoch=0, epoch_fn=lambda: 0, rank=0, world=1):
        x, y = stream_matrices(tokens, streams)
        self.x, self.y = x[rank::world], y[rank::world]
        self.seq_len, self.per_epoch, self.epoch_fn = seq_len, per_epoch, epoch_fn
        self.chunks_in_pass = x.shape[1] // seq_len
        if self.chunks_in_pass < 1:
            raise ReproError(f"streams of {x.shape[1]} characters are shorter than one chunk of {seq_len}")

    def __len__(self) -> int:
        return self.per_epoch or self.chunks_in_pass

    def __iter__(self):
        start = self.epoch_fn() * self.per_epoch if self.per_epoch else 0
        for j in range(len(self)):
            k = (start + j) % self.chunks_in_pass
            cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
            yield self.x[:, cols], self.y[:, cols], j == 0 or k == 0


def window_starts(n_tokens: int, length: int, count: int, seed: int) -> torch.Tensor:
    """Start positions of ``count`` windows of ``length`` inputs (and their ``length`` next characters as
    targets) in a text of ``n_tokens``, uniform over every possible start as nanoGPT draws them, from a
    generator of their own: the same seed gives the same windows whatever else the process has drawn."""
    if n_tokens - length < 1:
        raise ReproError(f"a text of {n_tokens} characters is too short for windows of {length}")
    return torch.randint(n_tokens - length, (count,), generator=torch.Generator().manual_seed(seed))


class RandomWindows:
    """Iterate over ``(x [b, L], y [b, L], True)`` batches of the windows of ``window_starts``: each batch is
    read from a zero state (``reset`` always True). With several ranks, rank r takes windows r, r + world, ..."""

    def __init__(self, tokens, length, count, batch_size, seed, rank=0, world=1):
        self.tokens, self.batch_size = tokens, batch_size
        self.starts = window_starts(len(tokens), length, count, seed)[rank::world]
        self.offsets = torch.arange(length)

    def __len__(self) -> int:
        return -(-len(self.starts) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.starts), self.batch_size):
            at = self.starts[i : i + self.batch_size, None] + self.offsets
            yield self.tokens[at], self.tokens[at + 1], True


# ----------------------------------------------------------------------------- the data module
class TextDataModule(RecordedDataModule):
    """The text as parallel streams. Batches shard by stream: rank r reads streams r, r + world, ...,
    so data.batch_size (the streams of one step) is the same whatever the number of processes."""

    shards = True

    def __init__(self, cfg: TextDataConfig, seed: int = 0):
        super().__init__()
        cfg.validate()
        self.cfg, self.seed = cfg, seed  # the streams are deterministic: the seed changes nothing here
        self.text: CharText | None = None
        self.corpus_info: dict = {}  # an hf: or local corpus: its splits and text column, for the record

    def prepare_data(self) -> None:
        self.load()

    def load(self) -> CharText:
        """Read, split and encode the text once per process. The held-out part is the end of the whole
        training split; ``train_chars`` then keeps the first characters of what remains."""
        if self.text is None:
            text, source, name = self._read()
            vocab, train, val = split_text(text, self.cfg.val_fraction)
            for key, part, what in (("train_chars", train, "training"), ("val_chars", val, "validation")):
                if getattr(self.cfg, key) > len(part):
                    raise ReproError(
                        f"data.{key}={getattr(self.cfg, key):,} is more than the {len(part):,} {what} characters "
                        f"of {name} (0 takes them all)"
                    )
            kept = len(train) - self.cfg.holdout_chars
            if kept < 2:
                raise ReproError(
                    f"data.holdout_chars={self.cfg.holdout_chars} leaves no training text (the training split has "
                    f"{len(train)} characters)"
                )
            if len(val) <= self.cfg.window_len:
                raise ReproError(
                    f"data.window_len={self.cfg.window_len} does not fit in the validation text ({len(val)} "
                    "characters); make it shorter"
                )
            train, holdout = train[:kept], train[kept:]
            if self.cfg.train_chars:
                train = train[: self.cfg.train_chars]
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            encoded = (encode(part, vocab) for part in (train, holdout, val))
            self.text = CharText(vocab, *encoded, str(source), digest, name)
        return self.text

    def _read(self) -> tuple[str, str | Path, str]:
        """(text, source, name): Tiny Shakespeare as before, or a corpus read through datasets (corpus.py)."""
        cfg = self.cfg
        if cfg.dataset == "tinyshakespeare":
            if cfg.text_column:
                raise ReproError("data.text_column applies to hf: and local corpora, not to tinyshakespeare")
            text, source = load_text()
            return text, source, text_name(text, source)
        from datamodules.corpus import load_corpus

        corpus = load_corpus(cfg.dataset, cfg.text_column)
        self.corpus_info = {"splits": list(corpus.splits), "text_column": corpus.column}
        return corpus.text, corpus.source, corpus.name

    @property
    def stateful_val(self) -> torch.Tensor:
        """The validation text the stateful evaluation reads: its first ``val_chars`` characters (0: all)."""
        val = self.load().val
        return val[: self.cfg.val_chars] if self.cfg.val_chars else val

    @property
    def vocab(self) -> str:
        return self.load().vocab

    def setup(self, stage: str | None = None) -> None:
        self.load()

    def train_dataloader(self):
        rank, world = self.rank_world()
        cfg = self.cfg
        self.per_rank(cfg.batch_size)  # the streams must split evenly over the ranks
        return StreamChunks(
            self.load().train, cfg.batch_size, cfg.seq_len, cfg.chunks_per_epoch, epoch_of(self), rank, world
        )

    def _streams(self, tokens: torch.Tensor) -> StreamChunks:
        """A stateful evaluation: ``tokens`` as eval_batch_size streams, each read once."""
        rank, world = self.rank_world()
        seq_len = _eval_seq_len(len(tokens), self.cfg)
        return StreamChunks(tokens, self.cfg.eval_batch_size, seq_len, rank=rank, world=world)

    def val_dataloader(self):
        """Every epoch: the validation text (loader 0) and, when some is held out, the held-out training
        text (loader 1), both stateful."""
        loaders = [self._streams(self.stateful_val)]
        if len(self.load().holdout):
            loaders.append(self._streams(self.load().holdout))
        return loaders

    def test_dataloader(self):
        """No separate test text (nanoGPT has none): the final evaluation reads the validation text again,
        as streams (loader 0) and as random windows (loader 1)."""
        rank, world = self.rank_world()
        cfg = self.cfg
        windows = RandomWindows(
            self.load().val, cfg.window_len, cfg.windows, cfg.window_batch_size, cfg.window_seed, rank, world
        )
        return [self._streams(self.stateful_val), windows]

    def data_info(self) -> dict:
        t = self.load()
        return {
            "name": t.name,
            "fingerprint": t.fingerprint,
            "source": t.source,
            "vocab_size": len(t.vocab),
            "train_chars": len(t.train),
            "holdout_chars": len(t.holdout),
            "holdout_chars_scored": _scored(len(t.holdout), self.cfg) if len(t.holdout) else 0,
            "val_chars": len(self.stateful_val),
            "val_chars_scored": _scored(len(self.stateful_val), self.cfg),
            "val_windows": self.cfg.windows,
            "val_window_len": self.cfg.window_len,
            "val_window_chars_from": len(t.val),  # the windows are drawn from the whole validation text
            **self.corpus_info,
        }


def _eval_seq_len(n_val: int, cfg: TextDataConfig) -> int:
    """Chunk length of the evaluation: the whole stream for eval_seq_len 0, and never longer than a stream."""
    per_stream = max(1, (n_val - 1) // cfg.eval_batch_size)
    return min(cfg.eval_seq_len or per_stream, per_stream)


def _scored(n_val: int, cfg: TextDataConfig) -> int:
    """How many validation characters the evaluation predicts (the rest of each stream is dropped)."""
    per_stream = (n_val - 1) // cfg.eval_batch_size
    seq_len = _eval_seq_len(n_val, cfg)
    return cfg.eval_batch_size * (per_stream // seq_len) * seq_len
