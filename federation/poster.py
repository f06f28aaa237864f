"""Server-to-server POSTs on kept-alive ``http.client`` connections, one pool per process.

Every visitor's verification asks the issuing city one question. On httpx (its client, auth, cookie,
redirect and event-hook layers over httpcore) a question cost ~0.7 ms more CPU than the same POST on
the standard library's connection, about a third of what the venue's city spends on a visitor beyond a
local verification (docs/BENCHMARKS.md, federation). TLS is verified as httpx verifies it (the same
context: certifi's bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``). Where the environment names a
proxy (``HTTPS_PROXY`` and the like), :func:`usable` says no and the caller stays on httpx, which
honours it.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import select
import ssl
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_ANSWER = 1_000_000  # bytes: a signed answer is under one kilobyte
IDLE_KEPT = 16  # idle connections kept per partner
USER_AGENT = "citycredit-s2s"


class Unreachable(Exception):
    """The partner could not be asked, or its answer could not be read."""


_lock = threading.Lock()
_idle: dict[tuple[int, str, str, int], list[http.client.HTTPConnection]] = {}
_tls: tuple[int, ssl.SSLContext] | None = None


def usable() -> bool:
    """Whether a question can go straight to the partner: not where a proxy is configured."""
    return not urllib.request.getproxies()


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None or _tls[0] != os.getpid():
        _tls = (os.getpid(), httpx.create_ssl_context())  # loads the CA bundle once per process
    return _tls[1]


def _connect(scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


def _idle_connection(key: tuple[int, str, str, int]) -> http.client.HTTPConnection | None:
    while True:
        with _lock:
            kept = _idle.get(key)
            connection = kept.pop() if kept else None
        if connection is None:
            return None
        sock = connection.sock
        # Readable while idle: the partner closed it (or sent what nobody asked for). Not reused.
        if sock is not None and not select.select([sock], [], [], 0)[0]:
            return connection
        connection.close()


def _keep(key: tuple[int, str, str, int], connection: http.client.HTTPConnection) -> None:
    with _lock:
        kept = _idle.setdefault(key, [])
        if len(kept) < IDLE_KEPT:
            kept.append(connection)
            return
    connection.close()


@atexit.register
def close_all() -> None:
    """Close every kept connection (at exit: a socket left to the collector warns)."""
    with _lock:
        kept = [connection for connections in _idle.values() for connection in connections]
        _idle.clear()
    for connection in kept:
        connection.close()


def post_json(url: str, body: dict[str, Any], *, timeout: float) -> tuple[int, bytes]:
    """POST ``body`` as JSON to ``url``: the status and the answer's bytes (at most
    :data:`MAX_ANSWER`). Raises :class:`Unreachable`."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Unreachable(f"not an http(s) URL: {url[:200]!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise Unreachable(f"bad port in {url[:200]!r}: {exc}") from None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = (os.getpid(), scheme, parts.hostname, port)
    content = json.dumps(body, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    connection = _idle_connection(key)
    reused = connection is not None
    while True:
        if connection is None:
            connection = _connect(scheme, parts.hostname, port, timeout)
        else:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
        try:
            connection.request("POST", target, body=content, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_ANSWER + 1)
        except (ConnectionResetError, BrokenPipeError) as exc:
            connection.close()
            if reused:
                # The partner closed a kept connection as we sent on it (its keep-alive ran out):
                # sent once more on a new one. Had it arrived after all, the partner refuses the
                # second as a replay (same jti): never answered twice.
                connection, reused = None, False
                continue
            raise Unreachable(str(exc) or type(exc).__name__) from None
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise Unreachable(str(exc) or type(exc).__name__) from None
        break
    if len(answer) > MAX_ANSWER:
        connection.close()
        raise Unreachable(f"the answer is longer than {MAX_ANSWER} bytes")
    if response.will_close:
        connection.close()
    else:
        _keep(key, connection)
    return response.status, answer
