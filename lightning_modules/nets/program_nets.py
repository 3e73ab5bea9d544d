"""Learning to Execute's networks (slides 37-39) and greedy decoding; the LightningModule is
``lightning_modules/execute.py``.

- ``ProgramReader``, the paper's model: ONE stack of LSTMs reads the program one character at a time, then
  the GO mark, then predicts the answer one character at a time, each prediction reading the previous true
  answer character.
- ``EncoderDecoder`` (slide 37): an encoder LSTM stack reads the program; its final state (h and c of every
  layer) starts a decoder LSTM stack with separate weights, which reads GO and the answer so far.

Both expose ``read(batch) -> (logits of the first answer character, state)`` and ``step(char, state)`` for
greedy decoding. Every weight starts uniform in [-init_scale, init_scale].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence

from datamodules.programs import END, GO, VOCAB, decode, encode
from lightning_modules.configs import ExecuteModelConfig


class ProgramReader(nn.Module):
    """One LSTM stack reads input, GO, then the answer; the head predicts the next character."""

    def __init__(self, cfg: ExecuteModelConfig, vocab_size: int):
        super().__init__()
        embed = cfg.embed or cfg.hidden
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, cfg.hidden, cfg.layers, batch_first=True, dropout=cfg.dropout)
        self.head = nn.Linear(cfg.hidden, vocab_size)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: logits [B, L, V] for every position of ``seq`` but the last, and their labels."""
        out, _ = self.lstm(self.embed(batch["seq"][:, :-1]))  # right padding never reaches earlier outputs
        return self.head(out), batch["labels"]

    def read(self, batch: dict):
        lengths = batch["src_len"] + 1  # the input and GO
        packed = pack_padded_sequence(self.embed(batch["seq"]), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, c) = self.lstm(packed)
        return self.head(h[-1]), (h, c)  # the top layer's last state is the output at GO

    def step(self, chars: torch.Tensor, state):
        out, state = self.lstm(self.embed(chars[:, None]), state)
        return self.head(out[:, 0]), state


class EncoderDecoder(nn.Module):
    """Slide 37: the encoder's final (h, c) starts a decoder with its own embedding and weights."""

    def __init__(self, cfg: ExecuteModelConfig, vocab_size: int):
        super().__init__()
        embed = cfg.embed or cfg.hidden
        self.enc_embed = nn.Embedding(vocab_size, embed)
        self.encoder = nn.LSTM(embed, cfg.hidden, cfg.layers, batch_first=True, dropout=cfg.dropout)
        self.dec_embed = nn.Embedding(vocab_size, embed)
        self.decoder = nn.LSTM(embed, cfg.hidden, cfg.layers, batch_first=True, dropout=cfg.dropout)
        self.head = nn.Linear(cfg.hidden, vocab_size)
        self.go = encode(GO)[0]

    def encode_programs(self, batch: dict):
        x = self.enc_embed(batch["src"])
        packed = pack_padded_sequence(x, batch["src_len"].cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.encoder(packed)  # the state at each program's own last character
        return state

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        tgt = batch["tgt"]
        go = torch.full_like(tgt[:, :1], self.go)
        out, _ = self.decoder(self.dec_embed(torch.cat([go, tgt[:, :-1]], 1)), self.encode_programs(batch))
        labels = tgt.masked_fill(tgt == 0, -100)
        return self.head(out), labels

    def read(self, batch: dict):
        go = torch.full_like(batch["tgt"][:, 0], self.go)
        return self.step(go, self.encode_programs(batch))

    def step(self, chars: torch.Tensor, state):
        out, state = self.decoder(self.dec_embed(chars[:, None]), state)
        return self.head(out[:, 0]), state


def build_execute_net(cfg: ExecuteModelConfig, vocab_size: int = len(VOCAB)) -> nn.Module:
    cfg.validate()
    net = (ProgramReader if cfg.kind == "lstm" else EncoderDecoder)(cfg, vocab_size)
    for p in net.parameters():
        nn.init.uniform_(p, -cfg.init_scale, cfg.init_scale)
    return net


@torch.no_grad()
def greedy_decode(net: nn.Module, batch: dict, max_len: int) -> torch.Tensor:
    """[B, max_len] predicted answer characters, each step reading the previous prediction; 0 after all
    answers have ended."""
    logits, state = net.read(batch)
    b = logits.shape[0]
    out = torch.zeros(b, max_len, dtype=torch.long, device=logits.device)
    ended = torch.zeros(b, dtype=torch.bool, device=logits.device)
    end = encode(END)[0]
    for t in range(max_len):
        chars = logits.argmax(-1)
        out[:, t] = chars
        ended |= chars == end
        if bool(ended.all()) or t == max_len - 1:
            break
        logits, state = net.step(chars, state)
    return out


def exact_answers(pred: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    """Per example: is the greedy answer, up to and including its end mark, the target? (tgt right-padded
    with 0; a correct answer emits the end mark exactly at the target's last position.)"""
    width = tgt.shape[1]
    if pred.shape[1] < width:
        pred = F.pad(pred, (0, width - pred.shape[1]))
    return ((pred[:, :width] == tgt) | (tgt == 0)).all(1)


def answer_text(ids) -> str:
    """Predicted characters up to and including the first end mark."""
    text = decode(int(i) for i in ids if int(i) != 0)
    return text[: text.index(END) + 1] if END in text else text
