"""What the server-rendered pages (the admin, the citizen page) share: CSRF tokens and the language link.

Each set of pages keeps its token under its own session key, so signing in or out of one never
disturbs the other. A page never carries the token itself: each form gets it XOR-masked with fresh
random bytes, so the bytes differ on every response. Pages are gzipped and some echo what a visitor
typed (a search); a secret repeated verbatim in such a page could be read off the compressed sizes
(the BREACH attack), a masked one cannot.
"""

from __future__ import annotations

import base64
import binascii
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


def masked_csrf_token(key: str) -> str:
    """The session's token as a page may carry it: a fresh mask, then the token XOR the mask."""
    token = csrf_token(key).encode()
    mask = secrets.token_bytes(len(token))
    masked = bytes(a ^ b for a, b in zip(token, mask, strict=True))
    return base64.urlsafe_b64encode(mask + masked).decode().rstrip("=")


def _unmask(sent: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(sent + "=" * (-len(sent) % 4))
    except (binascii.Error, ValueError):
        return b""
    half = len(data) // 2
    if not half or len(data) % 2:
        return b""
    return bytes(a ^ b for a, b in zip(data[half:], data[:half], strict=True))


def csrf_field(key: str) -> Markup:
    """The hidden input every form POST carries (masked anew on every page)."""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(
        masked_csrf_token(key)
    )


def csrf_ok(key: str) -> bool:
    """Whether this request carries the session's token, masked as the pages give it (form field,
    or X-CSRF-Token for scripts)."""
    expected = session.get(key)
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not expected or not sent.isascii():
        return False
    return hmac.compare_digest(_unmask(sent), str(expected).encode())


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
