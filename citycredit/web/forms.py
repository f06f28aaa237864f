"""What the server-rendered pages (the admin, the citizen page) share: CSRF tokens and the language link.

Each set of pages keeps its token under its own session key, so signing in or out of one never
disturbs the other.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import request, session, url_for
from markupsafe import Markup


def csrf_token(key: str) -> str:
    """The session's CSRF token under ``key``, made on first use."""
    token = session.get(key)
    if not token:
        token = session[key] = secrets.token_urlsafe(32)
    return str(token)


def csrf_field(key: str) -> Markup:
    """The hidden input every form POST carries."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(csrf_token(key))


def csrf_ok(key: str) -> bool:
    """Whether this request carries the session's token (form field, or X-CSRF-Token for scripts)."""
    expected = session.get(key)
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


def lang_url(code: str, fallback_endpoint: str) -> str:
    """This page in another language (``fallback_endpoint`` when this page answers only POST)."""
    rule = request.url_rule
    if rule is None or "GET" not in (rule.methods or ()) or request.endpoint is None:
        return url_for(fallback_endpoint, lang=code)
    # url_for reads "_external", "_anchor"… as options: a visitor's query must not set them.
    args: dict[str, Any] = {
        k: v for k, v in request.args.items() if k != "lang" and not k.startswith("_")
    }
    return url_for(request.endpoint, **(request.view_args or {}), **args, lang=code)
