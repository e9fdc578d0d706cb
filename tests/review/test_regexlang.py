"""Stack-name patterns are compared by the names they match, with the shortest example."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ccci.review.regexlang import ALPHABET, compare, overlap

RUN_APPS = "^[a-z0-9]{1,4}-[0-9a-f]{6}_ci_"


def test_a_keep_pattern_a_run_app_can_match_overlaps_with_an_example() -> None:
    answer = overlap(RUN_APPS, "^demo-")
    assert answer.exists
    assert answer.example == "demo-aaaaaa_ci_"


def test_a_keep_pattern_no_run_app_can_match_never_overlaps() -> None:
    assert overlap(RUN_APPS, "^prod_").never
    assert overlap(RUN_APPS, "^[a-z0-9]{5}-").never
    assert overlap(RUN_APPS, "_ci_$").exists


def test_anchors_are_honoured_as_search_does() -> None:
    assert overlap("^a", "b$").example == "ab"
    assert overlap("^a$", "^b").never


def test_a_wider_pattern_gains_names_and_loses_none() -> None:
    comparison = compare(RUN_APPS, "^[a-z0-9]{1,4}-[0-9a-f]{6}_")
    assert comparison.wider
    assert comparison.gained.example == "a-aaaaaa_"


def test_a_narrower_pattern_loses_names() -> None:
    comparison = compare(RUN_APPS, RUN_APPS + "example_org$")
    assert comparison.narrower
    assert not comparison.wider


def test_patterns_written_differently_but_meaning_the_same_are_the_same() -> None:
    assert compare("^[a-z0-9]{1,4}-", "^[0-9a-z][0-9a-z]{0,3}-").same
    assert compare("(?i)^abc", "^[aA][bB][cC]").same


def test_back_references_and_lookarounds_are_unknown_never_a_guess() -> None:
    assert not overlap(RUN_APPS, r"(a)\1").known
    assert not compare(RUN_APPS, r"^(?=demo)").known
    assert not overlap(RUN_APPS, "[").known


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["^a", "b$", "^[a-c]+-[0-9]{2}", "_ci_", "x|y", "^(ab)*$", "[^a]", "."]),
    st.sampled_from(["^a[b-d]", "[0-9]$", "-", "^(a|b)c", "^$", "c{2,3}", "^x"]),
)
def test_examples_really_match_as_re_search_does(first: str, second: str) -> None:
    both = overlap(first, second)
    if both.exists:
        assert both.example is not None
        assert re.search(first, both.example) and re.search(second, both.example)
    else:
        # No short name matches both (a bounded brute-force check over three characters).
        short = ["", *ALPHABET[:12]]
        names = {a + b + c for a in short for b in short for c in short}
        assert not any(re.search(first, n) and re.search(second, n) for n in names)
