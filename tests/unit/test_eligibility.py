"""Eligibility rules as data: parsed safely, evaluated with reasons, refused precisely when wrong."""

from __future__ import annotations

import pytest

from scenarios.eligibility import (
    CONDITIONS,
    CitizenFacts,
    RuleError,
    lowest_visitor_level,
    parse_rule,
)

ADULT_RESIDENT_GOOD = CitizenFacts(
    common_tier=3, local_score=990, age=30, resident=True, has_direct_tier_record=False
)


def facts(**changes: object) -> CitizenFacts:
    return CitizenFacts(**{**ADULT_RESIDENT_GOOD.__dict__, **changes})


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
        ({"common_tier": 2}, "min_common_tier", "需达到通用等级 良好及以上"),
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
        rule.describe("zh") == "通用等级 良好及以上且年满18周岁且本市居民且无直接定级的严重失信记录"
    )
    assert rule.describe("en").startswith("common level Good or above and aged 18 or over")


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


# --- visitors from partner cities -----------------------------------------------------------------

VISITOR = CitizenFacts.for_visitor(5)  # the best common level, and nothing local


def test_a_visitor_has_only_a_common_level() -> None:
    assert (
        CitizenFacts(
            common_tier=5,
            local_score=None,
            age=None,
            resident=False,
            has_direct_tier_record=False,
            visitor=True,
        )
        == VISITOR
    )
    # Locals stay what they were: not visitors unless said.
    assert ADULT_RESIDENT_GOOD.visitor is False
    with pytest.raises(ValueError, match="not a resident"):
        facts(visitor=True)


def test_min_common_tier_works_for_a_visitor_as_for_a_local() -> None:
    rule = parse_rule({"min_common_tier": 4})
    assert rule.evaluate(CitizenFacts.for_visitor(4)).eligible
    assert rule.evaluate(CitizenFacts.for_visitor(5)).eligible
    refused = rule.evaluate(CitizenFacts.for_visitor(3))
    local = rule.evaluate(facts(common_tier=3))
    assert not refused.eligible and refused.unmet == local.unmet


@pytest.mark.parametrize(
    ("rule", "zh", "en"),
    [
        (
            {"min_local_score": 0},  # even the lowest threshold: there is no local score to read
            "外地来访者无本市分数，此条件不适用",
            "visitors from partner cities have no local score here",
        ),
        (
            {"no_direct_tier_record": True},
            "外地来访者的信用记录不在本市，无法确认无直接定级的严重失信记录",
            "a visitor's records are held by their own city, so the absence of a record that "
            "sets the tier cannot be confirmed here",
        ),
        (
            {"min_age": 18},
            "外地来访者的年龄在本市无从核实，无法确认年满18周岁",
            "a visitor's age is not known here, so being 18 or older cannot be confirmed",
        ),
        (
            {"resident": True},
            "限本市居民，合作城市来访者不适用",
            "for residents of this city, not visitors from partner cities",
        ),
    ],
)
def test_a_local_condition_never_grants_to_a_visitor_and_says_why(
    rule: dict[str, object], zh: str, en: str
) -> None:
    outcome = parse_rule(rule).evaluate(VISITOR)
    assert not outcome.eligible
    ((kind,),) = [rule.keys()]
    assert [(r.kind, r.zh, r.en) for r in outcome.unmet] == [(kind, zh, en)]


def test_the_same_local_conditions_still_grant_to_locals() -> None:
    for rule in ({"min_local_score": 0}, {"no_direct_tier_record": True}, {"min_age": 18}):
        assert parse_rule(rule).evaluate(ADULT_RESIDENT_GOOD).eligible, rule


def test_a_local_without_a_birth_date_is_told_the_age_cannot_be_confirmed() -> None:
    outcome = parse_rule({"min_age": 18}).evaluate(facts(age=None))
    assert [(r.zh, r.en) for r in outcome.unmet] == [
        (
            "无出生日期记录，无法确认年满18周岁",
            "no birth date on record, so being 18 or older cannot be confirmed",
        )
    ]
    # A known age below the threshold keeps the plain reason.
    assert [r.zh for r in parse_rule({"min_age": 18}).evaluate(facts(age=17)).unmet] == [
        "需年满18周岁"
    ]


def test_a_visitor_whose_age_is_known_is_judged_by_it() -> None:
    rule = parse_rule({"min_age": 60})
    assert rule.evaluate(CitizenFacts.for_visitor(3, age=65)).eligible
    assert [r.zh for r in rule.evaluate(CitizenFacts.for_visitor(3, age=30)).unmet] == [
        "需年满60周岁"
    ]


def test_any_lets_a_visitor_in_through_the_common_level() -> None:
    rule = parse_rule({"any": [{"min_local_score": 900}, {"min_common_tier": 4}]})
    assert rule.evaluate(CitizenFacts.for_visitor(4)).eligible
    refused = rule.evaluate(CitizenFacts.for_visitor(3))
    assert [r.kind for r in refused.unmet] == ["min_local_score", "min_common_tier"]
    assert refused.unmet[0].en == "visitors from partner cities have no local score here"


@pytest.mark.parametrize(
    ("rule", "level"),
    [
        ({"min_common_tier": 3}, 3),
        ({"min_common_tier": 1}, 1),
        ({"any": [{"min_common_tier": 5}, {"all": [{"min_common_tier": 2}, {"min_age": 60}]}]}, 5),
        ({"any": [{"min_local_score": 900}, {"min_common_tier": 4}]}, 4),
        ({"all": [{"min_common_tier": 3}, {"resident": True}]}, None),
        ({"all": [{"min_common_tier": 4}, {"no_direct_tier_record": True}]}, None),
        ({"all": [{"min_common_tier": 3}, {"min_age": 18}]}, None),
        ({"min_local_score": 0}, None),
    ],
)
def test_the_lowest_level_at_which_a_rule_grants_to_a_visitor(
    rule: dict[str, object], level: int | None
) -> None:
    assert lowest_visitor_level(parse_rule(rule)) == level
