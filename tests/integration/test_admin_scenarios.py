"""The admin's scenario, venue and client pages: the workflow, operators' walls, the auditor's read-only."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from citycredit.core import actors
from citycredit.core.clients import ApiClient, AuthError, authenticate_secret
from scenarios import operations as registry
from scenarios.models import Scenario
from tests.databases import ScratchDatabase
from tests.integration.admin_support import AdminApp, admin_app, csrf, post, signed_in

LIBRARY_FORM = {
    "code": "library-forty-books",
    "operator": "city-library",
    "category": "library",
    "name_zh": "信易阅·免押金借书40册",
    "name_en": "Borrow 40 books deposit-free",
    "benefit_zh": "免押金借阅图书最多40册",
    "benefit_en": "Up to 40 books without a deposit",
    "min_common_tier": "3",
    "adults_only": "1",
    "quota_per_day": "1",
    "venues": "library-main",
}


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    from citycredit.migrate import upgrade

    upgrade(fresh_database.engine)
    with admin_app(fresh_database, tmp_path) as admin:
        with admin.session() as session:
            library = registry.ensure_operator(session, "city-library", "市图书馆", "City Library")
            buses = registry.ensure_operator(session, "bus-group", "公交集团", "Bus Group")
            for operator, code, category in (
                (library, "library-main", "library"),
                (buses, "bus-hub", "transport"),
            ):
                registry.add_venue(
                    session,
                    actors.SYSTEM,
                    operator=operator,
                    code=code,
                    category=category,
                    name_zh=code,
                    name_en=code,
                )
            bus = registry.create_scenario(
                session,
                actors.Actor("seed"),
                code="bus-discount",
                operator=buses,
                category="transport",
                content={
                    "name_zh": "公交八折",
                    "name_en": "Bus discount",
                    "benefit_zh": "八折",
                    "benefit_en": "20% off",
                    "eligibility": {"min_common_tier": 4},
                },
                venue_codes=["bus-hub"],
            )
            registry.publish_directly(
                session, bus, submitter=actors.Actor("seed"), publisher=actors.SYSTEM
            )
        admin.add_user("librarian", "operator", operator_code="city-library")
        admin.add_user("busman", "operator", operator_code="bus-group")
        admin.add_user("root", "platform_admin")
        admin.add_user("root2", "platform_admin")
        admin.add_user("watcher", "auditor")
        yield admin


def _works(admin: AdminApp, client_id: str, secret: str) -> bool:
    with admin.session() as session:
        try:
            key = admin.app.extensions["citycredit"].settings.key_secret
            authenticate_secret(session, client_id, secret, key_secret=key)
        except AuthError:
            return False
        return True


def _status(admin: AdminApp, code: str) -> tuple[str, list[tuple[int, str]]]:
    with admin.session() as session:
        scenario = session.scalar(select(Scenario).where(Scenario.code == code))
        assert scenario is not None
        versions = [(v.number, v.state) for v in registry.versions_of(session, scenario.id)]
        return scenario.status, versions


def test_an_operator_drafts_and_an_admin_publishes(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    created = post(librarian, "/admin/scenarios", **LIBRARY_FORM)
    assert created.status_code == 302
    page = librarian.get("/admin/scenarios/library-forty-books").get_data(as_text=True)
    assert "通用等级 良好及以上且年满18周岁" in page and "草稿" in page
    assert post(librarian, "/admin/scenarios/library-forty-books/submit").status_code == 302
    assert _status(site, "library-forty-books") == ("in_review", [(1, "in_review")])
    # Operators do not publish: that is the city's review.
    assert post(librarian, "/admin/scenarios/library-forty-books/publish").status_code == 403

    root = signed_in(site, "root")
    waiting = root.get("/admin/scenarios?pending=review").get_data(as_text=True)
    assert "library-forty-books" in waiting and "bus-discount" not in waiting
    sent_back = post(root, "/admin/scenarios/library-forty-books/reject", note="请补充英文说明")
    assert sent_back.status_code == 302
    assert _status(site, "library-forty-books") == ("draft", [(1, "draft")])
    assert "请补充英文说明" in librarian.get("/admin/scenarios/library-forty-books").get_data(
        as_text=True
    )
    post(librarian, "/admin/scenarios/library-forty-books/submit")
    assert post(root, "/admin/scenarios/library-forty-books/publish").status_code == 302
    assert _status(site, "library-forty-books") == ("published", [(1, "published")])

    # Editing the published scenario opens version 2; version 1 keeps serving until v2 is published.
    edited = {**LIBRARY_FORM, "benefit_zh": "免押金借阅图书最多50册"}
    del edited["code"], edited["operator"], edited["category"]
    assert post(librarian, "/admin/scenarios/library-forty-books/edit", **edited).status_code == 302
    assert _status(site, "library-forty-books") == (
        "published",
        [(2, "draft"), (1, "published")],
    )
    detail = librarian.get("/admin/scenarios/library-forty-books").get_data(as_text=True)
    assert detail.count('class="changed"') == 1 and "最多50册" in detail
    # Four eyes: the admin who submits a version cannot also publish it.
    post(root, "/admin/scenarios/library-forty-books/submit")
    refused = root.post(
        "/admin/scenarios/library-forty-books/publish",
        data={"csrf_token": csrf(root, "/admin/account")},
        follow_redirects=True,
    )
    assert "四眼原则" in refused.get_data(as_text=True)
    assert post(signed_in(site, "root2"), "/admin/scenarios/library-forty-books/publish")
    assert _status(site, "library-forty-books") == (
        "published",
        [(2, "published"), (1, "superseded")],
    )
    assert {
        e.actor
        for e in site.events("scenario.publish")
        if e.detail["scenario"] == "library-forty-books"
    } == {"admin:root", "admin:root2"}


def test_form_errors_name_every_field_and_keep_what_was_typed(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    bad = {
        **LIBRARY_FORM,
        "code": "Bad!",
        "quota_per_day": "0",
        "eligibility_json": '{"all": [{"min_common_tier": 3}, {"max_tier": 2}]}',
    }
    answer = post(librarian, "/admin/scenarios", **bad)
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert "all.1.max_tier：未知的条件类型" in page and "须为 3–64 位小写字母、数字或连字符" in page
    assert 'value="信易阅·免押金借书40册"' in page  # nothing typed is lost
    with site.session() as session:
        assert session.scalar(select(Scenario).where(Scenario.code == "Bad!")) is None


def test_an_operator_cannot_see_or_touch_another_operators_scenario(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    assert librarian.get("/admin/scenarios/bus-discount").status_code == 404
    assert librarian.get("/admin/scenarios/bus-discount/edit").status_code == 404
    assert "bus-discount" not in librarian.get("/admin/scenarios").get_data(as_text=True)
    assert "bus-discount" not in librarian.get("/admin/scenarios/export.csv").get_data(as_text=True)
    for step in ("suspend", "retire", "submit"):
        assert post(librarian, f"/admin/scenarios/bus-discount/{step}", note="x").status_code == 404
    assert (
        post(librarian, "/admin/venues/bus-hub/clients", name="x", scopes="verify").status_code
        == 404
    )
    assert librarian.get("/admin/venues/bus-hub").status_code == 404
    # Not through the form either: another operator's venue cannot be attached.
    stolen = post(librarian, "/admin/scenarios", **{**LIBRARY_FORM, "venues": "bus-hub"})
    assert stolen.status_code == 422 and "场所 bus-hub 属于其他运营方" in stolen.get_data(
        as_text=True
    )
    assert _status(site, "bus-discount") == ("published", [(1, "published")])


def test_the_auditor_reads_everything_and_changes_nothing(site: AdminApp) -> None:
    watcher = signed_in(site, "watcher")
    for path in (
        "/admin/scenarios",
        "/admin/scenarios/bus-discount",
        "/admin/venues",
        "/admin/venues/bus-hub",
        "/admin/clients",
    ):
        assert watcher.get(path).status_code == 200, path
    page = watcher.get("/admin/scenarios/bus-discount").get_data(as_text=True)
    assert "立即暂停" not in page and "编辑" not in page  # no buttons it could not use
    before = len(site.events())
    for path, form in (
        ("/admin/scenarios", LIBRARY_FORM),
        ("/admin/scenarios/bus-discount/suspend", {"note": "x"}),
        ("/admin/venues", {"code": "new-venue", "operator": "bus-group"}),
        ("/admin/venues/bus-hub/clients", {"name": "x", "scopes": "verify"}),
    ):
        assert post(watcher, path, **form).status_code == 403, path
    assert _status(site, "bus-discount") == ("published", [(1, "published")])
    with site.session() as session:
        assert session.scalars(select(ApiClient)).all() == []
    # Each refusal is itself on the record.
    assert len(site.events("admin.denied")) >= 4 and len(site.events()) > before


def test_a_client_secret_is_shown_once_and_rotation_voids_it(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    issued = post(
        librarian, "/admin/venues/library-main/clients", name="一楼借阅台", scopes="verify"
    )
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    page = issued.get_data(as_text=True)
    client_id = re.search(r'id="client-id">([^<]+)<', page)
    secret = re.search(r'id="client-secret">([^<]+)<', page)
    assert client_id and secret
    listing = librarian.get("/admin/venues/library-main").get_data(as_text=True)
    assert client_id.group(1) in listing and secret.group(1) not in listing
    assert _works(site, client_id.group(1), secret.group(1))
    rotated = post(librarian, f"/admin/clients/{client_id.group(1)}/rotate")
    new_secret = re.search(r'id="client-secret">([^<]+)<', rotated.get_data(as_text=True))
    assert new_secret and new_secret.group(1) != secret.group(1)
    assert not _works(site, client_id.group(1), secret.group(1))
    assert _works(site, client_id.group(1), new_secret.group(1))
    assert [e.detail["client"] for e in site.events("client.rotate")] == [client_id.group(1)]


def test_csv_import_reports_rows_and_keeps_the_good_ones(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    header = "code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility,quota_per_day,venues"
    rows = [
        'library-a,city-library,library,甲,A,免押金,No deposit,"{""min_common_tier"":3}",1,library-main',
        'library-b,city-library,library,乙,B,免押金,No deposit,"{""min_common_tier"":9}",1,',
        'bus-new,bus-group,transport,丙,C,八折,20% off,"{""min_common_tier"":3}",1,',
    ]
    data = ("\n".join([header, *rows]) + "\n").encode()
    import io

    answer = librarian.post(
        "/admin/scenarios/import",
        data={
            "csrf_token": csrf(librarian, "/admin/scenarios/import"),
            "file": (io.BytesIO(data), "scenarios.csv"),
        },
        content_type="multipart/form-data",
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert re.search(
        r"<td class=\"num\">3</td><td><code>library-b</code></td><td>准入条件</td>", page
    )
    assert re.search(r"<td class=\"num\">4</td><td><code>bus-new</code></td><td>运营方</td>", page)
    assert _status(site, "library-a") == ("draft", [(1, "draft")])
    with site.session() as session:
        codes = set(session.scalars(select(Scenario.code)))
    assert "library-b" not in codes and "bus-new" not in codes


def test_csv_import_refuses_control_characters_by_line_and_field_and_stores_none(
    site: AdminApp,
) -> None:
    librarian = signed_in(site, "librarian")
    header = "code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility"
    rows = [
        'library-\x00nul,city-library,library,甲,A,免押金,No deposit,"{""min_common_tier"":3}"',
        'library-esc,city-library,library,乙\x1b[2J,B,免押金,No deposit,"{""min_common_tier"":3}"',
    ]
    data = ("\n".join([header, *rows]) + "\n").encode()
    import io

    answer = librarian.post(
        "/admin/scenarios/import",
        data={
            "csrf_token": csrf(librarian, "/admin/scenarios/import"),
            "file": (io.BytesIO(data), "scenarios.csv"),
        },
        content_type="multipart/form-data",
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "\x00" not in page and "\x1b" not in page
    assert re.search(
        r"<td class=\"num\">2</td><td><code>library-\\x00nul</code></td><td>场景编码</td>"
        r"<td>含有控制字符 U\+0000",
        page,
    )
    assert re.search(
        r"<td class=\"num\">3</td><td><code>library-esc</code></td><td>名称（中文）</td>"
        r"<td>含有控制字符 U\+001B",
        page,
    )
    with site.session() as session:
        codes = set(session.scalars(select(Scenario.code)))
    assert not {c for c in codes if c.startswith("library-")}


# --- visitors from partner cities -------------------------------------------------------------------


def _upload(client: Any, data: bytes) -> Any:
    return client.post(
        "/admin/scenarios/import",
        data={
            "csrf_token": csrf(client, "/admin/scenarios/import"),
            "file": (io.BytesIO(data), "scenarios.csv"),
        },
        content_type="multipart/form-data",
    )


def _open_to_visitors(admin: AdminApp, code: str) -> dict[int, bool]:
    with admin.session() as session:
        scenario = registry.find_scenario(session, code)
        return {v.number: v.open_to_visitors for v in registry.versions_of(session, scenario.id)}


def test_the_form_opens_a_scenario_to_visitors_and_the_pages_say_for_whom(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    blank = librarian.get("/admin/scenarios/new").get_data(as_text=True)
    assert "向合作城市来访者开放" in blank
    assert re.search(r'<input type="checkbox" id="open_to_visitors"[^>]*>', blank)
    assert not re.search(r'id="open_to_visitors"[^>]*checked', blank)  # closed unless ticked

    # Adults only: a visitor's age is not known here, so the page warns that no visitor qualifies.
    form = {**LIBRARY_FORM, "open_to_visitors": "1"}
    assert post(librarian, "/admin/scenarios", **form).status_code == 302
    assert _open_to_visitors(site, "library-forty-books") == {1: True}
    detail = librarian.get("/admin/scenarios/library-forty-books").get_data(as_text=True)
    assert "已开放，但准入条件要求本市居民、年龄、本市分数或本市记录，来访者无法满足" in detail

    edit = {k: v for k, v in form.items() if k not in ("code", "operator", "category")}
    del edit["adults_only"]
    assert post(librarian, "/admin/scenarios/library-forty-books/edit", **edit).status_code == 302
    detail = librarian.get("/admin/scenarios/library-forty-books").get_data(as_text=True)
    assert "是：通用等级 良好及以上的来访者" in detail
    english = librarian.get("/admin/scenarios/library-forty-books?lang=en").get_data(as_text=True)
    assert "Open to visitors from partner cities" in english
    assert "Yes: visitors of common level Good or above" in english
    page = librarian.get("/admin/scenarios/library-forty-books/edit").get_data(as_text=True)
    assert re.search(r'id="open_to_visitors"[^>]*checked', page)  # the edit form shows it ticked

    # A form error keeps the ticked box.
    bad = post(librarian, "/admin/scenarios", **{**form, "code": "Bad!"})
    assert bad.status_code == 422
    assert re.search(r'id="open_to_visitors"[^>]*checked', bad.get_data(as_text=True))


def test_opening_or_closing_a_published_scenario_to_visitors_is_a_reviewed_version(
    site: AdminApp,
) -> None:
    busman = signed_in(site, "busman")
    root = signed_in(site, "root")
    bus_form = {
        "name_zh": "公交八折",
        "name_en": "Bus discount",
        "benefit_zh": "八折",
        "benefit_en": "20% off",
        "min_common_tier": "4",
        "venues": "bus-hub",
    }
    assert _open_to_visitors(site, "bus-discount") == {1: False}
    opened = post(busman, "/admin/scenarios/bus-discount/edit", **bus_form, open_to_visitors="1")
    assert opened.status_code == 302
    assert _open_to_visitors(site, "bus-discount") == {2: True, 1: False}
    detail = busman.get("/admin/scenarios/bus-discount").get_data(as_text=True)
    # The diff names the change, in words; the live version still serves locals only.
    changed = re.findall(r'<tr class="changed"><th scope="row">([^<]+)', detail)
    assert [name.strip() for name in changed] == ["向合作城市来访者开放"]
    assert "否，仅限本市持码人" in detail and "是：通用等级 优秀及以上的来访者" in detail
    assert post(busman, "/admin/scenarios/bus-discount/submit").status_code == 302
    assert post(root, "/admin/scenarios/bus-discount/publish").status_code == 302
    assert _status(site, "bus-discount") == ("published", [(2, "published"), (1, "superseded")])
    assert "是：通用等级 优秀及以上的来访者" in busman.get(
        "/admin/scenarios/bus-discount"
    ).get_data(as_text=True)

    # An unticked box sends nothing: saving without it closes the next version again.
    assert post(busman, "/admin/scenarios/bus-discount/edit", **bus_form).status_code == 302
    assert _open_to_visitors(site, "bus-discount") == {3: False, 2: True, 1: False}


def test_the_csv_carries_the_flag_both_ways_and_old_files_still_import(site: AdminApp) -> None:
    librarian = signed_in(site, "librarian")
    header = "code,operator,category,name_zh,name_en,benefit_zh,benefit_en,eligibility,venues"
    old_file = (
        header
        + '\nlibrary-old,city-library,library,甲,A,免押金,No deposit,"{""min_common_tier"":3}",'
        + "library-main\n"
    )
    assert _upload(librarian, old_file.encode()).status_code == 200
    assert _open_to_visitors(site, "library-old") == {1: False}

    rows = [
        'library-open,city-library,library,乙,B,免押金,No deposit,"{""min_common_tier"":3}",TRUE,',
        'library-shut,city-library,library,丙,C,免押金,No deposit,"{""min_common_tier"":3}",false,',
        'library-oops,city-library,library,丁,D,免押金,No deposit,"{""min_common_tier"":3}",是,',
    ]
    new_header = header.replace(",venues", ",open_to_visitors,venues")
    answer = _upload(librarian, ("\n".join([new_header, *rows]) + "\n").encode())
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert re.search(
        r"<td class=\"num\">4</td><td><code>library-oops</code></td>"
        r"<td>向合作城市来访者开放</td><td>须为 true 或 false</td>",
        page,
    )
    assert _open_to_visitors(site, "library-open") == {1: True}
    assert _open_to_visitors(site, "library-shut") == {1: False}

    exported = librarian.get("/admin/scenarios/export.csv").get_data(as_text=True).lstrip("\ufeff")
    lines = exported.splitlines()
    assert "valid_until,open_to_visitors,venues," in lines[0]
    by_code = {line.split(",", 1)[0]: line for line in lines[1:]}
    assert ",true," in by_code["library-open"] and ",false," in by_code["library-shut"]
    # The export imports back as unchanged, flag included.
    again = _upload(librarian, exported.encode())
    assert again.status_code == 200
    assert "<dt>未变化</dt><dd>3</dd>" in again.get_data(as_text=True)

    # A file without the column leaves an existing scenario's flag as it is, like any absent column.
    old_row = (
        'library-open,city-library,library,乙,B,免押金,No deposit,"{""min_common_tier"":3}",\n'
    )
    kept = _upload(librarian, (header + "\n" + old_row).encode())
    assert "<dt>未变化</dt><dd>1</dd>" in kept.get_data(as_text=True)
    assert _open_to_visitors(site, "library-open") == {1: True}

    # Flipping one cell changes that scenario alone.
    flipped = exported.replace(
        by_code["library-open"], by_code["library-open"].replace(",true,", ",false,")
    )
    changed = _upload(librarian, flipped.encode()).get_data(as_text=True)
    assert "<dt>更新</dt><dd>1</dd>" in changed and "<dt>未变化</dt><dd>2</dd>" in changed
    assert _open_to_visitors(site, "library-open") == {1: False}
