"""Eligibility rules as data: parsed safely, evaluated with reasons, refused precisely when wrong."""

from __future__ import annotations

import pytest

from scenarios.eligibility import CONDITIONS, CitizenFacts, RuleError, parse_rule

ADULT_RESIDENT_GOOD = CitizenFacts(
    common_tier=3, local_score=990, age=30, resident=True, has_direct_tier_record=False
)


def facts(**changes: object) -> CitizenFacts:
    return CitizenFacts(**{**ADULT_RESIDENT_GOOD.__dict__, **changes})  # type: ignore[arg-type]


RULE = {
    "all": [
        {"min_common_tier": 3},
        {"min_age": 18},
        {"resident": True},
        {"no_direct_tier_record": True},
    ]
}


def test_a_citizen_meeting_every_condition_qualifies() -> None:
    assert parse_rule(RULE).evaluate(ADULT_RESIDENT_GOOD).eligible


@pytest.mark.parametrize(
    ("changes", "kind", "zh"),
    [
        ({"common_tier": 2}, "min_common_tier", "信用等级需达到良好"),
        ({"common_tier": None}, "min_common_tier", "尚未授权信用评分"),
        ({"age": 17}, "min_age", "需年满18周岁"),
        ({"resident": False}, "resident", "限本市居民"),
        ({"has_direct_tier_record": True}, "no_direct_tier_record", "存在直接定级的严重失信记录"),
    ],
)
def test_each_unmet_condition_says_why(changes: dict[str, object], kind: str, zh: str) -> None:
    outcome = parse_rule(RULE).evaluate(facts(**changes))
    assert not outcome.eligible
    assert [(r.kind, r.zh) for r in outcome.unmet] == [(kind, zh)]


def test_any_needs_one_and_reports_all_when_none_holds() -> None:
    rule = parse_rule({"any": [{"min_common_tier": 4}, {"min_local_score": 1000}]})
    assert rule.evaluate(facts(common_tier=4)).eligible
    assert rule.evaluate(facts(local_score=1000)).eligible
    outcome = rule.evaluate(facts())
    assert not outcome.eligible and [r.kind for r in outcome.unmet] == [
        "min_common_tier",
        "min_local_score",
    ]


def test_rules_round_trip_and_describe_themselves() -> None:
    rule = parse_rule(RULE)
    assert rule.to_data() == RULE
    assert (
        rule.describe("zh") == "信用等级良好及以上且年满18周岁且本市居民且无直接定级的严重失信记录"
    )
    assert rule.describe("en").startswith("tier Good or better and aged 18 or over")


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"min_common_tier": 6}, "min_common_tier", "must be a whole number from 1 to 5"),
        ({"all": [{"min_age": 18}, {"max_tier": 2}]}, "all.1.max_tier", "unknown condition kind"),
        ({"all": []}, "all", "must be a non-empty list"),
        ({"resident": False}, "resident", "no negated form"),
        ({"min_age": 18, "resident": True}, "", "exactly one key"),
        (
            {"any": [{"all": [{"min_local_score": "900"}]}]},
            "any.0.all.0.min_local_score",
            "whole number",
        ),
        ("__import__('os').system('x')", "", "exactly one key"),
    ],
)
def test_bad_rules_are_refused_with_the_exact_place(rule: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rule(rule)
    assert info.value.path == path and message in info.value.message


def test_there_is_no_way_to_negate_a_condition() -> None:
    assert not {"not", "none", "max_common_tier", "max_local_score"} & set(CONDITIONS)
