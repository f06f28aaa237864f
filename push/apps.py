"""Link apps: an operator's system that may ask citizens to link, named by its API client and the
exact redirect URIs the authorization may return to (RFC 6749 §3.1.2; compared as whole strings,
never by prefix, so an open redirector on the operator's site cannot receive a code)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.core.audit import audit
from citycredit.core.clients import ApiClient
from push.models import LinkApp

# http is allowed for development only, on the loopback interface (RFC 8252 §7.3).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_REDIRECT_URIS = 10
LINK_SCOPE = "links:read"
# host[:port], a name or an IP literal: the origin is also written into the consent page's CSP.
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


class AppError(Exception):
    """A link app cannot be registered as asked; the message says why."""


def check_redirect_uri(uri: str) -> str:
    """``uri`` when it may be registered: absolute https (or http on loopback), no fragment."""
    if not uri or len(uri) > 2000 or not uri.isprintable() or any(c.isspace() for c in uri):
        raise AppError("a redirect URI is an absolute URL without spaces, at most 2000 characters")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise AppError(f"not a URL: {uri!r}") from None
    if parts.fragment or "#" in uri:
        raise AppError("a redirect URI has no fragment (RFC 6749 §3.1.2)")
    if not parts.hostname or not _HOST.fullmatch(parts.netloc):
        raise AppError(f"a redirect URI names its host (no user or password): {uri!r}")
    if parts.scheme == "https":
        return uri
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return uri
    raise AppError("a redirect URI uses https (http only on 127.0.0.1 or localhost, to develop)")


def register_app(
    session: Session, client: ApiClient, redirect_uris: list[str], *, actor: str
) -> LinkApp:
    """Register (or replace) the redirect URIs of an operator's API client."""
    if client.kind != "operator" or client.operator_id is None or client.status != "active":
        raise AppError("only an active operator's API client can ask citizens to link")
    if LINK_SCOPE not in client.scope_set:
        raise AppError(f"the client needs the {LINK_SCOPE} scope to read its links")
    uris = list(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris))
    if not uris or len(uris) > MAX_REDIRECT_URIS:
        raise AppError(f"register 1 to {MAX_REDIRECT_URIS} redirect URIs")
    app = session.get(LinkApp, client.id)
    if app is None:
        app = LinkApp(client_id=client.id, redirect_uris=uris)
        session.add(app)
    else:
        app.redirect_uris = uris
    session.flush()
    audit(
        session,
        actor=actor,
        action="link_app.register",
        client=client.client_id,
        redirect_uris=uris,
    )
    return app


def app_of(session: Session, client_id: str) -> tuple[ApiClient, LinkApp] | None:
    """The active operator client with this public id and its link app (None if either is missing)."""
    found = session.execute(
        select(ApiClient, LinkApp)
        .join(LinkApp, LinkApp.client_id == ApiClient.id)
        .where(ApiClient.client_id == client_id)
    ).first()
    if found is None:
        return None
    client, app = found
    if client.status != "active" or client.operator_id is None:
        return None
    return client, app
