"""The request pipeline: what every request passes through before and after its view, failing safe.

In order, for every request (the API, the admin, the citizen page, the overview):

1. A request id: a sane incoming ``X-Request-Id`` is kept, otherwise one is made; it is echoed in the
   response and written on every log line of the request.
2. Authentication before anything is parsed: an API view declaring a scope (``require_scope``) has its
   bearer token checked first, so an anonymous caller gets 401, never the body's validation errors.
3. Input at the edge: control characters (C0 and DEL; tab and line breaks only in the text areas named
   in :data:`MULTILINE_FIELDS`) and lone surrogates in the path, the query, form fields, file names
   and JSON bodies are refused with a message naming the field (``records.1.document_no``), and a
   JSON body nested deeper than :data:`MAX_JSON_DEPTH` is refused; the API answers a problem (422,
   400 for depth), the pages a readable zh/en message page (400). JSON is looked at only where a view
   reads it; a view that checks some members' text itself, row by row, says so with
   :func:`text_checked_by_view`.
4. One unit of work: the request's session commits after the view, in ``after_request``, where a
   failed commit can still replace the response; any error rolls everything back, the session cookie's
   changes included.
5. Database unavailable, wherever it shows (a view, the token check, the final commit): 503 with
   ``Retry-After``, a problem on the API and a friendly page elsewhere. A value the database refuses
   (``DataError``) that slipped past the edge is a 400, not a 500.

Logs: :class:`SafeFormatter` writes each record on one line (caller-sent control characters escaped;
a traceback's lines indented and tagged with the request id), under gunicorn through
:class:`GunicornLogger` (``citycredit.web.gunicorn_config``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, has_request_context, render_template, request
from flask import session as cookie_session
from gunicorn import glogging
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from citycredit.core.text import control_character, escape_controls, lone_surrogate
from citycredit.web.api.auth import REQUIRED_SCOPE, authenticate
from citycredit.web.api.problems import problem_response

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10
MAX_JSON_DEPTH = 64
# Form fields and JSON members (by name, wherever they are) that are text areas: tab and line breaks
# are allowed in them, and in nothing else.
MULTILINE_FIELDS = frozenset(
    {"benefit_zh", "benefit_en", "reason", "eligibility_json", "answer", "statement", "note"}
)
# Paths answered with RFC 9457 problems; every other path is a page for people.
API_PREFIXES = ("/api/", "/oauth/", "/.well-known/", "/problems")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# JSON strings hold control characters and surrogates only as escapes; a body without any escape of
# them skips the per-string walk.
_ESCAPED_CHARACTER = re.compile(
    # JSON also lets DEL stand raw inside a string (only C0 must be escaped): a raw 0x7F byte, which
    # in UTF-8 is never part of another character, sends the body down the walk too.
    rb"\x7f|\\(?:u00[01][0-9a-fA-F]|u007[fF]|[uU][dD][89a-fA-F][0-9a-fA-F]{2}|[bfnrt])"
)
CONTROL, SURROGATE = "control character", "lone surrogate"
# The attribute of a view naming the top-level JSON members whose text it checks itself.
TEXT_CHECKED_BY_VIEW = "text_checked_by_view"
F = TypeVar("F", bound=Callable[..., Any])


class PipelineFlask(Flask):
    """Flask, with database failures answered 503 before any blueprint's catch-all error page."""

    def handle_user_exception(self, e: Exception) -> Any:
        answer = _database_answer(e)
        return answer if answer is not None else super().handle_user_exception(e)

    def handle_exception(self, e: Exception) -> Response:
        # Reached when the final commit (or another after_request step) failed: keep nothing.
        g.rollback = True
        _forget_cookie_changes()
        answer = _database_answer(e)
        if answer is None:
            return super().handle_exception(e)
        return self.finalize_request(answer, from_error_handler=True)


def init_pipeline(app: Flask) -> None:
    """Install the pipeline; call it before any other hook is registered (its commit then runs last)."""
    if not isinstance(app, PipelineFlask):
        raise TypeError("the request pipeline needs a PipelineFlask app")
    install_log_handler()
    # after_request hooks run in reverse order of registration: the commit, registered first, is the
    # last of them, after every hook that may still write (the admin's audit safety net).
    app.after_request(_end_unit_of_work)
    app.after_request(_echo_request_id)
    app.teardown_request(_close_leftover_session)
    app.before_request(_start)
    app.before_request(_authenticate_first)
    app.before_request(_refuse_bad_input)


# --- before the view -------------------------------------------------------------------------------


def request_id() -> str:
    """This request's id ("-" outside a request)."""
    if not has_request_context():
        return "-"
    return str(g.get("request_id") or "-")


def _start() -> None:
    sent = request.headers.get("X-Request-Id", "")
    g.request_id = sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex
    # What the session cookie held when the request came, to put back if the request fails.
    cookie = current_app.config["SESSION_COOKIE_NAME"]
    g.cookie_session_before = dict(cookie_session) if cookie in request.cookies else {}


def _authenticate_first() -> None:
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and REQUIRED_SCOPE in view.__dict__:
        authenticate(view.__dict__[REQUIRED_SCOPE])


def text_checked_by_view(*members: str) -> Callable[[F], F]:
    """Let the view check the text of these top-level JSON members itself (row by row, say), instead
    of the edge refusing the whole request; put it right above the ``def``."""

    def mark(view: F) -> F:
        view.__dict__[TEXT_CHECKED_BY_VIEW] = frozenset(members)
        return view

    return mark


def _refuse_bad_input() -> Response | None:
    found = _bad_character_in_request()
    if found is None:
        found, too_deep = _check_json_body()
        if too_deep:
            return _too_deep()
    if found is not None:
        field, char, kind = found
        log.info("refused %s %s: %s %s in %s", request.method, request.path, kind, char, field)
        return _refusal(field, char, kind)
    return None


# A character found: (field, "U+XXXX", kind), kind being "control character" or "lone surrogate".
Found = tuple[str, str, str]


def _bad_character(value: str, *, multiline: bool = False) -> tuple[str, str] | None:
    char = control_character(value, multiline=multiline)
    if char is not None:
        return char, CONTROL
    char = lone_surrogate(value)
    return None if char is None else (char, SURROGATE)


def _bad_character_in_request() -> Found | None:
    bad = _bad_character(request.path)
    if bad is not None:
        return ("path", *bad)
    checks: list[tuple[str, str, bool]] = [(k, v, False) for k, v in request.args.items(multi=True)]
    if _has_body() and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        checks += [(k, v, k in MULTILINE_FIELDS) for k, v in request.form.items(multi=True)]
        checks += [(k, f.filename or "", False) for k, f in request.files.items(multi=True)]
    for name, value, multiline in checks:
        bad = _bad_character(name) or _bad_character(value, multiline=multiline)
        if bad is not None:
            return (escape_controls(name), *bad)
    return None


def _has_body() -> bool:
    return request.method not in ("GET", "HEAD", "OPTIONS")


def _check_json_body() -> tuple[Found | None, bool]:
    """(a bad character in the JSON body, whether the body is nested too deeply)."""
    view = current_app.view_functions.get(request.endpoint or "")
    if not (_has_body() and request.is_json and _reads_json(view)):
        return None, False
    data = request.get_data(cache=True)
    may_hold_characters = _ESCAPED_CHARACTER.search(data) is not None
    may_be_deep = data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH
    if not (may_hold_characters or may_be_deep):
        return None, False
    try:
        document = json.loads(data)
    except RecursionError:
        return None, True
    except ValueError:
        return None, False  # not JSON: the argument parser says so, with its own reason
    if may_be_deep and _deeper_than(document, MAX_JSON_DEPTH):
        return None, True
    if not may_hold_characters:
        return None, False
    skipped = view.__dict__.get(TEXT_CHECKED_BY_VIEW, frozenset()) if view else frozenset()
    return _bad_character_in_json(document, skipped), False


def _reads_json(view: Any) -> bool:
    """Whether the view may parse a JSON body: an API view, unless flask-smorest's record of its
    arguments says it reads none (the token endpoint reads a form). Pages read forms only. Parsing a
    body nobody reads would only give anonymous callers a way to make the server work."""
    if view is None or not _is_api():
        return False
    arguments = view.__dict__.get("_apidoc", {}).get("arguments")
    if not isinstance(arguments, dict):
        return True
    return any(
        p.get("in") == "json" for p in arguments.get("parameters", []) if isinstance(p, dict)
    )


def _deeper_than(document: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)] if isinstance(document, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _bad_character_in_json(document: Any, skipped: frozenset[str]) -> Found | None:
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        item, name = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                child_name = f"{name}.{key}" if name else key
                bad = _bad_character(key)
                if bad is not None:
                    return (escape_controls(child_name), *bad)
                if not (name == "" and key in skipped):
                    stack.append((child, child_name))
        elif isinstance(item, list):
            stack.extend((child, f"{name}.{i}" if name else str(i)) for i, child in enumerate(item))
        elif isinstance(item, str):
            multiline = name.rpartition(".")[2] in MULTILINE_FIELDS
            bad = _bad_character(item, multiline=multiline)
            if bad is not None:
                return (escape_controls(name or "body"), *bad)
    return None


def _too_deep() -> Response:
    log.info(
        "refused %s %s: JSON nested deeper than %d", request.method, request.path, MAX_JSON_DEPTH
    )
    detail = f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
    if _is_api():
        return problem_response("validation-error", detail, status=400, errors={"body": [detail]})
    return _page(
        400,
        ("请求内容层级过深", "The request is nested too deeply"),
        (
            f"请求内容的嵌套超过 {MAX_JSON_DEPTH} 层，未被处理。",
            f"The request's content is nested deeper than {MAX_JSON_DEPTH} levels and was not processed.",
        ),
    )


def _refusal(field: str, char: str, kind: str) -> Response:
    if _is_api():
        extra: dict[str, Any] = {"errors": {field: [f"{kind} {char} is not allowed"]}}
        if request.path == "/oauth/token":
            extra.update(error="invalid_request", error_description=f"{kind} in {field}")
        return problem_response("validation-error", f"{field} holds a {kind} ({char})", **extra)
    zh_kind = "控制字符" if kind == CONTROL else "无效的 Unicode 字符"
    return _page(
        400,
        ("请求含有不允许的字符", "The request holds a character that is not allowed"),
        (
            f"“{field}”中含有{zh_kind}（{char}），请删除后重试。",
            f"“{field}” holds a {kind} ({char}); remove it and try again.",
        ),
    )


# --- after the view --------------------------------------------------------------------------------


def _end_unit_of_work(response: Response) -> Response:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if g.get("rollback"):
            session.rollback()
        else:
            session.commit()
    except Exception:
        g.rollback = True
        with contextlib.suppress(Exception):  # the connection may be gone; closing returns it
            session.rollback()
        raise  # PipelineFlask.handle_exception answers instead
    finally:
        session.close()
    return response


def _echo_request_id(response: Response) -> Response:
    response.headers["X-Request-Id"] = request_id()
    return response


def _close_leftover_session(_error: BaseException | None) -> None:
    # A session opened after the commit (an error page's second pass) or left by an escaped error.
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        try:
            session.rollback()
        finally:
            session.close()


def _forget_cookie_changes() -> None:
    before = g.get("cookie_session_before")
    if before is None:
        return
    cookie_session.clear()
    cookie_session.update(before)
    cookie_session.modified = False


# --- failures of the database ----------------------------------------------------------------------


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database cannot be reached now (down, restarting, pool exhausted)."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError))


def _database_answer(error: Exception) -> Response | None:
    if isinstance(error, HTTPException) or not isinstance(error, sa_exc.SQLAlchemyError):
        return None
    original = getattr(error, "orig", None) or error
    reason = escape_controls(str(original).splitlines()[0] if str(original) else "")[:200]
    if database_unavailable(error):
        g.rollback = True
        _forget_cookie_changes()
        log.warning(
            "database unavailable on %s %s: %s: %s",
            request.method,
            request.path,
            type(original).__name__,
            reason,
        )
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
        if _is_api():
            return problem_response(
                "service-unavailable",
                f"the database is not answering; retry in {RETRY_AFTER_SECONDS} s",
                headers=headers,
            )
        return _page(
            503,
            ("服务暂时不可用", "The service is briefly unavailable"),
            (
                f"系统暂时连不上数据库，本次操作未做任何更改。请 {RETRY_AFTER_SECONDS} 秒后再试。",
                f"The service cannot reach its database right now, and nothing was changed. Try again in {RETRY_AFTER_SECONDS} seconds.",
            ),
            headers=headers,
        )
    if isinstance(error, sa_exc.DataError):
        # A value the database refuses (NUL inside a signed token's claim, a number out of range):
        # the caller's input, not our failure; the edge checks should have caught it, so say so.
        g.rollback = True
        log.warning("database refused a value on %s %s: %s", request.method, request.path, reason)
        if _is_api():
            return problem_response(
                "validation-error", "a value in the request cannot be stored", status=400
            )
        return _page(
            400,
            ("请求含有无法保存的内容", "The request holds a value that cannot be stored"),
            (
                "请求中的某个值无法保存，未做任何更改。请检查后重试。",
                "A value in the request cannot be stored, and nothing was changed. Check it and try again.",
            ),
        )
    return None


# --- answers ---------------------------------------------------------------------------------------


# Under an API prefix but a citizen's page (OAuth linking, citycredit.web.citizen.links): its
# refusals are pages, like /me's.
PAGES_UNDER_API = ("/oauth/authorize",)


def _is_api() -> bool:
    return request.path.startswith(API_PREFIXES) and request.path not in PAGES_UNDER_API


def _page(
    status: int,
    title: tuple[str, str],
    text: tuple[str, str],
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    """A plain message page in the visitor's language first, the other one below it."""
    english = _page_language() == "en"
    first, second = (1, 0) if english else (0, 1)
    admin = request.path.startswith("/admin")
    citizen = request.path.startswith("/me") or request.path in PAGES_UNDER_API
    stylesheet = None
    if admin and "admin.static" in current_app.view_functions:
        stylesheet = "/admin/static/admin.css"
    elif citizen and "citizen.static" in current_app.view_functions:
        stylesheet = "/me/static/citizen.css"
    body = render_template(
        "pipeline_message.html",
        lang="en" if english else "zh-CN",
        other_lang="zh-CN" if english else "en",
        title=title[first],
        text=text[first],
        other_title=title[second],
        other_text=text[second],
        reference_label=("参考编号", "Reference")[first],
        back=("/admin/" if admin else "/me/" if citizen else "/"),
        back_label=("返回", "Back")[first],
        stylesheet=stylesheet,
        request_id=request_id(),
    )
    response = Response(body, status=status, mimetype="text/html")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _page_language() -> str:
    chosen = request.args.get("lang")
    if chosen in ("zh", "en"):
        return chosen
    # The admin keeps the chosen language under "lang", the citizen page under "cz_lang".
    citizen = request.path.startswith("/me") or request.path in PAGES_UNDER_API
    key = "cz_lang" if citizen else "lang"
    try:
        return "en" if cookie_session.get(key) == "en" else "zh"
    except Exception:  # a session that cannot be read changes nothing here
        return "zh"


# --- logs ------------------------------------------------------------------------------------------

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class SafeFormatter(logging.Formatter):
    """One record, one line: control characters in the message are escaped (a caller's ``%0a`` cannot
    start a line of its own); a traceback's lines follow indented and tagged with the request id."""

    def __init__(self, fmt: str | None = LOG_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id()
        record.__dict__["request_id"] = rid
        msg, args = record.msg, record.args
        record.msg, record.args = escape_controls(record.getMessage()), None
        try:
            text = super().format(record)
        finally:
            record.msg, record.args = msg, args
        first, *rest = text.split("\n")
        tag = f"  [{rid}] "
        return "\n".join([escape_controls(first), *(tag + escape_controls(line) for line in rest)])


def install_log_handler(level: int = logging.WARNING) -> None:
    """Give the root logger a :class:`SafeFormatter` handler on stderr when nothing else logs.

    Only then: a host (gunicorn through :class:`GunicornLogger`, pytest, the CLI) that configured
    logging keeps its configuration; without one, Python would print bare messages unescaped.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter())
    handler.setLevel(level)
    root.addHandler(handler)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger with :class:`SafeFormatter` on its error and access logs, and the app's own
    records (the root logger) beside its error log, with the request id."""

    def _set_handler(self, log: logging.Logger, output: Any, fmt: Any, stream: Any = None) -> None:
        safe = SafeFormatter(getattr(fmt, "_fmt", None), getattr(fmt, "datefmt", None))
        super()._set_handler(log, output, safe, stream)

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        root = logging.getLogger()
        for old in list(root.handlers):
            if getattr(old, "_citycredit", False):
                root.removeHandler(old)
        errorlog = cfg.errorlog
        handler: logging.Handler = (
            logging.StreamHandler(sys.stderr)
            if errorlog in (None, "-")
            else logging.FileHandler(errorlog)
        )
        handler.setFormatter(SafeFormatter())
        handler._citycredit = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(self.loglevel)
