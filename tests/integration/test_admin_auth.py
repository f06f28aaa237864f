"""The web admin's sign-in: throttling, sessions that end, CSRF, the language switch, and the CLI."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from admin import operations as admin_operations
from admin.models import AdminUser
from citycredit.cli.main import Context, main
from citycredit.core.audit import AuditEvent
from citycredit.web.app import create_app
from tests.databases import ScratchDatabase
from tests.integration.admin_support import (
    PASSWORD,
    AdminApp,
    admin_app,
    clear_of_a_window_edge,
    csrf,
    post,
    sign_in,
    signed_in,
)

WRONG = "Wrong username or password."
WRONG_ZH = "用户名或密码不正确。"


@pytest.fixture
def site(fresh_database: ScratchDatabase, tmp_path: Path) -> Iterator[AdminApp]:
    with admin_app(fresh_database, tmp_path) as web:
        web.add_user("boss", "platform_admin", display_name="王管理")
        web.add_user("clerk1", "clerk", display_name="李专员")
        yield web


def _error_of(page: str) -> str:
    start = page.index('<p class="flash error"')
    return page[start : page.index("</p>", start)]


def test_signing_in_and_a_wrong_password_or_unknown_name_look_the_same(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = site.client()
    first = client.get("/admin/audit?actor=x")
    assert first.status_code == 302
    assert first.headers["Location"] == "/admin/login?next=/admin/audit?actor%3Dx"

    checks: list[str] = []
    real_check = admin_operations.check_password

    def counting(stored: str, password: str) -> bool:
        checks.append(password)
        return real_check(stored, password)

    monkeypatch.setattr(admin_operations, "check_password", counting)
    wrong = sign_in(client, "boss", "not the password at all")
    unknown = sign_in(client, "nobody", "not the password at all")
    # The same words, and the same scrypt work (one hash check) whether the name exists or not.
    assert WRONG_ZH in wrong.get_data(as_text=True)
    assert _error_of(wrong.get_data(as_text=True)) == _error_of(unknown.get_data(as_text=True))
    assert wrong.status_code == unknown.status_code == 200
    assert len(checks) == 2

    done = client.post(
        "/admin/login",
        data={
            "username": "Boss ",
            "password": PASSWORD,
            "next": "/admin/audit?actor=x",
            "csrf_token": csrf(client),
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == "/admin/audit?actor=x"
    assert "王管理" in client.get("/admin/").get_data(as_text=True)
    failed = site.events("admin.login_failed")
    # A name no account has is audited as a keyed tag: it may be a password typed in the wrong field.
    tag = admin_operations.unknown_actor("nobody", site.app.secret_key or "")
    assert [e.actor for e in failed] == ["admin:boss", tag]
    assert tag.startswith("admin:?") and len(tag) == len("admin:?") + 8
    assert [e.actor for e in site.events("admin.login")] == ["admin:boss"]


def test_the_session_cookie_is_httponly_lax_and_secure_behind_https(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with admin_app(fresh_database, tmp_path) as plain:
        plain.add_user("boss", "platform_admin")
        cookie = sign_in(plain.client(), "boss").headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
            "public_url": "https://credit.example.gov.cn",
        }
    )
    try:
        cookie = sign_in(app.test_client(), "boss").headers["Set-Cookie"]
        assert "Secure" in cookie
    finally:
        app.extensions["citycredit"].engine.dispose()


def test_next_accepts_only_a_local_path(site: AdminApp) -> None:
    for target, landing in [
        ("https://evil.example/phish", "/admin/"),
        ("//evil.example/phish", "/admin/"),
        ("/\\evil.example", "/admin/"),
        ("/admin/sources", "/admin/sources"),
    ]:
        client = site.client()
        response = client.post(
            "/admin/login",
            data={
                "username": "boss",
                "password": PASSWORD,
                "next": target,
                "csrf_token": csrf(client),
            },
        )
        assert response.headers["Location"] == landing, target


THROTTLED_ZH = "请求过于频繁"
THROTTLED_EN = "Too many attempts"


def _from(client: Any, address: str) -> Any:
    """The client as a browser at ``address`` (the limits count by name and by address)."""
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_five_failures_from_one_address_throttle_that_name_there_and_nowhere_else(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = _count_real_checks(monkeypatch)
    clear_of_a_window_edge()
    stranger = _from(site.client(), "203.0.113.7")
    for attempt in range(5):
        page = sign_in(stranger, "clerk1", f"wrong guess {attempt}")
        assert page.status_code == 200 and WRONG_ZH in page.get_data(as_text=True)
    # The sixth, even with the right password, is not checked: 429 with Retry-After, in both languages.
    refused = sign_in(stranger, "clerk1", PASSWORD)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert THROTTLED_ZH in page and THROTTLED_EN in page and "clerk1" not in page
    assert "锁定" not in page and "locked" not in page
    assert len(checked) == 5 and PASSWORD not in checked
    assert stranger.get("/admin/").status_code == 302

    # The real clerk, at their own desk, signs in at once: nothing was locked.
    desk = _from(site.client(), "198.51.100.20")
    assert sign_in(desk, "clerk1").status_code == 302
    assert desk.get("/admin/").status_code == 200
    assert site.user("clerk1").last_login_at == site.clock()
    # No event, row or message speaks of a lock any more.
    assert site.events("admin.lockout") == [] and site.events("admin.login_refused_locked") == []


def test_an_unknown_name_is_throttled_exactly_like_a_real_one(site: AdminApp) -> None:
    pages = {}
    for name in ("clerk1", "ghost"):
        client = _from(site.client(), "203.0.113.8")
        answers = [sign_in(client, name, f"guess {n}") for n in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert all(WRONG_ZH in a.get_data(as_text=True) for a in answers[:5])
        # Same words for both failures and for both refusals: nothing tells the names apart.
        assert _error_of(answers[0].get_data(as_text=True)) == _error_of(
            answers[4].get_data(as_text=True)
        )
        pages[name] = (
            _error_of(answers[4].get_data(as_text=True)),
            re.sub(r"\d+", "N", answers[5].get_data(as_text=True)),
        )
    assert pages["clerk1"] == pages["ghost"]


def test_guessing_many_names_from_one_address_is_throttled_too(site: AdminApp) -> None:
    clear_of_a_window_edge()
    sprayer = _from(site.client(), "203.0.113.9")
    statuses = [sign_in(sprayer, f"name{n:02d}", "Password1234!").status_code for n in range(31)]
    assert statuses == [200] * 30 + [429]
    # Another address is not affected.
    assert sign_in(_from(site.client(), "198.51.100.21"), "boss").status_code == 302


def _count_real_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords checked against an account's own hash (not the stand-in checked for show)."""
    real_check = admin_operations.check_password
    checked: list[str] = []

    def counting(stored: str, password: str) -> bool:
        if stored != admin_operations._dummy_hash():
            checked.append(password)
        return real_check(stored, password)

    monkeypatch.setattr(admin_operations, "check_password", counting)
    return checked


def test_a_burst_of_parallel_guesses_gets_at_most_ten_checks(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Failures are counted when they are answered; a burst arrives before any is. Every attempt is
    # also counted before its check (atomically), which bounds the burst.
    checked = _count_real_checks(monkeypatch)
    count = 16
    clients = [_from(site.client(), "203.0.113.10") for _ in range(count)]
    tokens = [csrf(client) for client in clients]
    start = threading.Barrier(count)
    pages: list[Any] = [None] * count

    def guess(i: int) -> None:
        start.wait()
        pages[i] = clients[i].post(
            "/admin/login",
            data={
                "username": "clerk1",
                "password": f"wrong guess {i:02d}",
                "csrf_token": tokens[i],
            },
        )

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(page.status_code for page in pages)
    assert len(checked) <= 10 and statuses.count(200) == len(checked)
    assert statuses.count(429) == count - len(checked) >= 6
    # Throttled there, not anywhere else.
    assert sign_in(_from(site.client(), "198.51.100.22"), "clerk1").status_code == 302


def test_wrong_current_passwords_are_throttled_and_the_session_kept(
    site: AdminApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = signed_in(site, "boss")
    answers = [
        post(
            here,
            "/admin/account/password",
            current_password=f"not it {n}",
            new_password="another long passphrase",
            new_password_again="another long passphrase",
        )
        for n in range(6)
    ]
    assert [a.status_code for a in answers] == [400] * 5 + [429]
    assert "Retry-After" in answers[-1].headers
    # Nobody was signed out or locked: the account works, elsewhere and here.
    assert here.get("/admin/").status_code == 200
    assert signed_in(site, "boss").get("/admin/").status_code == 200
    assert len(site.events("admin.password_change_refused")) == 5


def test_a_post_without_the_right_csrf_token_is_refused_and_changes_nothing(
    site: AdminApp,
) -> None:
    client = signed_in(site, "boss")
    clerk = site.user("clerk1")
    target = f"/admin/users/{clerk.id}/status"
    for token in (None, "forged-token", ""):
        data = {"status": "disabled"}
        if token is not None:
            data["csrf_token"] = token
        refused = client.post(target, data=data)
        page = refused.get_data(as_text=True)
        assert refused.status_code == 400
        assert "安全令牌（CSRF）" in page and "valid security (CSRF) token" in page
        assert site.user("clerk1").status == "active"
    assert len(site.events("admin.denied")) == 3
    assert site.events("admin.user_disable") == []
    # The same request with the session's token goes through.
    assert post(client, target, status="disabled").status_code == 302
    assert site.user("clerk1").status == "disabled"


def test_signing_in_rotates_the_session_so_a_planted_token_is_void(site: AdminApp) -> None:
    client = site.client()
    planted = csrf(client)
    assert sign_in(client, "boss").status_code == 302
    clerk = site.user("clerk1")
    response = client.post(
        f"/admin/users/{clerk.id}/status", data={"status": "disabled", "csrf_token": planted}
    )
    assert response.status_code == 400
    assert site.user("clerk1").status == "active"


def test_a_password_reset_or_disable_ends_the_users_sessions_at_once(site: AdminApp) -> None:
    clerk_client = signed_in(site, "clerk1")
    other_device = signed_in(site, "clerk1")
    assert clerk_client.get("/admin/sources").status_code == 200
    boss = signed_in(site, "boss")
    clerk = site.user("clerk1")
    reset = post(
        boss,
        f"/admin/users/{clerk.id}/password",
        password="a brand new passphrase",
        password_again="a brand new passphrase",
    )
    assert reset.status_code == 302
    ended = clerk_client.get("/admin/sources", follow_redirects=True).get_data(as_text=True)
    assert "登录已失效" in ended and "登录管理后台" in ended
    assert sign_in(other_device, "clerk1", PASSWORD).status_code == 200  # the old one is gone
    assert sign_in(other_device, "clerk1", "a brand new passphrase").status_code == 302
    assert [e.actor for e in site.events("admin.password_reset")] == ["admin:boss"]

    post(boss, f"/admin/users/{clerk.id}/status", status="disabled")
    assert other_device.get("/admin/").status_code == 302
    # A disabled account cannot sign in, and is told nothing more than a wrong password would be.
    page = sign_in(site.client(), "clerk1", "a brand new passphrase").get_data(as_text=True)
    assert WRONG_ZH in page


def test_changing_ones_own_password_keeps_this_session_and_ends_the_others(
    site: AdminApp,
) -> None:
    here = signed_in(site, "boss")
    elsewhere = signed_in(site, "boss")
    wrong = post(
        here,
        "/admin/account/password",
        current_password="not it at all",
        new_password="another long passphrase",
        new_password_again="another long passphrase",
    )
    assert wrong.status_code == 400 and "当前密码不正确" in wrong.get_data(as_text=True)
    short = post(
        here,
        "/admin/account/password",
        current_password=PASSWORD,
        new_password="short",
        new_password_again="short",
    )
    assert "密码至少需要 12 个字符" in short.get_data(as_text=True)
    done = post(
        here,
        "/admin/account/password",
        current_password=PASSWORD,
        new_password="another long passphrase",
        new_password_again="another long passphrase",
    )
    assert done.status_code == 302
    assert here.get("/admin/").status_code == 200
    assert elsewhere.get("/admin/").status_code == 302
    assert [e.actor for e in site.events("admin.password_change")] == ["admin:boss"]


def test_sessions_end_after_30_idle_minutes_and_after_12_hours(site: AdminApp) -> None:
    client = signed_in(site, "boss")
    for _ in range(3):
        site.clock.advance(minutes=29)
        assert client.get("/admin/").status_code == 200
    site.clock.advance(minutes=30, seconds=1)
    expired = client.get("/admin/users")
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/admin/login")
    assert "30 分钟未操作" in client.get(expired.headers["Location"]).get_data(as_text=True)

    client = signed_in(site, "boss")
    statuses = []
    for _ in range(37):
        site.clock.advance(minutes=20)
        statuses.append(client.get("/admin/").status_code)
    # Active all along, yet signed out once more than twelve hours had passed.
    assert statuses == [200] * 36 + [302]
    assert site.clock() - site.user("boss").last_login_at > dt.timedelta(hours=12)


def test_signing_out(site: AdminApp) -> None:
    client = signed_in(site, "boss")
    assert post(client, "/admin/logout").headers["Location"] == "/admin/login"
    assert client.get("/admin/").status_code == 302
    assert [e.actor for e in site.events("admin.logout")] == ["admin:boss"]


def test_signing_out_ends_every_session_so_a_copied_cookie_is_refused(site: AdminApp) -> None:
    client = signed_in(site, "boss")
    elsewhere = signed_in(site, "boss")
    cookie = client.get_cookie("session")
    assert cookie is not None and client.get("/admin/users").status_code == 200
    out = post(client, "/admin/logout")
    assert out.status_code == 302
    # The cookie as it was before signing out, replayed by someone who copied it.
    replay = site.client()
    replay.set_cookie("session", cookie.value)
    refused = replay.get("/admin/users")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login")
    assert "已退出登录" in replay.get("/admin/login").get_data(as_text=True)
    said = client.get("/admin/login").get_data(as_text=True)
    assert "此账户在所有设备上的登录均已失效" in said
    # Every session of the account ended, as the confirmation says; signing in again works.
    assert elsewhere.get("/admin/").status_code == 302
    assert signed_in(site, "boss").get("/admin/users").status_code == 200


def test_a_password_typed_as_the_username_never_reaches_the_audit_log(site: AdminApp) -> None:
    client = site.client()
    for _ in range(2):
        page = sign_in(client, PASSWORD, PASSWORD).get_data(as_text=True)
        assert WRONG_ZH in page
    sign_in(client, "someone-else", "whatever it was")
    failed = site.events("admin.login_failed")
    assert all(
        PASSWORD not in event.actor and PASSWORD not in str(event.detail) for event in failed
    )
    # The same name gives the same tag (repeated failures stay visible), another name another one.
    tags = [event.actor for event in failed]
    assert tags[0] == tags[1] != tags[2] and all(tag.startswith("admin:?") for tag in tags)
    log = signed_in(site, "boss").get("/admin/audit").get_data(as_text=True)
    assert PASSWORD not in log and "someone-else" not in log and tags[0] in log


def test_english_is_one_click_away_and_stays_chosen(site: AdminApp) -> None:
    client = site.client()
    zh = client.get("/admin/login").get_data(as_text=True)
    assert 'lang="zh-CN"' in zh and "登录管理后台" in zh
    assert 'href="/admin/login?lang=en"' in zh and ">English</a>" in zh
    en = client.get("/admin/login?lang=en").get_data(as_text=True)
    assert "Sign in to the admin" in en and ">中文</a>" in en
    page = sign_in(client, "boss", "wrong password here").get_data(as_text=True)
    assert WRONG in page
    assert sign_in(client, "boss").status_code == 302
    # Still English after the session was rotated at sign-in.
    dashboard = client.get("/admin/").get_data(as_text=True)
    assert "Verifications today" in dashboard and '<html lang="en">' in dashboard
    assert "今日核验" in client.get("/admin/?lang=zh").get_data(as_text=True)
    assert "今日核验" in client.get("/admin/").get_data(as_text=True)


# --- the command line -----------------------------------------------------------------------------


def _cli(db: ScratchDatabase, tmp: Path, args: list[str], stdin: str = "") -> Any:
    ctx = Context()
    env = {
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_ID_HASH_KEY": "ab" * 32,
        "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
    }
    try:
        return CliRunner().invoke(main, args, input=stdin, env=env, obj=ctx)
    finally:
        if ctx._platform is not None:
            ctx._platform.engine.dispose()


def test_cli_creates_users_and_explains_what_it_refuses(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    made = _cli(
        db,
        tmp_path,
        ["admin", "create-user", "root", "--role", "platform_admin", "--password-stdin"],
        stdin=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    assert "created platform_admin account root" in made.output
    prompted = _cli(
        db,
        tmp_path,
        ["admin", "create-user", "audit1", "--role", "auditor", "--display-name", "赵审计"],
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output  # hidden input is not echoed

    refusals = [
        (["x1", "--role", "boss"], PASSWORD, "unknown role 'boss'"),
        (["x2", "--role", "clerk"], "short pw", "at least 12 characters"),
        (["x3", "--role", "operator"], PASSWORD, "needs its operator"),
        (["x4", "--role", "operator", "--operator", "nope"], PASSWORD, "no operator with code"),
        (["root", "--role", "auditor"], PASSWORD, "username 'root' is taken"),
        (["x5", "--role", "clerk", "--source", "nope"], PASSWORD, "no data source"),
    ]
    for args, password, message in refusals:
        result = _cli(
            db,
            tmp_path,
            ["admin", "create-user", *args, "--password-stdin"],
            stdin=password + "\n",
        )
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, result.output

    with db.engine.connect() as connection:
        users = connection.execute(
            select(AdminUser.username, AdminUser.role, AdminUser.display_name).order_by(
                AdminUser.username
            )
        ).all()
        created = connection.execute(
            select(AuditEvent.actor, AuditEvent.detail).where(
                AuditEvent.action == "admin.user_create"
            )
        ).all()
    assert [tuple(u) for u in users] == [
        ("audit1", "auditor", "赵审计"),
        ("root", "platform_admin", "root"),
    ]
    assert [d["username"] for _, d in created] == ["root", "audit1"]
    assert all(actor.startswith("cli:") for actor, _ in created)


@pytest.mark.parametrize("trusted_proxies", [0, 1])
def test_forwarded_addresses_count_only_behind_a_trusted_proxy(
    fresh_database: ScratchDatabase, tmp_path: Path, trusted_proxies: int
) -> None:
    """Behind the city's load balancer each caller is counted apart; without one, a caller cannot
    escape its limit by naming another address in X-Forwarded-For."""
    app = create_app(
        {
            "database_url": fresh_database.url,
            "id_hash_key": b"k" * 32,
            "instance_dir": tmp_path,
            "trusted_proxies": trusted_proxies,
        }
    )
    try:
        clear_of_a_window_edge()
        balancer = "10.0.0.2"
        guesser = _from(app.test_client(), balancer)
        guesser.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.50"
        for attempt in range(5):
            assert sign_in(guesser, "clerk9", f"wrong {attempt}").status_code == 200
        assert sign_in(guesser, "clerk9", "wrong again").status_code == 429
        other = _from(app.test_client(), balancer)
        other.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.77"
        expected = 200 if trusted_proxies else 429
        assert sign_in(other, "clerk9", "a different guess").status_code == expected
    finally:
        app.extensions["citycredit"].engine.dispose()
