"""The one place that words a citizen's tier: the city tier, then the common level, in both languages."""

from __future__ import annotations

import pytest

from citycredit.cli.demo import reference_model_text
from points_engine.scoring_model import parse_model
from points_engine.tiers import (
    TIER_RELATION,
    common_level_words,
    condition_words,
    local_tier_name,
    tier_pair,
    tier_parts,
)
from tests.rule_cases import ITEMISED


def test_the_pair_names_the_city_tier_then_the_common_level_in_both_languages() -> None:
    assert (
        tier_pair("A", "A级（诚信）", "A (trustworthy)", 3, "zh")
        == "本市等级 A级（诚信） · 通用等级 良好"
    )
    assert tier_pair("A", "A级（诚信）", "A (trustworthy)", 3, "en") == (
        "City tier A (trustworthy) · common level Good"
    )


def test_the_code_is_said_once_and_added_only_where_the_name_lacks_it() -> None:
    # The reference model's names carry the code: no "D (needs improvement) (D)".
    assert (
        local_tier_name("D", "D级（待提升）", "D (needs improvement)", "en")
        == "D (needs improvement)"
    )
    # A model whose names are words only gets the code in front, so the tier stays identifiable.
    assert local_tier_name("GOOD", "良好", "Good", "en") == "GOOD Good"
    assert local_tier_name("S", "优", "Top", "zh") == "S级 优"
    # No English name: the Chinese one rather than a blank; no name at all: the code.
    assert local_tier_name("A", "A级", "", "en") == "A级"
    assert local_tier_name("A", None, None, "zh") == "A"


def test_the_halves_are_the_pair_split_at_its_dot() -> None:
    assert tier_parts("AA", "AA", "AA", 4, "en") == ("City tier AA", "common level Very good")
    assert tier_parts("AA", "AA", "AA", None, "zh") == ("本市等级 AA", None)


def test_without_a_common_level_the_pair_is_the_city_tier_alone() -> None:
    assert tier_pair("C", None, None, None, "en") == "City tier C"
    assert tier_pair("C", None, None, 1, "zh") == "本市等级 C · 通用等级 待提升"


def test_a_condition_speaks_of_the_common_level() -> None:
    assert common_level_words(4, "zh", or_above=True) == "通用等级 优秀及以上"
    assert common_level_words(4, "en", or_above=True) == "common level Very good or above"
    assert common_level_words(1, "en") == "common level Needs improvement"
    with pytest.raises(KeyError):
        common_level_words(6, "en")


def test_a_condition_choice_names_the_lowest_city_tier_it_covers() -> None:
    model = parse_model(reference_model_text("itemised-base1000.yaml"))
    assert (
        condition_words(3, model.tiers, "zh")
        == "通用等级 良好及以上 · 即本市等级 A级（诚信）及以上"
    )
    assert condition_words(5, model.tiers, "en") == (
        "common level Excellent or above · city tier AAA (exemplary) or above"
    )
    # Two city tiers (C and D) map to level 1: "1 or above" covers them all, down to D.
    assert condition_words(1, model.tiers, "en").endswith(
        "city tier D (needs improvement) or above"
    )
    # A model that maps nothing to a level, or no model: the common level alone.
    test_model = parse_model(ITEMISED)
    assert condition_words(5, test_model.tiers, "en") == "common level Excellent or above"
    assert condition_words(2, (), "zh") == "通用等级 一般及以上"


def test_the_relation_is_one_sentence_per_language_without_full_width_colons_in_english() -> None:
    zh, en = TIER_RELATION
    assert "本市等级" in zh and "通用等级" in zh
    assert "city tier" in en and "common level" in en and "partner cities" in en
    assert not any("\uff00" <= ch <= "\uffef" or ch in "。，" for ch in en)
