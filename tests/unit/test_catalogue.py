"""The demo catalogue: 200+ scenarios over 8+ categories, each with a valid eligibility rule."""

from __future__ import annotations

from collections import Counter

from scenarios.catalogue import scenarios, venues
from scenarios.eligibility import parse_rule


def test_the_catalogue_is_large_varied_unique_and_valid() -> None:
    catalogue = list(scenarios())
    assert len(catalogue) >= 200
    assert len(Counter(s["category"] for s in catalogue)) >= 8
    assert len({s["code"] for s in catalogue}) == len(catalogue)
    venue_codes = {v["code"] for v in venues()}
    for scenario in catalogue:
        parse_rule(scenario["eligibility"])
        assert scenario["venue"] in venue_codes
        assert scenario["name_zh"] and scenario["benefit_en"] and "{" not in scenario["benefit_zh"]
    assert list(scenarios()) == catalogue  # deterministic
