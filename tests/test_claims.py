"""Every claim and every check of every experiment can come out the other way.

Each claim is fed a constructed counter-example (a Results in which what it says is clearly false) and must
call it "contradicted"; each check must fail on its own. Claims built from ``engine/claims.py`` also
construct a case in which they hold, and must call it "supported". A test that can only ever agree with the
lecture would make its verdicts worthless.
"""

from __future__ import annotations

import pytest

from engine import claims, stats
from engine.claims import AnyOf
from engine.registry import registry
from engine.spec import Results

EXPERIMENTS = registry()
CLAIMS = [(exp.name, i, c) for exp in EXPERIMENTS.values() for i, c in enumerate(exp.claims)]
CHECKS = [(exp.name, i, c) for exp in EXPERIMENTS.values() for i, c in enumerate(exp.checks)]


@pytest.mark.parametrize("name,index,claim", CLAIMS, ids=[f"{n}-{i}" for n, i, _ in CLAIMS])
def test_every_claim_is_contradicted_by_its_counter_example(name, index, claim):
    verdict = claim.check(claim.counter_example())
    if isinstance(claim.check, AnyOf):  # "might": the settings tried do not refute it, they do not show it
        assert verdict.status == "inconclusive" and verdict.statistic.startswith("not shown"), (name, verdict)
    else:
        assert verdict.status == "contradicted", (name, claim.statement, verdict.statistic)
    example = getattr(claim.check, "example", None)
    if example is not None:  # and it can be supported, too
        assert claim.check(example(True)).status == "supported", (name, claim.statement)
    assert claim.check(Results({})).status == "inconclusive"  # and no runs decide nothing


@pytest.mark.parametrize("name,index,check", CHECKS, ids=[f"{n}-{i}" for n, i, _ in CHECKS])
def test_every_check_fails_on_its_counter_example(name, index, check):
    outcome = check.check(check.counter_example())
    assert outcome.holds is False, (name, check.statement, outcome.detail)
    assert check.check(Results({})).holds is None


def test_every_experiment_states_claims_and_no_claim_is_an_identity():
    for exp in EXPERIMENTS.values():
        assert exp.claims, exp.name
        for claim in exp.claims:
            assert "(exact)" not in claim.statement, (exp.name, claim.statement)  # exact identities are checks


def test_a_claim_on_pooled_pairs_keys_each_difference_by_pair_and_seed():
    compare = claims.higher("test_acc", ("a-1", "a-2"), than=("b-1", "b-2"))
    results = Results(
        {
            "a-1": {"test_acc": {0: 0.9}},
            "b-1": {"test_acc": {0: 0.5}},
            "a-2": {"test_acc": {0: 0.8, 1: 0.7}},
            "b-2": {"test_acc": {0: 0.6, 1: 0.6}},
        }
    )
    keys, diffs = compare.diffs(results)
    assert keys == ["a-1/s0", "a-2/s0", "a-2/s1"] and diffs == pytest.approx([0.4, 0.2, 0.1])


def test_log10_comparisons_and_their_units():
    compare = claims.lower("test_mse", "clip", than="no-clip", transform="log10")
    results = Results(
        {"clip": {"test_mse": {s: 0.01 for s in range(3)}}, "no-clip": {"test_mse": {s: 1.0 + s for s in range(3)}}}
    )
    _, diffs = compare.diffs(results)
    assert diffs == pytest.approx([2.0, 2.30103, 2.47712], abs=1e-5)
    verdict = compare(results)
    assert verdict.status == "supported" and "pts" not in verdict.statistic


def test_margins_go_only_with_no_effect_claims():
    with pytest.raises(ValueError):
        claims.Compare("x", (("a", "b"),), "lower", margin=0.01)
    with pytest.raises(ValueError):
        claims.Compare("x", (("a", "b"),), "not_lower")
    two = Results({"a": {"test_error": {0: 0.1, 1: 0.1}}, "b": {"test_error": {0: 0.1, 1: 0.1}}})
    assert claims.not_lower("test_error", "a", than="b", margin=0.005)(two).test.startswith("margin +0.50")
    assert claims.not_lower("test_error", "a", than="b", margin=0.005)(Results({})).test == "needs runs"


def test_statistics_need_three_seeds():
    assert stats.MIN_SEEDS == 3
    two = claims.lower("test_error", "a", than="b").example(True)
    for variant in two.values.values():
        for metric in variant.values():
            for seed in (2, 3, 4):
                metric.pop(seed)
    assert claims.lower("test_error", "a", than="b")(two).status == "inconclusive"


def test_pooled_pairs_from_one_seed_decide_nothing_however_many_targets():
    pairs = (("a-new", "a-old"), ("b-new", "b-old"), ("c-new", "c-old"), ("d-new", "d-old"))
    claim = claims.Compare("test_error", pairs, "lower")
    one_seed = Results({v: {"test_error": {0: 0.2 if v.endswith("new") else 0.5}} for p in pairs for v in p})
    verdict = claim(one_seed)  # four pairs, all +30 pts, but every one from seed 0
    assert verdict.status == "inconclusive" and "pairs from 1 seed(s), 3 needed" in verdict.test
    three = Results(
        {
            v: {"test_error": {s: (0.2 if v.endswith("new") else 0.5) + 0.01 * s for s in range(3)}}
            for p in pairs
            for v in p
        }
    )
    assert claim(three).status == "supported"


def test_a_might_claim_decides_each_part_at_5_percent_over_its_parts():
    from engine.claims import any_of, lower

    # paired differences 0.4, 0.6, 0.8: the 95% interval (+0.10 to +1.10) excludes 0, the 97.5% one does not
    values = {"a": {"m": {0: 1.0, 1: 1.0, 2: 1.0}}, "b": {"m": {0: 0.6, 1: 0.4, 2: 0.2}}}
    values["c"] = {"m": {0: 1.5, 1: 1.5, 2: 1.5}}  # a second part that does not hold
    results = Results(values)
    assert lower("m", "b", than="a")(results).status == "supported"
    verdict = any_of(lower("m", "b", than="a"), lower("m", "c", than="a"))(results)
    assert verdict.status == "inconclusive" and "97.5% CI" in verdict.test and "any of 2 parts" in verdict.test


def test_a_fact_of_every_seed_is_a_check_that_names_the_seeds_where_it_fails():
    from engine.claims import every_run
    from engine.spec import CheckOutcome

    assert every_run([0, 1, 2], [], "norm under -2") == CheckOutcome(True, 0.0, "norm under -2; holds in 3 of 3 seeds")
    two_seeds = every_run([0, 1], [1], "norm under -2")  # no minimum of seeds: a fact holds or not in each one
    assert (two_seeds.holds, two_seeds.largest_error) == (False, 1.0) and two_seeds.detail.endswith("(fails in 1)")
    assert every_run([], [], "needs analysis runs").holds is None
