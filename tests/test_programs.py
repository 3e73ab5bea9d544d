"""The Learning-to-Execute generator: programs run and print their targets, operations, ranges, splits, CLI."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import random
import re
from collections import Counter

import pytest

from datamodules.programs import (
    END,
    GO,
    TASKS,
    VOCAB,
    Example,
    check_difficulty,
    decode,
    draw,
    encode,
    generate,
    split_of,
    transform_input,
)
from engine.cli import main
from engine.spec import ReproError
from tests.conftest import repro


def run_python(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(program, {})
    return out.getvalue()


def programs(n, length, nesting, seed=0, task="program"):
    rng = random.Random(seed)
    return [generate(task, length, nesting, rng) for _ in range(n)]


def operation(expr_or_line: str) -> str:
    """The kind of a nesting-1 program, from its text."""
    if "for x in range" in expr_or_line:
        return "loop"
    if "=" in expr_or_line.replace(">", "").replace("<", ""):
        return "assignment"
    if " if " in expr_or_line:
        return "if"
    if "*" in expr_or_line:
        return "multiplication"
    if "+" in expr_or_line or "-" in expr_or_line:
        return "pair"
    return "identity"


# ----------------------------------------------------------------------------- correctness
def test_every_program_prints_exactly_its_target():
    count = 0
    for length in range(1, 7):
        for nesting in range(1, 5):
            for ex in programs(120, length, nesting, seed=10 * length + nesting):
                assert ex.target.endswith(END) and ex.target.count(END) == 1
                assert run_python(ex.input) == ex.target[:-1] + "\n", ex.input
                assert ex.input.splitlines()[-1].startswith("print(")
                count += 1
    for ex in programs(200, 10, 10, seed=1):  # the deepest nesting: all ten variables can be used
        assert run_python(ex.input) == ex.target[:-1] + "\n", ex.input
    assert count == 2880


@pytest.mark.parametrize("task", ["addition", "copy"])
def test_addition_and_copy(task):
    for length in (1, 2, 5, 9):
        for ex in programs(300, length, 1, seed=length, task=task):
            if task == "addition":
                a, b = re.fullmatch(r"print\((\d+)\+(\d+)\)", ex.input).groups()
                assert len(a) == len(b) == length and a[0] != "0" and b[0] != "0"
                assert run_python(ex.input) == ex.target[:-1] + "\n"
            else:
                assert ex.input.isdigit() and len(ex.input) == length and ex.input[0] != "0"
                assert ex.target == ex.input + END
    # nesting is ignored by both
    assert programs(5, 4, 1, task="addition") == programs(5, 4, 7, task="addition")


def test_all_six_operations_appear_uniformly():
    kinds = Counter(operation(ex.input) for ex in programs(1200, 3, 1, seed=3))
    assert set(kinds) == {"pair", "multiplication", "identity", "assignment", "loop", "if"}
    assert all(150 < c < 250 for c in kinds.values()), kinds  # 200 expected each
    # the two variants of each operation
    text = "\n".join(ex.input for ex in programs(600, 3, 1, seed=4))
    for pattern in (r"\(\d+\+\d+\)", r"\(\d+-\d+\)", r"\(\d+\*\d+\)", r"[a-j]\+=", r"[a-j]-=", r">", r"<"):
        assert re.search(pattern, text), pattern


@pytest.mark.parametrize("length", [1, 2, 4])
def test_literals_factors_and_loop_counts_in_range(length):
    top, small = 10**length, 4 * length
    literals, smalls = [], []
    for ex in programs(3000, length, 1, seed=length):
        text = ex.input
        if m := re.search(r"range\((\d+)\)", text):
            smalls.append(int(m.group(1)))
            text = text.replace(m.group(0), "")
        elif m := re.fullmatch(r"print\(\((\d+)\*(\d+)\)\)", text):
            a, b = int(m.group(1)), int(m.group(2))  # literal * factor, in either order
            k, lit = (a, b) if 1 <= a <= small and 1 <= b <= top else (b, a)
            assert 1 <= k <= small and 1 <= lit <= top, text
            smalls.append(k)
            continue
        literals += [int(t) for t in re.findall(r"\d+", text)]
    assert min(literals) >= 1 and max(literals) <= top
    assert min(smalls) >= 1 and max(smalls) <= small
    assert small in smalls and 1 in smalls  # both ends drawn
    if length <= 2:  # both ends of the literals too (10**length has length + 1 digits)
        assert top in literals and 1 in literals


def test_previous_result_lands_in_every_operand_position():
    """In nesting-2 programs, which operand of the second operation holds the first one's expression."""
    seen = Counter()
    for ex in programs(6000, 2, 2, seed=5):
        tree = ast.parse(ex.input)
        arg = tree.body[-1].value.args[0]  # print(<expr>)
        if isinstance(arg, ast.IfExp):  # (c if a>b else d)
            slots = {"a": arg.test.left, "b": arg.test.comparators[0], "c": arg.body, "d": arg.orelse}
            key = "if"
        elif isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mult):
            slots, key = {"left": arg.left, "right": arg.right}, "mul"
        elif isinstance(arg, ast.BinOp) and isinstance(arg.left, ast.Name):  # assignment: v=a; (v+b)
            assign = [s for s in tree.body if isinstance(s, ast.Assign) and s.targets[0].id == arg.left.id][0]
            slots, key = {"a": assign.value, "b": arg.right}, "assignment"
        elif isinstance(arg, ast.BinOp):
            slots, key = {"a": arg.left, "b": arg.right}, "pair"
        elif isinstance(arg, ast.Name):  # loop: v=a; for x in range(n): v+=b
            assign, loop = tree.body[-3], tree.body[-2]
            if not isinstance(loop, ast.For) or assign.targets[0].id != arg.id:
                continue
            slots, key = {"a": assign.value, "b": loop.body[0].value}, "loop"
        else:
            continue
        nested = [name for name, node in slots.items() if not isinstance(node, ast.Constant)]
        if len(nested) == 1:  # unambiguous (the first operation was not an identity)
            seen[key, nested[0]] += 1
    wanted = [("if", p) for p in "abcd"] + [("mul", "left"), ("mul", "right")]
    wanted += [(k, p) for k in ("pair", "assignment", "loop") for p in "ab"]
    assert all(seen[w] >= 20 for w in wanted), seen


def test_variables_are_distinct_letters_in_random_order():
    firsts = Counter()
    for ex in programs(2000, 2, 10, seed=6):
        assigned = re.findall(r"^([a-z])=", ex.input, flags=re.M)
        assert len(assigned) == len(set(assigned)) and set(assigned) <= set("abcdefghij")
        if assigned:
            firsts[assigned[0]] += 1
        assert re.findall(r"for ([a-z]) in", ex.input) == ["x"] * ex.input.count("for ")
    assert set(firsts) == set("abcdefghij")  # every letter can come first


# ----------------------------------------------------------------------------- splits
def test_splits_are_disjoint_and_each_holds_a_third():
    n = 1500
    inputs = {}
    for split in (0, 1, 2):
        rng = random.Random(100 + split)
        exs = [draw("program", 2, 1, rng, split) for _ in range(n)]
        assert all(split_of(ex.input) == split for ex in exs)
        inputs[split] = {ex.input for ex in exs}
    assert len(inputs[0]) > 200  # short programs repeat, but there are many
    assert not (inputs[0] & inputs[1]) and not (inputs[0] & inputs[2]) and not (inputs[1] & inputs[2])
    raw = Counter(split_of(ex.input) for ex in programs(6000, 4, 2, seed=7))
    assert all(abs(raw[s] / 6000 - 1 / 3) < 0.03 for s in (0, 1, 2)), raw


def test_split_hash_is_pinned():
    """Changing the hash would move programs between splits of runs made before and after: pinned values."""
    texts = ("print(1)", "a=5;\nprint((a+3))", "123", "print(12+34)", "print((5 if 3>2 else 7))")
    assert [split_of(t) for t in texts] == [1, 1, 2, 2, 2]


def test_draw_gives_up_with_a_repro_error_when_a_split_is_empty(monkeypatch):
    import datamodules.programs as P

    monkeypatch.setattr(P, "split_of", lambda text: 0)
    with pytest.raises(ReproError, match="no val example"):
        draw("copy", 1, 1, random.Random(0), 1)
    with pytest.raises(ReproError, match="split must be"):
        draw("copy", 1, 1, random.Random(0), 3)


def test_tiny_input_spaces_still_give_every_split():
    copies = Counter(split_of(str(d)) for d in range(1, 10))
    assert copies == {0: 4, 1: 2, 2: 3}
    for task in TASKS:
        for split in (0, 1, 2):
            assert split_of(draw(task, 1, 1, random.Random(0), split).input) == split


# ----------------------------------------------------------------------------- determinism, vocabulary
def test_same_seed_same_examples_different_seed_different():
    def batch(seed):
        rng = random.Random(seed)
        return [draw(t, 5, 3, rng, s) for t in TASKS for s in (0, 1, 2) for _ in range(20)]

    assert batch(0) == batch(0)
    assert batch(0) != batch(1)
    assert isinstance(batch(0)[0], Example)


def test_vocab_covers_every_character_and_round_trips():
    assert VOCAB[0] not in VOCAB[1:] and len(set(VOCAB)) == len(VOCAB)
    assert GO in VOCAB and END in VOCAB and "\n" in VOCAB
    used = set()
    rng = random.Random(8)
    for task in TASKS:
        for _ in range(600):
            ex = generate(task, rng.randint(1, 6), rng.randint(1, 10), rng)
            for text in (ex.input, ex.target, ex.input + GO + ex.target):
                ids = encode(text)
                assert 0 not in ids and decode(ids) == text
            used |= set(ex.input) | set(ex.target)
    assert VOCAB[0] not in used
    assert used | {GO} == set(VOCAB[1:])  # no character of VOCAB is unused
    with pytest.raises(ReproError, match="not in the"):
        encode("print(A)")


def test_transform_input():
    assert transform_input("abc") == "abc"
    assert transform_input("abc", reverse=True) == "cba"
    assert transform_input("abc", double=True) == "abcabc"
    assert transform_input("abc", reverse=True, double=True) == "cbacba"


@pytest.mark.parametrize(
    "task, length, nesting, message",
    [
        ("program", 0, 2, "length must be"),
        ("program", 4, 0, "nesting must be"),
        ("program", 4, 11, "nesting must be"),
        ("program", 101, 1, "length must be"),
        ("program", True, 1, "length must be"),
        ("progam", 4, 2, "did you mean 'program'"),
    ],
)
def test_check_difficulty(task, length, nesting, message):
    with pytest.raises(ReproError, match=message):
        check_difficulty(task, length, nesting)
    with pytest.raises(ReproError, match=message):
        generate(task, length, nesting, random.Random(0))


# ----------------------------------------------------------------------------- CLI
def test_cli_prints_json_lines_of_the_split():
    r = repro("programs", "--task", "program", "--length", "3", "--nesting", "3", "--count", "7", "--split", "val")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 7 and all(set(row) == {"input", "target"} for row in rows)
    assert all(split_of(row["input"]) == 1 and run_python(row["input"]) == row["target"][:-1] + "\n" for row in rows)
    rng = random.Random(0)  # the seed defaults to 0
    assert rows == [{"input": e.input, "target": e.target} for e in (draw("program", 3, 3, rng, 1) for _ in range(7))]
    bad = repro("programs", "--nesting", "11")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nesting" in bad.stderr and not bad.stdout


def test_cli_in_process(capsys):
    assert main(["programs"]) == 0  # defaults: program, length 4, nesting 2, 5 examples, seed 0, train
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rng = random.Random(0)
    assert rows == [{"input": e.input, "target": e.target} for e in (draw("program", 4, 2, rng, 0) for _ in range(5))]
    assert main(["programs", "--task", "copy", "--length", "2", "--count", "3", "--seed", "4", "--split", "test"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(split_of(r["input"]) == 2 and r["target"] == r["input"] + END for r in rows)
    for argv in (
        ["--length", "0"],
        ["--nesting", "0"],
        ["--nesting", "11"],
        ["--seed", "-1"],
        ["--count", "0"],
        ["--task", "sorting"],
        ["--split", "dev"],
        ["--length", "four"],
    ):
        assert main(["programs", *argv]) == 2, argv
        out = capsys.readouterr()
        assert out.out == "" and out.err.count("\n") == 1 and out.err.startswith("repro: error: "), (argv, out.err)
