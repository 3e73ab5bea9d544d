"""Learning to Execute (Zaremba & Sutskever 2014): short Python programs in, their printed output out.

A faithful re-implementation of the generator of the original code (github.com/wojciechz/learning_to_execute,
``data.lua`` and ``utils/operations.lua``), in pure Python and the standard library.

Program task. A program chains ``nesting`` operations, each chosen uniformly from six:

- pair: ``(a+b)`` or ``(a-b)``;
- small multiplication: ``(e*k)`` or ``(k*e)``, k uniform in [1, 4*length];
- identity: the operand itself;
- variable assignment: the line ``v=a;``, then the expression ``(v+b)`` or ``(v-b)``;
- loop: the lines ``v=a`` and ``for x in range(n):v+=b`` (or ``-=``), n uniform in [1, 4*length]; the
  expression is ``v``;
- if-expression: ``(c if a>b else d)`` (or ``<``).

Literal operands are uniform in [1, 10**length], both ends included (the original's ``random(10^length)``,
so a length-4 literal may be 10000). The first operation takes fresh literals; each next one takes the
previous operation's expression as one of its operands, in a uniformly random position (the original's stack
and ``randperm``), and fresh literals in the others. Variables are distinct letters of a-j, in a random order
per program (the original's ``randperm(10)``); the loop variable is always ``x``; hence nesting <= 10. The
program is its code lines joined by "\\n", then ``print(<final expression>)``; the target is the printed
integer followed by ``END`` ("."). Every choice is uniform (coin flips included), as in the original.

Extra tasks of the paper: ``addition`` (input ``print(A+B)``, A and B uniform ``length``-digit numbers with
a non-zero leading digit, target A+B) and ``copy`` (memorization: the input is a uniform ``length``-digit
number, the target the same digits); both ignore ``nesting`` (it is still checked to be in [1, 10]).

Deviations from the original code, all deliberate:

- One (length, nesting) per example. The original's mix curriculum called its ``hardness()`` again for every
  literal and multiplication factor, so one program mixed literals of several lengths; we follow the paper's
  text, where an example has one length and one nesting.
- Lines are separated by "\\n" (the original wrote "#" in the text the model reads, and "\\n" only when it
  printed programs); the model reads ``input + GO + target``, GO being "@" as in the original.
- Splits: the original kept an example when a custom hash of its input and output text modulo 3 equalled the
  split; we hash the input text alone (the output is a function of it) with BLAKE2b, modulo 3
  (0 train, 1 validation, 2 test), so the three splits never share a program, at any length or nesting.
  The smallest input spaces are split too: copy at length 1 has 9 inputs (4 train, 2 val, 3 test), addition
  at length 1 has 81 (31, 25, 25).

Options of the paper: input reversal and input doubling (``transform_input``) change what the model reads,
never the target. ``random.Random(seed)`` makes everything deterministic.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from base.errors import ReproError, unknown_name

TASKS = ("program", "addition", "copy")
SPLITS = ("train", "val", "test")
END = "."  # end of the output: the last character of every target
GO = "@"  # read by the model between the input and the output
PAD = "_"  # index 0 of VOCAB; never occurs in any input or target
MAX_NESTING = 10  # one fresh variable per operation at most, from the ten letters a-j
MAX_LENGTH = 100  # literals of up to 101 digits: far beyond the paper's 9, well inside Python's int <-> str limit
MAX_TRIES = 1000  # draws rejected by split before draw() gives up (a split that holds ~1/3 needs ~3)

_VARIABLES = "abcdefghij"
# every character a task can produce: digits, the variables, x, the keywords, the operators, "\n", GO, END
_CHARS = set("0123456789" + _VARIABLES + "x" + "forinrangeprintelse" + "()+-*=;:<> \n" + GO + END)
VOCAB = PAD + "".join(sorted(_CHARS))
_INDEX = {c: i for i, c in enumerate(VOCAB)}


@dataclass(frozen=True, slots=True)
class Example:
    input: str  # what the model reads (before transform_input and GO)
    target: str  # the printed output, ending with END


# ----------------------------------------------------------------------------- vocabulary
def encode(text: str) -> list[int]:
    try:
        return [_INDEX[c] for c in text]
    except KeyError as e:
        raise ReproError(f"character {e.args[0]!r} is not in the Learning-to-Execute vocabulary") from None


# bytes.translate table: an ASCII character to its id, anything else to 255 (caught by encode_many)
_BYTE_IDS = bytes(_INDEX.get(chr(b), 255) for b in range(256))


def encode_many(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every text's ids, end to end in one int64 array, and each text's length: ``encode`` for a whole batch
    at C speed (one string join and one ``bytes.translate``)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    ids = np.frombuffer("".join(texts).encode("latin-1", "replace").translate(_BYTE_IDS), dtype=np.uint8)
    if (ids == 255).any():  # a character outside the vocabulary: let encode name it
        for text in texts:
            encode(text)
    return ids.astype(np.int64), lengths


def scramble_table(seed: int) -> np.ndarray:
    """A fixed permutation of the character ids (a lookup table, ``table[id]``) drawn from ``seed``: every
    character but padding, GO and the end mark goes to another one. The identity for seed 0."""
    table = np.arange(len(VOCAB))
    if seed:
        movable = np.array([i for i, c in enumerate(VOCAB) if c not in (PAD, GO, END)])
        table[movable] = movable[np.random.default_rng(seed).permutation(len(movable))]
    return table


def decode(ids) -> str:
    """Characters of the ids (ints or 0-d tensors); id 0 decodes to PAD."""
    return "".join(VOCAB[int(i)] for i in ids)


BLIND_INPUT = "x"  # what a blind model reads instead of every program: one fixed character


def transform_input(text: str, reverse: bool = False, double: bool = False, blind: bool = False) -> str:
    """The paper's input reversal (read the input backwards) and input doubling (read it twice); ``blind``: the
    program replaced by one fixed character (a baseline that cannot read it and can learn only what answers
    are like)."""
    if blind:
        return BLIND_INPUT
    if reverse:
        text = text[::-1]
    return text + text if double else text


# ----------------------------------------------------------------------------- checks and splits
def check_difficulty(task: str, length: int, nesting: int) -> None:
    if task not in TASKS:
        raise ReproError(unknown_name("task", str(task), list(TASKS)))
    for name, value, hi in (("length", length, MAX_LENGTH), ("nesting", nesting, MAX_NESTING)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ReproError(f"{name} must be an integer in [1, {hi}], got {value!r}")


# BLAKE2b's personalisation string: "l2e19" puts the 9 one-digit copy inputs in all three splits (4 train, 2 val,
# 3 test; without one, none is in train and a curriculum starting at length 1 could not draw a training example)
_SPLIT_KEY = b"l2e19"


def split_of(text: str) -> int:
    """0 train, 1 validation, 2 test: a stable hash of the input text (the same in every process) modulo 3."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, person=_SPLIT_KEY).digest(), "little") % 3


# ----------------------------------------------------------------------------- the tasks
def _program(length: int, nesting: int, rng: random.Random) -> Example:
    bits = rng.getrandbits
    top = 10**length  # literals: uniform in [1, 10**length]
    small = 4 * length  # factors and loop counts: uniform in [1, 4 * length]
    k_top, k_small = top.bit_length(), small.bit_length()

    # 1 + rng.randrange(n), inlined for speed: the same draws as random.Random._randbelow_with_getrandbits
    def literal() -> int:
        r = bits(k_top)
        while r >= top:
            r = bits(k_top)
        return r + 1

    def factor() -> int:
        r = bits(k_small)
        while r >= small:
            r = bits(k_small)
        return r + 1

    free = list(_VARIABLES)  # popping a random letter each time = a prefix of a random permutation
    code: list[str] = []
    expr, value = "", 0  # the previous operation's result (none before the first)
    for step in range(nesting):
        op = bits(3)
        while op >= 6:
            op = bits(3)
        if op == 2:  # identity
            if not step:
                value = literal()
                expr = str(value)
        elif op == 1:  # small multiplication
            if not step:
                value = literal()
                expr = str(value)
            k = factor()
            value *= k
            expr = f"({expr}*{k})" if bits(1) else f"({k}*{expr})"
        elif op == 5:  # (c if a>b else d): operands a, b, c, d; the previous result in one of them
            pos = bits(2) if step else -1
            vals, exprs = [], []
            for i in range(4):
                if i == pos:
                    vals.append(value)
                    exprs.append(expr)
                else:
                    vals.append(literal())
                    exprs.append(str(vals[-1]))
            a, b, c, d = vals
            if bits(1):
                value = c if a > b else d
                expr = f"({exprs[2]} if {exprs[0]}>{exprs[1]} else {exprs[3]})"
            else:
                value = c if a < b else d
                expr = f"({exprs[2]} if {exprs[0]}<{exprs[1]} else {exprs[3]})"
        else:  # two operands a, b: pair, assignment, loop; the previous result in one of them
            if not step:
                a, b = literal(), literal()
                ea, eb = str(a), str(b)
            elif bits(1):
                a, ea = value, expr
                b = literal()
                eb = str(b)
            else:
                a = literal()
                ea = str(a)
                b, eb = value, expr
            plus = bits(1)
            if op == 0:  # pair
                value = a + b if plus else a - b
                expr = f"({ea}+{eb})" if plus else f"({ea}-{eb})"
            elif op == 3:  # assignment
                v = free.pop(rng.randrange(len(free)))
                code.append(f"{v}={ea};")
                value = a + b if plus else a - b
                expr = f"({v}+{eb})" if plus else f"({v}-{eb})"
            else:  # loop
                v = free.pop(rng.randrange(len(free)))
                n = factor()
                code.append(f"{v}={ea}")
                code.append(f"for x in range({n}):{v}{'+' if plus else '-'}={eb}")
                value = a + n * b if plus else a - n * b
                expr = v
    code.append(f"print({expr})")
    return Example("\n".join(code), f"{value}{END}")


def _addition(length: int, nesting: int, rng: random.Random) -> Example:
    lo, hi = 10 ** (length - 1), 10**length
    a, b = rng.randrange(lo, hi), rng.randrange(lo, hi)
    return Example(f"print({a}+{b})", f"{a + b}{END}")


def _copy(length: int, nesting: int, rng: random.Random) -> Example:
    digits = str(rng.randrange(10 ** (length - 1), 10**length))
    return Example(digits, digits + END)


_GENERATORS = {"program": _program, "addition": _addition, "copy": _copy}


def generate(task: str, length: int, nesting: int, rng: random.Random) -> Example:
    """One example of any split (see draw for one of a given split)."""
    check_difficulty(task, length, nesting)
    return _GENERATORS[task](length, nesting, rng)


def draw(task: str, length: int, nesting: int, rng: random.Random, split: int) -> Example:
    """One example of ``split`` (0 train, 1 val, 2 test): generated examples of other splits are rejected."""
    check_difficulty(task, length, nesting)
    if split not in (0, 1, 2):
        raise ReproError(f"split must be 0 (train), 1 (val) or 2 (test), got {split!r}")
    gen = _GENERATORS[task]
    for _ in range(MAX_TRIES):
        ex = gen(length, nesting, rng)
        if split_of(ex.input) == split:
            return ex
    raise ReproError(
        f"no {SPLITS[split]} example of task {task} at length {length}, nesting {nesting} in {MAX_TRIES} draws: "
        "too few distinct inputs at this difficulty"
    )


def sample(task: str, length: int, nesting: int, count: int, seed: int, split_name: str) -> list[Example]:
    """``count`` examples of one split, drawn as a run draws its training data (``repro programs``); a one-line
    error for a bad option."""
    if split_name not in SPLITS:
        raise ReproError(unknown_name("split", split_name, list(SPLITS)))
    if count < 1:
        raise ReproError(f"--count must be >= 1, got {count}")
    if seed < 0:
        raise ReproError(f"--seed must be >= 0, got {seed}")
    check_difficulty(task, length, nesting)
    rng, split = random.Random(seed), SPLITS.index(split_name)
    return [draw(task, length, nesting, rng, split) for _ in range(count)]
