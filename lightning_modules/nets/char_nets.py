"""The character-level language models of slides 28-35: recurrent nets (RNN, LSTM, GRU) over character
embeddings, the context-k MLP and the counted bigram table, and sampling from them."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from lightning_modules.configs import RECURRENT_KINDS, CharModelConfig

RECURRENT = dict(zip(RECURRENT_KINDS, (nn.RNN, nn.LSTM, nn.GRU), strict=True))


# ----------------------------------------------------------------------------- networks
class RecurrentLM(nn.Module):
    def __init__(self, kind: str, vocab_size: int, embed: int, hidden: int, layers: int, dropout: float = 0.0):
        super().__init__()
        extra = {"nonlinearity": "tanh"} if kind == "rnn" else {}
        self.embed = nn.Embedding(vocab_size, embed)
        self.rnn = RECURRENT[kind](
            embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0, **extra
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.rnn(self.embed(x), state)
        return self.head(self.drop(out)), state


class ContextMLP(nn.Module):
    """P(next | the last ``context`` characters). Before the start of a stream the context is filled with
    an extra padding id, so the model never sees more than ``context`` characters of the past."""

    def __init__(self, vocab_size: int, context: int, embed: int, hidden: int):
        super().__init__()
        self.context, self.pad = context, vocab_size
        self.embed = nn.Embedding(vocab_size + 1, embed)
        self.hidden = nn.Linear(context * embed, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        if state is None:
            state = torch.full((x.shape[0], self.context - 1), self.pad, dtype=x.dtype, device=x.device)
        seen = torch.cat([state, x], dim=1)  # [B, context - 1 + T]
        windows = seen.unfold(1, self.context, 1)  # [B, T, context]: the characters up to and including x_t
        h = torch.tanh(self.hidden(self.embed(windows).flatten(2)))
        return self.head(h), seen[:, x.shape[1] :]


class BigramLM(nn.Module):
    """log P(next | current) = log (count(current, next) + 1) / (count(current) + V): add-one smoothing.
    The table is a frozen parameter (it is counted, not trained); the logits are the log-probabilities."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.log_probs = nn.Parameter(torch.full((vocab_size, vocab_size), -math.log(vocab_size)), requires_grad=False)

    @torch.no_grad()
    def fit(self, tokens: torch.Tensor) -> None:
        v = self.log_probs.shape[0]
        counts = torch.ones(v, v, dtype=torch.float64)
        counts.index_put_(
            (tokens[:-1].cpu(), tokens[1:].cpu()), torch.ones(len(tokens) - 1, dtype=torch.float64), accumulate=True
        )
        self.log_probs.copy_((counts / counts.sum(dim=1, keepdim=True)).log().to(self.log_probs))

    def forward(self, x: torch.Tensor, state=None):
        return self.log_probs[x], None


def build_char_net(cfg: CharModelConfig, vocab_size: int) -> nn.Module:
    if cfg.kind in RECURRENT:
        hidden = getattr(cfg, f"{cfg.kind}_hidden")
        return RecurrentLM(cfg.kind, vocab_size, cfg.embed, hidden, cfg.layers, cfg.dropout)
    if cfg.kind == "mlp":
        return ContextMLP(vocab_size, cfg.context, cfg.embed, cfg.mlp_hidden)
    return BigramLM(vocab_size)


def detach_state(state):
    """Cut the graph between chunks (truncated BPTT): the values carry over, the gradients do not."""
    if state is None:
        return None
    if isinstance(state, tuple):  # the LSTM's (h, c)
        return tuple(s.detach() for s in state)
    return state.detach()


# ----------------------------------------------------------------------------- sampling
def prompt_ids(prompt: str, vocab: str) -> list[int]:
    """The prompt's character ids; characters outside the vocabulary are dropped (newline if none remain)."""
    ids = [vocab.index(c) for c in prompt if c in vocab]
    return ids or [vocab.index("\n") if "\n" in vocab else 0]


@torch.no_grad()
def generate(net: nn.Module, prompt: list[int], length: int, temperature: float, seed: int) -> list[int]:
    """Feed the prompt, then sample ``length`` characters one at a time, each fed back as the next input.
    Temperature 0 takes the most likely character; the draws come from a generator seeded with ``seed``,
    so the same model, prompt and seed give the same text."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    g = torch.Generator().manual_seed(seed)
    logits, state = net(torch.tensor([prompt], device=device), None)
    out: list[int] = []
    for _ in range(length):
        last = logits[0, -1].float().cpu()
        if temperature == 0:
            nxt = int(last.argmax())
        else:
            nxt = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1, generator=g))
        out.append(nxt)
        logits, state = net(torch.tensor([[nxt]], device=device), state)
    net.train(was_training)
    return out
