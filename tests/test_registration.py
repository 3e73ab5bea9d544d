"""Claims registered before their runs: fingerprints that change with the test and nothing else, records that
carry them, verdict rows that say how their runs stand, and looks counted from the records."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest

from engine import registration as reg
from engine.claims import PerSeed, higher, lower, not_higher
from engine.registry import get, registry
from engine.spec import PILOT, TABLE_SEEDS, Claim


def claim(**kw) -> Claim:
    base = {"slide": "24", "statement": "the large batch tests worse", "check": higher("test_error", "a", than="b")}
    return Claim(**{**base, **kw})


def test_a_fingerprint_changes_with_the_test_its_words_and_its_slide_and_nothing_else():
    fp = reg.fingerprint(claim())
    assert fp == reg.fingerprint(claim()) and len(fp) == 12
    changed = [
        claim(check=higher("train_error", "a", than="b")),  # another metric
        claim(check=higher("test_error", "a", than="c")),  # another variant
        claim(check=lower("test_error", "b", than="a")),  # another direction
        claim(check=higher("test_error", "a", than="b", transform="log10")),
        claim(statement="the large batch tests better"),
        claim(slide="25"),
    ]
    assert len({reg.fingerprint(c) for c in changed} | {fp}) == len(changed) + 1
    margin = [reg.fingerprint(claim(check=not_higher("x", "a", than="b", margin=m))) for m in (0.005, 0.001)]
    assert margin[0] != margin[1]


def test_a_test_written_in_an_experiment_file_is_fingerprinted_by_its_code():
    def learns(results, seed):
        return results.get("clip", "mse").get(seed, 1) < 0.1

    def learns_better(results, seed):
        return results.get("clip", "mse").get(seed, 1) < 0.2

    a = claim(check=PerSeed(learns, "learns", lambda r: [0]))
    b = claim(check=PerSeed(learns_better, "learns", lambda r: [0]))
    assert reg.fingerprint(a) != reg.fingerprint(b)
    # a partial names its function and arguments, never an address
    p1 = reg.canonical(functools.partial(learns, seed=1))
    assert p1 == reg.canonical(functools.partial(learns, seed=1)) and "0x" not in str(p1)


def test_every_claim_of_the_lecture_has_a_fingerprint_that_is_the_same_in_another_process():
    here = {name: reg.fingerprints(exp) for name, exp in registry().items()}
    code = "from engine.registry import registry; from engine import registration as r; " + (
        "print({n: r.fingerprints(e) for n, e in registry().items()})"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert str(here) == there.strip()
    assert all(len(fps) == len(registry()[n].claims) for n, fps in here.items())


def run(fps: dict | None, earlier: dict | None = None) -> dict:
    return {"registration": None if fps is None else {"claims": fps, "earlier": earlier or {}}}


def test_a_verdict_says_whether_its_runs_carried_the_claim_as_it_stands():
    assert reg.of_claim("24#1", "aaa", [run({"24#1": "aaa"})] * 3) == reg.Registration(reg.REGISTERED, 1)
    changed = reg.of_claim("24#1", "aaa", [run({"24#1": "aaa"}), run({"24#1": "bbb"})])
    assert changed.status == reg.CHANGED and not changed.counts and "1 of 2 runs" in changed.detail
    added_later = reg.of_claim("24#2", "ccc", [run({"24#1": "aaa"})])
    assert added_later.status == reg.CHANGED
    old = reg.of_claim("24#1", "aaa", [run({"24#1": "aaa"}), run(None)])
    assert old.status == reg.PREDATES and not old.counts
    assert reg.of_claim("24#1", "aaa", []).status == reg.PREDATES


def test_a_rerun_keeps_the_versions_of_a_claim_that_saw_its_cell_and_they_count_as_looks():
    exp = get("batch-size")
    now = reg.fingerprints(exp)
    key = next(iter(now))
    first = reg.for_record(exp, None)
    assert first == {"claims": now, "earlier": {}}
    # the cell was run before under another version of the claim, which had itself replaced a third
    previous = {"registration": {"claims": {key: "old2"}, "earlier": {key: ["old1"]}}}
    second = reg.for_record(exp, previous)
    assert second["earlier"] == {key: ["old1", "old2"]}
    assert reg.for_record(exp, {"registration": {"claims": now, "earlier": {}}})["earlier"] == {}  # same version
    looks = reg.of_claim(key, now[key], [{"registration": second}, {"registration": first}])
    assert looks == reg.Registration(reg.REGISTERED, 3)
    assert "3 looks at these seeds" in reg.row_text(looks)


def test_tables_run_on_seeds_no_pilot_used_and_every_experiment_has_a_pilot():
    for exp in registry().values():
        table, pilot = exp.profile(exp.default_profile), exp.profile(PILOT)
        assert table.seed_list[0] == TABLE_SEEDS and pilot.seed_list[0] == 0
        assert max(pilot.seed_list) < TABLE_SEEDS and pilot.overrides == table.overrides
        # the paper-scale profile is a table too: its seeds are not the pilots' (it has no committed runs yet)
        assert exp.profile("full").seed_list[0] == TABLE_SEEDS
    with pytest.raises(Exception, match="unknown profile"):
        get("gradients").profile("pilots")


def test_two_claims_with_the_same_per_run_differences_are_one_finding_counted_once():
    from types import SimpleNamespace

    from engine.evidence import _duplicates
    from engine.spec import Results

    gap = claim(slide="24", statement="the gap is larger", check=higher("gap", "a", than="b"))
    worse = claim(check=higher("test_error", "a", than="b"))
    other = claim(slide="25", statement="it fits worse", check=higher("train_error", "a", than="b"))
    exp = SimpleNamespace(claims=(worse, gap, other))
    # training errors both 0: the gap's differences are the test error's, number for number
    r = Results(
        {
            "a": {"test_error": {0: 0.06, 1: 0.07, 2: 0.065}, "gap": {0: 0.06, 1: 0.07, 2: 0.065}, "train_error": {}},
            "b": {"test_error": {0: 0.05, 1: 0.05, 2: 0.05}, "gap": {0: 0.05, 1: 0.05, 2: 0.05}},
        }
    )
    regs = _duplicates(exp, r, [reg.Registration(reg.REGISTERED, 1)] * 3)
    assert [x.counts for x in regs] == [True, False, True]
    assert "a duplicate of slide 24's 'the large batch tests worse'" in reg.row_text(regs[1])
    from engine.report import _verdict_rows

    verdicts = [(c, c.check(r)) for c in exp.claims]
    cells = [row[2] for row in _verdict_rows(verdicts, regs, "quick")]
    assert cells[0] == f"**{verdicts[0][1].status}**" and cells[2] == f"**{verdicts[2][1].status}**"
    dup = "a duplicate of slide 24's 'the large batch tests worse'"
    assert cells[1] == f"**no verdict** ({dup}; its test reads {verdicts[1][1].status})"
    # one seed apart is two findings
    r.values["a"]["gap"][2] = 0.066
    assert all(x.counts for x in _duplicates(exp, r, [reg.Registration(reg.REGISTERED, 1)] * 3))


def test_a_claim_decided_only_by_another_profile_names_one_the_experiment_has():
    deferred = [(exp, c) for exp in registry().values() for c in exp.claims if c.decided_by]
    assert deferred  # Learning to Execute's curricula, which 2-digit additions cannot separate
    for exp, c in deferred:
        assert c.decided_by in {p.name for p in exp.profiles} and c.decided_by != exp.default_profile
