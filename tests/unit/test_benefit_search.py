"""Finding a benefit without a database: districts read from venues, the words, the preview's range."""

from __future__ import annotations

import dataclasses

import pytest

from scenarios.benefit_search import (
    FULL_LIST,
    PREVIEW,
    BenefitQuery,
    QueryError,
    find_benefits,
    parse_query,
)
from scenarios.benefits import BenefitView, VenueView, district_of


def view(
    code: str, category: str, *, venue: str = "", address: str = "", **more: object
) -> BenefitView:
    fields: dict[str, object] = dict(
        code=code, category=category, category_zh=category, category_en=category,
        name_zh=code, name_en=code, benefit_zh="", benefit_en="", operator_zh="", operator_en="",
        requirement_zh="信用等级良好及以上", requirement_en="tier Good or better",
        needed_tier=3, valid_until=None, eligible=True,
        venues=[VenueView(venue, venue, venue, address, district_of(address, venue))] if venue else [],
    )  # fmt: skip
    fields.update(more)
    return BenefitView(**fields)  # type: ignore[arg-type]


def test_a_venues_district_is_read_from_its_address_before_its_name() -> None:
    assert district_of("黄石市下陆区团城山街道1号", "黄石港区图书馆") == "xl"
    assert district_of("", "黄石港区图书馆") == "hsg"
    assert district_of("黄石市磁湖路1号", "市图书馆") is None


def test_words_match_all_of_them_in_any_width_and_case() -> None:
    listed = [
        view("a", "library", venue="下陆区图书馆", name_en="Xialu Library"),
        view("b", "library", venue="铁山区图书馆", name_en="Library B"),
    ]
    found = find_benefits(listed, BenefitQuery("ＸＩＡＬＵ  library"))
    assert [b.code for g in found.eligible for b in g.shown] == ["a"]
    # A district's English name finds its venues too, though no English name of theirs says it.
    found = find_benefits(listed, BenefitQuery("Tieshan", category="library"))
    assert found.matching == 1 and found.categories == [("library", 1)]


def test_a_long_list_previews_a_few_of_each_condition_across_categories() -> None:
    listed = [
        view(f"{c}-{i:02}", c) for c in ("library", "transport", "parking") for i in range(20)
    ]
    assert len(listed) > FULL_LIST
    found = find_benefits(listed, BenefitQuery())
    (group,) = found.eligible
    assert found.previewed and group.total == 60 and group.more == 60 - PREVIEW
    assert [b.category for b in group.shown[:3]] == ["library", "transport", "parking"]
    # One condition asked for by name shows all of it.
    whole = find_benefits(listed, dataclasses.replace(BenefitQuery(), condition=group.key))
    assert not whole.previewed and len(whole.eligible[0].shown) == 60


def test_what_i_qualify_for_comes_first_and_the_rest_keeps_why() -> None:
    from scenarios.eligibility import Reason

    listed = [
        view("hard", "library", eligible=False, needed_tier=4, requirement_zh="优秀",
             requirement_en="Very good", unmet=[Reason("min_common_tier", "需优秀", "needs VG")]),
        view("easy", "library"),
    ]  # fmt: skip
    found = find_benefits(listed, BenefitQuery())
    assert [g.shown[0].code for g in found.eligible] == ["easy"]
    assert [(g.shown[0].code, g.unmet[0].zh) for g in found.others] == [("hard", "需优秀")]
    assert (found.eligible_count, found.other_count) == (1, 1)
    # Within one condition, the category chips count as their links lead: without the condition.
    hard = found.others[0].key
    within = find_benefits(listed, BenefitQuery(condition=hard))
    assert within.matching == 1 and within.categories == [("library", 2)]


@pytest.mark.parametrize(
    ("text", "category", "district", "says"),
    [
        ("图" * 101, "", "", "too long (101 characters)"),
        ("a\x00b", "", "", "cannot be searched"),
        ("", "casino", "", "no such category"),
        ("", "", "atlantis", "no such district"),
    ],
)
def test_a_bad_query_is_refused_with_words(
    text: str, category: str, district: str, says: str
) -> None:
    with pytest.raises(QueryError) as refused:
        parse_query(text, category, district, "", [view("a", "library")])
    assert says in refused.value.en and refused.value.zh
