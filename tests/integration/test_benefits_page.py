"""Finding a benefit on the citizen's page (/me/benefits), on SQLite and PostgreSQL: search, a category,
a district ("near me"), what I qualify for first with the rest folded, each condition said once, and
the unfiltered page a fraction of the whole catalogue's weight.

The demo catalogue (``scenarios.catalogue``: 210 benefits, each at one venue of one district) is
loaded; Alice is tier A (common level 3, 良好), an adult, with no record that sets the tier directly,
so she qualifies for exactly the benefits asking for level 3 or less.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from scenarios import catalogue
from scenarios.demo import load_catalogue
from tests.conftest import BACKENDS, _require
from tests.databases import ScratchDatabase
from tests.integration.citizen_support import CitizenApp, citizen_app, post, sign_in, text

OFFERED = list(catalogue.scenarios())
BY_ZH = {s["name_zh"]: s for s in OFFERED}
BY_EN = {s["name_en"]: s for s in OFFERED}
WHOLE_LIST_BYTES = 80_000  # the page listed all 210 in full before (82 KB)


def needed_tier(spec: dict[str, Any]) -> int:
    rule = spec["eligibility"]
    return max(c["min_common_tier"] for c in rule.get("all", [rule]) if "min_common_tier" in c)


def qualifies(spec: dict[str, Any]) -> bool:
    return needed_tier(spec) <= 3


def district_of(spec: dict[str, Any]) -> str:
    return str(spec["venue"]).split("-")[1]


@pytest.fixture(scope="module", params=BACKENDS)
def alice(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlaskClient]:
    """Alice signed in on a city with the demo catalogue, once per database: the tests only read."""
    _require(request.param)
    tmp = tmp_path_factory.mktemp("benefits")
    db = ScratchDatabase(request.param, tmp)
    try:
        with citizen_app(db, tmp) as city:
            yield signed_in(city)
    finally:
        db.drop()


def signed_in(city: CitizenApp) -> FlaskClient:
    seeded = city.seed()
    with city.session() as session:
        load_catalogue(session)
    client = city.client()
    sign_in(client, seeded.alice.number)
    response = post(client, "/me/consent", token_from="/me/consent", action="give")
    assert response.status_code == 302
    return client


def get(client: FlaskClient, path: str) -> tuple[int, str]:
    """The page in Chinese unless ``path`` asks for English (the choice is kept in the session)."""
    if "lang=" not in path:
        path += ("&" if "?" in path else "?") + "lang=zh"
    response = client.get(path)
    return response.status_code, text(response)


def sections(page: str) -> tuple[str, str]:
    """(what I qualify for, the folded rest) of a benefits page."""
    mine, _, rest = page.partition('<details class="rest"')
    return mine, rest


def names(part: str) -> list[str]:
    return re.findall(r"<li><strong>(.*?)</strong>", part)


def found(page: str) -> int:
    match = re.search(r'<p id="found">找到 (\d+) 项', page) or re.search(
        r'<p id="found">(\d+) found', page
    )
    assert match, page
    return int(match.group(1))


def chips(page: str, label: str) -> dict[str, tuple[str, int | None, bool]]:
    """The chips of the navigation labelled ``label``: text -> (link, count, current)."""
    nav = re.search(
        rf'<nav aria-labelledby="[^"]+"><p class="chips-label" id="[^"]+">{label}</p><ul class="chips">(.*?)</ul></nav>',
        page,
        re.S,
    )
    assert nav, f"no {label} chips"
    out = {}
    for href, current, inner in re.findall(
        r'<li><a href="([^"]+)"( aria-current="true")?>(.*?)</a></li>', nav.group(1)
    ):
        count = re.search(r'<span class="n">(\d+)</span>', inner)
        name = re.sub(r"<span.*?</span>", "", inner).strip()
        out[name] = (
            href.replace("&amp;", "&"),
            int(count.group(1)) if count else None,
            bool(current),
        )
    return out


def test_the_unfiltered_page_shows_what_i_qualify_for_first_and_folds_the_rest_with_counts(
    alice: FlaskClient,
) -> None:
    status, page = get(alice, "/me/benefits")
    assert status == 200
    qualifying = [s for s in OFFERED if qualifies(s)]
    mine, rest = sections(page)
    assert (
        f'<strong id="eligible-count">{len(qualifying)}</strong> 项，共 {len(OFFERED)} 项' in mine
    )
    assert f'您可享受的权益 <span class="count">（{len(qualifying)} 项）</span>' in mine
    assert (
        f'其余权益（暂不符合） <span class="count">（{len(OFFERED) - len(qualifying)} 项）' in rest
    )
    assert "<details" in page and '<details class="rest" id="rest" open' not in page
    assert names(mine) and all(qualifies(BY_ZH[n]) for n in names(mine))
    assert names(rest) and not any(qualifies(BY_ZH[n]) for n in names(rest))
    # A few of each condition, each with a link to all of its own.
    more = re.findall(
        r'<a href="/me/benefits\?condition=([0-9a-f]{8})">查看此条件下全部 (\d+) 项', page
    )
    assert sum(int(n) for _, n in more) == len(OFFERED)
    # Far lighter than the whole list it was.
    assert len(page.encode()) < WHOLE_LIST_BYTES / 4, len(page.encode())


def test_each_condition_is_said_once_above_the_benefits_that_share_it(alice: FlaskClient) -> None:
    _, page = get(alice, "/me/benefits?category=library")
    assert found(page) == 24
    headings = re.findall(r'<h3 id="(?:yes|no)-[0-9a-f]{8}">(.*?) <span', page)
    assert len(headings) == len(set(headings)) >= 2
    # Every library benefit is listed (24 is few enough to show them all), none under a repeated
    # condition; the condition is not on the cards.
    assert sorted(names(page)) == sorted(
        s["name_zh"] for s in OFFERED if s["category"] == "library"
    )
    assert "条件：" not in page and "可享受</span>" not in page
    assert page.count("通用等级 良好及以上 <span") == 1
    # What is out of reach says why, once per condition.
    _, rest = sections(page)
    assert rest.count("原因：需达到通用等级 优秀及以上") == len(re.findall(r'<h3 id="no-', rest))


def test_search_finds_by_name_place_category_and_district_in_either_language(
    alice: FlaskClient,
) -> None:
    xialu_libraries = sorted(s["name_zh"] for s in OFFERED if s["venue"] == "library-xl")
    status, page = get(alice, "/me/benefits?q=" + quote("下陆区 图书馆"))
    assert status == 200 and found(page) == len(xialu_libraries) == 4
    assert sorted(names(page)) == xialu_libraries
    assert 'value="下陆区 图书馆"' in page
    # A category's name, a benefit's words, full-width letters and English all find.
    _, page = get(alice, "/me/benefits?q=" + quote("信易停"))
    assert found(page) == sum(1 for s in OFFERED if s["category"] == "parking")
    _, page = get(alice, "/me/benefits?q=" + quote("婴儿推车"))
    assert found(page) == 6 and all("婴儿推车" in n for n in names(page))
    _, page = get(alice, "/me/benefits?lang=en&q=" + quote("ＸＩＡＬＵ library"))
    assert found(page) == 4 and sorted(names(page)) == sorted(
        s["name_en"] for s in OFFERED if s["venue"] == "library-xl"
    )
    assert all(BY_EN[n]["venue"] == "library-xl" for n in names(page))


def test_category_chips_count_within_the_search_and_keep_it(alice: FlaskClient) -> None:
    _, page = get(alice, "/me/benefits?q=" + quote("免押金"))
    deposit_free = [s for s in OFFERED if "免押金" in s["name_zh"] + s["benefit_zh"]]
    assert found(page) == len(deposit_free)
    by_category = chips(page, "按类别")
    assert by_category["全部类别"][2] is True
    library = by_category["图书借阅"]
    assert library[1] == sum(1 for s in deposit_free if s["category"] == "library")
    assert library[0] == "/me/benefits?q=" + quote("免押金") + "&category=library"
    _, page = get(alice, library[0])
    assert chips(page, "按类别")["图书借阅"][2] is True
    assert found(page) == library[1] and all(n.startswith("信易阅·") for n in names(page))
    # The search box keeps the category for the next search.
    assert '<input type="hidden" name="category" value="library">' in page


def test_near_me_keeps_the_district_in_the_query_string_only(alice: FlaskClient) -> None:
    status, page = get(alice, "/me/benefits?district=xl")
    assert status == 200
    in_xialu = [s for s in OFFERED if district_of(s) == "xl"]
    assert found(page) == len(in_xialu) == 35
    assert {BY_ZH[n]["venue"].split("-")[1] for n in names(page)} == {"xl"}
    assert chips(page, "附近：按区县")["下陆区"][1:] == (35, True)
    # Every other link of the page carries it; the category chips count within it.
    transport = chips(page, "按类别")["公共交通"]
    assert transport[0] == "/me/benefits?category=transport&district=xl"
    assert transport[1] == sum(1 for s in in_xialu if s["category"] == "transport")
    assert '<input type="hidden" name="district" value="xl">' in page
    # Remembered nowhere else: the plain page is the whole city again.
    _, page = get(alice, "/me/benefits")
    assert chips(page, "附近：按区县")["全市"][2] is True and "找到" not in page
    # In English the districts have their English names.
    _, page = get(alice, "/me/benefits?lang=en&district=xl")
    assert chips(page, "Near me: by district")["Xialu"][2] is True


def test_a_condition_link_lists_all_of_that_condition(alice: FlaskClient) -> None:
    _, page = get(alice, "/me/benefits")
    key, count = re.findall(
        r'<a href="/me/benefits\?condition=([0-9a-f]{8})">查看此条件下全部 (\d+) 项', page
    )[1]
    _, page = get(alice, f"/me/benefits?condition={key}")
    assert found(page) == int(count) == len(names(page))
    assert "查看此条件下全部" not in page


def test_an_empty_result_says_so_and_offers_to_clear_the_filter(alice: FlaskClient) -> None:
    status, page = get(alice, "/me/benefits?q=" + quote("潜水艇") + "&district=yx")
    assert status == 200 and found(page) == 0
    assert "没有符合筛选条件的权益。" in page
    assert '<a href="/me/benefits">清除筛选</a>' in page
    _, page = get(alice, "/me/benefits?lang=en&q=submarine")
    assert "No benefit matches this filter." in page and ">Clear the filter</a>" in page


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("q=" + "图" * 101, "搜索词太长（101 个字），请缩短到 100 个字以内。"),
        ("q=" + "a" * 5000, "搜索词太长（5000 个字）"),
        ("category=casino", "没有这个权益类别。"),
        ("district=atlantis", "没有这个区县。"),
        ("condition=deadbeef", "没有这个条件的权益"),
    ],
)
def test_bad_query_input_gets_a_clear_answer(alice: FlaskClient, query: str, says: str) -> None:
    status, page = get(alice, "/me/benefits?" + query)
    assert status == 400 and says in page
    assert 'aria-invalid="true"' in page and 'aria-describedby="q-hint q-error"' in page
    assert '<a href="/me/benefits" id="clear">清除筛选，查看全部权益</a>' in page


def test_control_characters_in_the_search_are_refused_with_a_message(alice: FlaskClient) -> None:
    for query in ("q=a%00b", "q=%1b%5B31m", "q=" + quote("图书\n馆")):
        status, page = get(alice, "/me/benefits?" + query)
        assert status == 400, query
        assert "控制字符" in page, query
