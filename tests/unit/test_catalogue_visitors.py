"""The demo catalogue's offer to visitors from partner cities: what a traveller uses, by common tier."""

from __future__ import annotations

from collections import Counter

from scenarios.catalogue import TEMPLATES, scenarios
from scenarios.demo import DEMO_SCENARIOS
from scenarios.eligibility import lowest_visitor_level, parse_rule


def test_a_sensible_share_of_the_catalogue_is_open_to_visitors() -> None:
    catalogue = list(scenarios())
    opened = [s for s in catalogue if s["open_to_visitors"]]
    assert 0.15 < len(opened) / len(catalogue) < 0.5
    # Travellers' benefits; not hospitals, government counters, parking or gyms.
    assert set(Counter(s["category"] for s in opened)) == {
        "library",
        "transport",
        "rental",
        "tourism",
        "lodging",
    }


def test_every_open_benefit_reads_only_the_common_tier_and_grants_to_some_visitor() -> None:
    for scenario in scenarios():
        rule = parse_rule(scenario["eligibility"])
        level = lowest_visitor_level(rule)
        if scenario["open_to_visitors"]:
            assert rule.facts_needed() == {"common_tier"}, scenario["code"]
            assert level == scenario["eligibility"]["min_common_tier"], scenario["code"]
        elif rule.facts_needed() != {"common_tier"}:
            assert level is None, scenario["code"]  # a local condition shuts visitors out


def test_nothing_reserved_for_residents_or_adults_is_open() -> None:
    for category, templates in TEMPLATES.items():
        for template in templates:
            if template.visitors:
                assert not (template.residents_only or template.adults_only), (category, template)


def test_the_three_example_scenarios_serve_visitors() -> None:
    for spec in DEMO_SCENARIOS:
        content = spec["content"]
        assert content["open_to_visitors"] is True
        assert lowest_visitor_level(parse_rule(content["eligibility"])) is not None
