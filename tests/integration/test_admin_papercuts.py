"""Operators' paper cuts (issue 12): the auditor's own password, validity in words, each operator once
in a choice, field errors tied to their inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from citycredit.core import actors
from scenarios import operations as registry
from scenarios.demo import load_catalogue
from tests.databases import ScratchDatabase
from tests.integration.admin_support import (
    PASSWORD,
    AdminApp,
    admin_app,
    post,
    sign_in,
    signed_in,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    from citycredit.migrate import upgrade

    upgrade(fresh_database.engine)
    with admin_app(fresh_database, tmp_path) as admin:
        with admin.session() as session:
            library = registry.ensure_operator(session, "city-library", "市图书馆", "City Library")
            registry.add_venue(
                session,
                actors.SYSTEM,
                operator=library,
                code="library-main",
                category="library",
                name_zh="市图书馆总馆",
                name_en="Main Library",
            )
        admin.add_user("root", "platform_admin")
        admin.add_user("watcher", "auditor")
        admin.add_user("librarian", "operator", operator_code="city-library")
        yield admin


VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "option"})


class _Elements(HTMLParser):
    """Every element's attributes by id, and the text inside each element that has an id."""

    def __init__(self, page: str):
        super().__init__()
        self.by_id: dict[str, dict[str, str | None]] = {}
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        element_id = found.get("id")
        if element_id:
            self.by_id[element_id] = found
            self.text[element_id] = ""
        if tag not in VOID:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id:
                self.text[element_id] += data


def _invalid_fields(page: str) -> dict[str, str]:
    """id -> the text of the error it names, for every input marked aria-invalid on the page."""
    elements = _Elements(page)
    out = {}
    for element_id, attrs in elements.by_id.items():
        if attrs.get("aria-invalid") != "true":
            continue
        described = (attrs.get("aria-describedby") or "").split()
        errors = [d for d in described if d.endswith("-error")]
        assert errors, f"{element_id} is invalid but names no error"
        assert all(d in elements.by_id for d in described), f"{element_id} names a missing id"
        out[element_id] = " ".join(elements.text.get(d, "") for d in errors).strip()
    return out


# --- the auditor's own password -------------------------------------------------------------------


def test_an_auditor_changes_their_own_password_and_still_nothing_else(site: AdminApp) -> None:
    auditor = signed_in(site, "watcher")
    page = auditor.get("/admin/account").get_data(as_text=True)
    assert 'action="/admin/account/password"' in page
    assert "请联系平台管理员重置" not in page

    wrong = post(
        auditor,
        "/admin/account/password",
        current_password="not my password",
        new_password=NEW_PASSWORD,
        new_password_again=NEW_PASSWORD,
    )
    assert wrong.status_code == 400
    assert _invalid_fields(wrong.get_data(as_text=True)) == {"current_password": "当前密码不正确。"}

    changed = post(
        auditor,
        "/admin/account/password",
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
        new_password_again=NEW_PASSWORD,
    )
    assert changed.status_code == 302
    assert "密码已更改" in auditor.get("/admin/account").get_data(as_text=True)
    assert [e.actor for e in site.events("admin.password_change")] == ["admin:watcher"]
    # Still signed in here; the old password no longer opens the account, the new one does.
    assert auditor.get("/admin/audit").status_code == 200
    assert sign_in(site.client(), "watcher", PASSWORD).status_code == 200
    assert sign_in(site.client(), "watcher", NEW_PASSWORD).status_code == 302
    # Read-only otherwise: another account's password is still out of reach.
    refused = post(auditor, "/admin/users/1/password", password="x" * 20, password_again="x" * 20)
    assert refused.status_code == 403


# --- validity in words ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "zh", "en"),
    [
        (None, None, "长期有效", "open-ended"),
        ("2026-07-01", None, "自 2026-07-01 起", "from 2026-07-01 on"),
        (None, "2026-12-31", "至 2026-12-31 止", "until 2026-12-31"),
        ("2026-07-01", "2026-12-31", "2026-07-01 至 2026-12-31", "2026-07-01 to 2026-12-31"),
    ],
)
def test_a_scenarios_validity_is_said_in_words_never_dots(
    site: AdminApp, valid_from: str | None, valid_until: str | None, zh: str, en: str
) -> None:
    with site.session() as session:
        library = registry.find_operator(session, "city-library")
        assert library is not None
        scenario = registry.create_scenario(
            session,
            actors.Actor("seed"),
            code="library-books",
            operator=library,
            category="library",
            content={
                "name_zh": "免押金借书",
                "name_en": "Deposit-free books",
                "benefit_zh": "免押金",
                "benefit_en": "No deposit",
                "eligibility": {"min_common_tier": 3},
                "valid_from": valid_from,
                "valid_until": valid_until,
            },
        )
        registry.publish_directly(
            session, scenario, submitter=actors.Actor("seed"), publisher=actors.SYSTEM
        )
    client = signed_in(site, "root")
    chinese = client.get("/admin/scenarios/library-books").get_data(as_text=True)
    assert re.search(r'<dd class="validity">([^<]*)</dd>', chinese).group(1) == zh  # type: ignore[union-attr]
    english = client.get("/admin/scenarios/library-books?lang=en").get_data(as_text=True)
    assert re.search(r'<dd class="validity">([^<]*)</dd>', english).group(1) == en  # type: ignore[union-attr]
    assert "…" not in chinese and "…" not in english

    # An edit of the dates: the comparison with the live version says "none" for an open end.
    edited = post(
        client,
        "/admin/scenarios/library-books/edit",
        name_zh="免押金借书",
        name_en="Deposit-free books",
        benefit_zh="免押金",
        benefit_en="No deposit",
        min_common_tier="3",
        valid_from="2026-08-01",
        valid_until="",
    )
    assert edited.status_code == 302
    diff = client.get("/admin/scenarios/library-books?lang=zh").get_data(as_text=True)
    row = re.search(r"截止日期.*?</tr>", diff, re.S).group(0)  # type: ignore[union-attr]
    assert "None" not in diff and "不限" in row


# --- each operator once ---------------------------------------------------------------------------


def _options(page: str, select_id: str) -> list[str]:
    found = re.search(rf'<select id="{select_id}"[^>]*>(.*?)</select>', page, re.S)
    assert found, select_id
    return re.findall(r"<option[^>]*>([^<]*)</option>", found.group(1))


def test_each_operator_appears_once_in_the_demo_citys_choices(site: AdminApp) -> None:
    with site.session() as session:
        load_catalogue(session)
    client = signed_in(site, "root")
    for path, select_id in (("/admin/scenarios", "operator"), ("/admin/venues", "v-operator")):
        labels = _options(client.get(path).get_data(as_text=True), select_id)
        labels = [label for label in labels if label != "全部"]
        assert len(labels) >= 9, path
        assert len(labels) == len(set(labels)), (path, labels)


def test_two_operators_of_one_name_are_told_apart_and_filter_apart(site: AdminApp) -> None:
    with site.session() as session:
        for code, category in (("bureau-libraries", "library"), ("bureau-parks", "tourism")):
            operator = registry.ensure_operator(
                session, code, "市文化和旅游局", "Culture and Tourism Bureau"
            )
            scenario = registry.create_scenario(
                session,
                actors.Actor("seed"),
                code=f"{code}-benefit",
                operator=operator,
                category=category,
                content={
                    "name_zh": f"{code} 权益",
                    "name_en": f"{code} benefit",
                    "benefit_zh": "优惠",
                    "benefit_en": "A discount",
                    "eligibility": {"min_common_tier": 3},
                },
            )
            registry.publish_directly(
                session, scenario, submitter=actors.Actor("seed"), publisher=actors.SYSTEM
            )
    client = signed_in(site, "root")
    labels = _options(client.get("/admin/scenarios").get_data(as_text=True), "operator")
    assert "市文化和旅游局 (bureau-libraries)" in labels
    assert "市文化和旅游局 (bureau-parks)" in labels
    assert "市图书馆" in labels  # a name of its own needs no code
    assert len(labels) == len(set(labels))
    english = client.get("/admin/venues?lang=en").get_data(as_text=True)
    assert "Culture and Tourism Bureau (bureau-parks)" in _options(english, "v-operator")
    shown = client.get("/admin/scenarios?operator=bureau-parks").get_data(as_text=True)
    assert "bureau-parks-benefit" in shown and "bureau-libraries-benefit" not in shown


# --- field errors tied to their inputs ------------------------------------------------------------


def test_every_forms_field_errors_are_tied_to_their_inputs(site: AdminApp) -> None:
    root = signed_in(site, "root")

    scenario = post(
        root,
        "/admin/scenarios",
        code="library-forty",
        operator="city-library",
        category="library",
        name_zh="借书",
        name_en="Books",
        benefit_zh="免押金",
        benefit_en="No deposit",
        min_common_tier="3",
        quota_per_day="0",
        valid_from="2026-09-01",
        valid_until="2026-08-01",
    )
    assert scenario.status_code == 422
    invalid = _invalid_fields(scenario.get_data(as_text=True))
    assert set(invalid) == {"quota_per_day", "valid_until"}
    assert invalid["valid_until"] == "不能早于生效日期"

    user = post(
        root,
        "/admin/users/new",
        username="Not A Name",
        role="auditor",
        password=NEW_PASSWORD,
        password_again=NEW_PASSWORD,
    )
    assert user.status_code == 400
    page = user.get_data(as_text=True)
    assert list(_invalid_fields(page)) == ["username"]
    # The hint stays named beside the error.
    assert 'aria-describedby="username-hint username-error"' in page

    mismatch = post(
        root, "/admin/users/new", username="newbie", role="auditor", password=NEW_PASSWORD
    )
    assert _invalid_fields(mismatch.get_data(as_text=True)) == {
        "password_again": "两次输入的密码不一致。"
    }

    reset = post(root, "/admin/users/2/password", password="short", password_again="short")
    assert reset.status_code == 400
    assert list(_invalid_fields(reset.get_data(as_text=True))) == ["password"]

    account = post(
        root,
        "/admin/account/password?lang=en",
        current_password=PASSWORD,
        new_password=NEW_PASSWORD,
        new_password_again="something else entirely",
    )
    assert _invalid_fields(account.get_data(as_text=True)) == {
        "new_password_again": "The two new passwords differ."
    }

    venue = post(root, "/admin/venues", code="branch", operator="city-library", name_zh="分馆")
    assert venue.status_code == 422
    assert list(_invalid_fields(venue.get_data(as_text=True))) == ["v-name-en"]

    audit = root.get("/admin/audit?from=yesterday&citizen=12")
    assert list(_invalid_fields(audit.get_data(as_text=True))) == ["from"]


def test_a_form_without_errors_marks_no_input_invalid(site: AdminApp) -> None:
    root = signed_in(site, "root")
    for path in ("/admin/scenarios/new", "/admin/users/new", "/admin/account", "/admin/venues"):
        page = root.get(path).get_data(as_text=True)
        assert "aria-invalid" not in page and "-error" not in page, path
