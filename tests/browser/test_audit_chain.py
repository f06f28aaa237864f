"""The auditor checks the tamper-evident audit log in a real browser (Debian's Chromium), on SQLite and
PostgreSQL (issue 13 §4).

The city's log is sealed. The auditor signs in on a phone, opens the audit log, follows "校验审计链"
and reads that the chain is intact up to the last sealed event, with the last signed checkpoint, in
Chinese and in English. Then someone with the database's superuser goes around the insert-only
trigger and rewrites one event's actor: the same page now says, as an alert, that the chain is broken
at that event and that it was changed. Every page visited is axe-core clean and fits 390 px (also at
200 % text size); nothing leaves loopback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from playwright.sync_api import expect

from admin import operations as admin_operations
from citycredit.core import audit_chain
from citycredit.core.db import make_session_factory, unit_of_work, utcnow
from tests.browser.test_admin_federation import axe_violations
from tests.browser.test_citizen import phone
from tests.browser.test_objections import PASSWORD, admin_sign_in
from tests.browser.test_repairs import overflow
from tests.e2e.conftest import LiveCity
from tests.integration.audit_support import as_superuser


def test_the_auditor_sees_the_chain_intact_and_then_the_broken_link(
    browser: Any, city: LiveCity
) -> None:
    sessions = make_session_factory(city.db.engine)
    with unit_of_work(sessions) as session:
        admin_operations.create_user(
            session,
            username="shenji",
            display_name="审计员",
            password=PASSWORD,
            role="auditor",
            actor="test",
            now=utcnow(),
        )
    with unit_of_work(sessions) as session:  # what the scheduler's job does once events are old
        run = audit_chain.seal(
            session,
            city.settings.key_secret,
            grace=dt.timedelta(minutes=5),
            now=utcnow() + dt.timedelta(hours=1),
        )
    sealed = run.up_to
    assert sealed is not None and sealed >= 3
    context, page, outside, errors = phone(browser)
    violations: list[str] = []
    wide: dict[str, str] = {}
    try:
        admin_sign_in(page, city, "shenji")
        page.goto(city.url + "/admin/audit")
        page.get_by_role("link", name="校验审计链（是否被篡改）").click()
        status = page.locator("#chain-status")
        expect(status).to_have_attribute("role", "status")
        expect(status).to_contain_text(f"审计链完整：第 {sealed} 条事件及之前的记录均未被改动。")
        expect(page.locator("dl.facts")).to_contain_text(f"截至第 {sealed} 条事件，签名于")
        violations += axe_violations(page)
        wide |= overflow(page, "intact, zh")
        page.reload()
        page.get_by_role("link", name="English").click()
        expect(status).to_contain_text(f"The audit chain is intact up to event {sealed}")
        expect(page.locator("dl.facts")).to_contain_text(f"up to event {sealed}, signed")
        violations += axe_violations(page)

        changed = sealed - 1
        with unit_of_work(sessions) as session, as_superuser(session):
            session.execute(
                sa.text("UPDATE audit_event SET actor = 'admin:nobody' WHERE id = :id"),
                {"id": changed},
            )
        page.reload()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(f"The audit chain is broken at event {changed}.")
        expect(alert).to_contain_text(f"Event {changed} was changed after it was sealed.")
        violations += axe_violations(page)
        page.get_by_role("link", name="中文").click()
        expect(alert).to_contain_text(f"审计链在第 {changed} 条事件处断开。")
        expect(alert).to_contain_text("在封存后被修改（已改动）")
        violations += axe_violations(page)
        wide |= overflow(page, "broken, zh")
    finally:
        context.close()
    assert violations == []
    assert wide == {}
    assert outside == [] and errors == []
