"""The web admin's foundation: blueprint, sign-in session, CSRF, roles, language, navigation, audit.

Interfaces for the admin's page modules (the scenario, venue and API-client pages build on these):

- ``bp``: the ``admin`` blueprint, mounted at ``/admin``. Add routes with ``@bp.get``/``@bp.post`` in a
  module named in a domain's ``admin_pages``: ``init_admin`` imports them before it registers the blueprint.
  Every route requires a signed-in user unless its endpoint is in ``PUBLIC_ENDPOINTS``; every
  POST/PUT/PATCH/DELETE needs the CSRF token; an auditor's unsafe request is refused with 403.
- ``require_role(*roles)``: view decorator. Signed out → redirect to the login page with ``next``;
  signed in without one of ``roles`` → 403 page. No roles: any signed-in user.
  ``require_permission(name)``: the same through ``PERMISSIONS`` (name → roles); ``can(name) -> bool``.
- ``source_actor(acts) -> Actor``: the user as a domain actor for sources' records (a clerk for their
  source). ``current_user() -> AdminUser | None``; ``operator_scope() -> int | None`` (the operator an operator
  account is limited to) and ``source_scope() -> int | None`` (the source a clerk is limited to).
- ``NAV.append(NavItem(endpoint, zh, en, roles))``: nav entries; one whose endpoint does not exist, or
  whose roles exclude the user, is not shown.
- ``t(zh, en) -> str``: the text in the page's language (Jinja global too); ``lang() -> "zh" | "en"``.
- ``admin_audit(action, *, citizen_id=None, actor=None, **detail)``: an audit event by ``admin:<username>``.
- ``csrf_field() -> Markup``: the hidden token input for every POST form (Jinja global).
- ``flash(message, category)`` (Flask's; categories ``success``, ``error``, ``info``): shown by the layout.
- ``admin/base.html``: blocks ``title`` and ``content``.
- ``now() -> datetime`` (aware, UTC) and ``today() -> date`` (the city's date): tests replace
  ``app.extensions["admin"].now`` to move the clock.
- Jinja globals besides: ``can``, ``current_user``, ``lang``, ``lang_url(code)``, ``local_time(dt)``,
  ``role_name(role)``, ``validity(first, last)`` (a period in words, open ends said as such).
- Errors inside the blueprint are HTML pages, not the API's JSON problems: ``abort(403)`` (audited as
  ``admin.denied``, the request's changes dropped), ``abort(404)``, and a 500 page that rolls back.
- Tests: ``tests/integration/admin_support.py`` (app on a fresh database, clock, users, sign-in, POST).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import logging
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, InternalServerError

from admin.models import ROLES, AdminUser
from citycredit.core.actors import Actor
from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.core.registry import installed_domains
from citycredit.web import forms
from citycredit.web.context import db_session, platform_of, roll_back_request

log = logging.getLogger(__name__)

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
# Ending one's own session is not a change to anything an auditor must not touch; nor is a what-if,
# a POST only because it does heavy work (scratch rows it deletes again) that no link may trigger;
# nor is changing one's own password (a read-only account still keeps its own key safe).
READ_ONLY_ALLOWED = frozenset(
    {"admin.login", "admin.logout", "admin.what_if", "admin.change_own_password"}
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READ_ONLY_ROLES = frozenset({"auditor"})

IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
LANGUAGES = ("zh", "en")

# Session keys; prefixed so other parts of the app can keep their own things in the session.
_UID, _VERSION, _SIGNED_IN, _SEEN, _CSRF, _LANG = (
    "admin_uid",
    "admin_version",
    "admin_signed_in",
    "admin_seen",
    "csrf_token",
    "lang",
)
SESSION_ENDED = "admin_session_ended"

ALL_ROLES = frozenset(ROLES)
# permission -> roles holding it. Pages check these, never role names, so a role's reach is read here.
PERMISSIONS: dict[str, frozenset[str]] = {
    "dashboard.view": ALL_ROLES,
    # Usage per scenario (the dashboard's top scenarios) is an operator's business figure: the
    # platform and its auditor see every operator's, an operator its own (operator_scope()); clerks
    # and reviewers need none of it and see city-wide aggregates only.
    "dashboard.scenario_usage": frozenset({"platform_admin", "operator", "auditor"}),
    "audit.view": frozenset({"platform_admin", "auditor"}),
    "sources.view": frozenset({"platform_admin", "clerk", "reviewer", "auditor"}),
    "batches.view": frozenset({"platform_admin", "clerk", "reviewer", "auditor"}),
    "models.view": frozenset({"platform_admin", "auditor"}),
    "models.publish": frozenset({"platform_admin"}),
    "users.view": frozenset({"platform_admin", "auditor"}),
    "users.manage": frozenset({"platform_admin"}),
    # Operators act on their own operator's rows only (operator_scope()); the auditor reads all.
    "scenarios.view": frozenset({"platform_admin", "operator", "auditor"}),
    "scenarios.manage": frozenset({"platform_admin", "operator"}),
    "scenarios.review": frozenset({"platform_admin"}),
    "venues.view": frozenset({"platform_admin", "operator", "auditor"}),
    "venues.manage": frozenset({"platform_admin", "operator"}),
    "clients.view": frozenset({"platform_admin", "operator", "auditor"}),
    "clients.manage": frozenset({"platform_admin", "operator"}),
}


@dataclass
class AdminExtension:
    """Per-app admin state, at ``app.extensions["admin"]``."""

    now: Callable[[], dt.datetime] = utcnow
    idle_timeout: dt.timedelta = IDLE_TIMEOUT
    absolute_timeout: dt.timedelta = ABSOLUTE_TIMEOUT


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    zh: str
    en: str
    roles: Collection[str] = field(default=ALL_ROLES)


NAV: list[NavItem] = [
    NavItem("admin.dashboard", "概览", "Dashboard", PERMISSIONS["dashboard.view"]),
    NavItem("admin.sources", "数据来源", "Data sources", PERMISSIONS["sources.view"]),
    NavItem("admin.models", "评分模型", "Scoring models", PERMISSIONS["models.view"]),
    NavItem("admin.audit_log", "审计日志", "Audit log", PERMISSIONS["audit.view"]),
    NavItem("admin.users", "用户管理", "Users", PERMISSIONS["users.view"]),
]


class CsrfRefused(BadRequest):
    description = "请求缺少有效的安全令牌（CSRF），已被拒绝。 / The request lacked a valid CSRF token and was refused."


def init_admin(app: Flask) -> None:
    """Mount the admin at ``/admin`` and set the session cookie's protections."""
    for domain in installed_domains():
        for module in domain.admin_pages:
            importlib.import_module(module)
    settings = platform_of(app).settings
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.lower().startswith("https://"),
        PERMANENT_SESSION_LIFETIME=ABSOLUTE_TIMEOUT,
    )
    app.extensions["admin"] = AdminExtension()
    app.jinja_env.globals.update(
        t=t,
        lang=lang,
        lang_url=lang_url,
        csrf_field=csrf_field,
        current_user=current_user,
        can=can,
        local_time=local_time,
        role_name=role_name,
        validity=validity,
        admin_nav=nav_entries,
    )
    app.register_blueprint(bp)


# --- clock and language ---------------------------------------------------------------------------


def now() -> dt.datetime:
    """The current time (aware, UTC); one indirection so that tests can move it."""
    extension: AdminExtension = current_app.extensions["admin"]
    return extension.now()


def today() -> dt.date:
    """The city's calendar date at :func:`now`."""
    return now().astimezone(platform_of(current_app).settings.tz).date()


def local_time(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time as the city's wall-clock time."""
    if moment is None:
        return "—"
    return moment.astimezone(platform_of(current_app).settings.tz).strftime(fmt)


def validity(first: dt.date | None, last: dt.date | None) -> str:
    """A validity period in words; a missing end is open, never "… – …"."""
    if first is None and last is None:
        return t("长期有效", "open-ended")
    if last is None:
        return t(f"自 {first} 起", f"from {first} on")
    if first is None:
        return t(f"至 {last} 止", f"until {last}")
    return t(f"{first} 至 {last}", f"{first} to {last}")


def lang() -> str:
    if not has_request_context():
        return "zh"
    chosen = g.get("admin_lang") or session.get(_LANG)
    return "en" if chosen == "en" else "zh"


def t(zh: str, en: str) -> str:
    """The text in the page's language (Simplified Chinese unless English was chosen)."""
    return en if lang() == "en" else zh


def role_name(role: str) -> str:
    zh, en = ROLES.get(role, (role, role))
    return t(zh, en)


def lang_url(code: str) -> str:
    """This page in another language (the dashboard when this page answers only POST)."""
    return forms.lang_url(code, "admin.dashboard")


# --- the signed-in user ---------------------------------------------------------------------------


def current_user() -> AdminUser | None:
    if not has_request_context():
        return None
    user: AdminUser | None = g.get("admin_user")
    return user


def operator_scope() -> int | None:
    """The operator whose rows this user may touch; None for roles that see every operator."""
    user = current_user()
    return user.operator_id if user is not None and user.role == "operator" else None


def source_scope() -> int | None:
    """The data source a clerk is limited to; None when the user sees every source."""
    user = current_user()
    return user.source_id if user is not None and user.role == "clerk" else None


def source_actor(acts: str) -> Actor:
    """The signed-in user as the domain's ``Actor`` for a source's records (objections, repairs): a
    clerk speaks for their own source; anyone else acts with ``acts`` and only reads without it."""
    user = current_user()
    assert user is not None
    name = f"admin:{user.username}"
    if user.role == "clerk":
        return Actor.for_source(name, source_id=user.source_id)
    return Actor(name, read_only=not can(acts))


def can(permission: str) -> bool:
    user = current_user()
    return user is not None and user.role in PERMISSIONS[permission]


def start_session(user: AdminUser) -> None:
    """Sign ``user`` in on a fresh session (a new cookie content and CSRF token, against fixation)."""
    _clear_session()
    moment = now().timestamp()
    session.permanent = True
    session[_UID] = user.id
    session[_VERSION] = user.session_version
    session[_SIGNED_IN] = moment
    session[_SEEN] = moment
    session[_CSRF] = secrets.token_urlsafe(32)
    g.admin_user = user


def refresh_session_version(user: AdminUser) -> None:
    """Keep this session valid after the user's own password change voided every other one."""
    session[_VERSION] = user.session_version
    session[_CSRF] = secrets.token_urlsafe(32)


def end_session() -> None:
    _clear_session()
    g.admin_user = None


def _clear_session() -> None:
    chosen = session.get(_LANG)
    session.clear()
    if chosen:
        session[_LANG] = chosen


def _load_user() -> None:
    g.admin_user = None
    uid = session.get(_UID)
    if uid is None:
        return
    extension: AdminExtension = current_app.extensions["admin"]
    moment = now().timestamp()
    user = db_session().get(AdminUser, uid)
    ended = None
    if user is None or user.status != "active" or user.session_version != session.get(_VERSION):
        ended = "revoked"
    elif moment - float(session.get(_SEEN, 0)) > extension.idle_timeout.total_seconds():
        ended = "idle"
    elif moment - float(session.get(_SIGNED_IN, 0)) > extension.absolute_timeout.total_seconds():
        ended = "expired"
    if ended is not None:
        _clear_session()
        # Kept for the login page this request is about to be redirected to.
        session[SESSION_ENDED] = ended
        return
    session[_SEEN] = moment
    g.admin_user = user


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _login_redirect() -> Any:
    target = None
    if request.method == "GET":
        target = request.full_path.rstrip("?") if request.query_string else request.path
    return redirect(url_for("admin.login", next=target))


F = TypeVar("F", bound=Callable[..., Any])


def require_role(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users holding one of ``roles`` (any role when none is given) reach a view."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return _login_redirect()
            if roles and user.role not in roles:
                raise Forbidden()
            return view(*args, **kwargs)

        return cast(F, guarded)

    return decorate


def require_permission(permission: str) -> Callable[[F], F]:
    return require_role(*sorted(PERMISSIONS[permission]))


def nav_entries() -> list[tuple[str, str, bool]]:
    """(label, url, current) for the nav entries this user may open."""
    user = current_user()
    if user is None:
        return []
    entries = []
    for item in NAV:
        if item.endpoint not in current_app.view_functions or user.role not in item.roles:
            continue
        entries.append(
            (t(item.zh, item.en), url_for(item.endpoint), request.endpoint == item.endpoint)
        )
    return entries


# --- audit and CSRF -------------------------------------------------------------------------------


def admin_audit(
    action: str, *, citizen_id: int | None = None, actor: str | None = None, **detail: Any
) -> None:
    """Record an action of the signed-in user (``admin:<username>``) in this request's unit of work."""
    if actor is None:
        user = current_user()
        actor = f"admin:{user.username}" if user is not None else "admin:-"
    audit(db_session(), actor=actor, action=action, citizen_id=citizen_id, **detail)
    g.admin_audited = True


def csrf_token() -> str:
    """The token for a script's X-CSRF-Token header (masked anew: see forms)."""
    return forms.masked_csrf_token(_CSRF)


def csrf_field() -> Markup:
    return forms.csrf_field(_CSRF)


def _check_csrf() -> None:
    if not forms.csrf_ok(_CSRF):
        raise CsrfRefused()


# --- request hooks and error pages ----------------------------------------------------------------


@bp.before_request
def _guard() -> Any:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session[_LANG] = chosen
        g.admin_lang = chosen
    if request.endpoint == "admin.static":
        return None
    _load_user()
    user = current_user()
    if user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        return _login_redirect()
    if request.method in UNSAFE_METHODS:
        _check_csrf()
        if (
            user is not None
            and user.role in READ_ONLY_ROLES
            and request.endpoint not in READ_ONLY_ALLOWED
        ):
            raise Forbidden()
    return None


@bp.after_request
def _audit_every_action(response: Any) -> Any:
    # A safety net: every state-changing request leaves a trace even if its view forgot to audit.
    if request.method in UNSAFE_METHODS and not g.get("admin_audited"):
        admin_audit("admin.request", endpoint=request.endpoint, status=response.status_code)
    return response


def _refused(error: HTTPException, template: str) -> Any:
    # Whatever the request did before it was refused is dropped; the refusal itself is recorded.
    db_session().rollback()
    admin_audit(
        "admin.denied",
        endpoint=request.endpoint,
        method=request.method,
        status=error.code,
        path=request.path[:200],
    )
    return render_template(template, error=error), error.code


@bp.errorhandler(CsrfRefused)
def _csrf_refused(error: CsrfRefused) -> Any:
    return _refused(error, "admin/csrf.html")


@bp.errorhandler(Forbidden)
def _forbidden(error: Forbidden) -> Any:
    return _refused(error, "admin/forbidden.html")


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    # Pages, not the partner API's JSON problems (the app-wide handler), for people in a browser.
    return render_template("admin/error.html", error=error), error.code


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Any:
    roll_back_request()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_template("admin/error.html", error=InternalServerError()), 500
