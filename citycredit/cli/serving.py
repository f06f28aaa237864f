"""Before ``citycredit serve`` hands over to gunicorn: is the address free, and what is the city's URL."""

from __future__ import annotations

import errno
import socket

WILDCARDS = ("", "0.0.0.0", "::")
# How far past a taken port to look for a free one to suggest.
SUGGEST_WITHIN = 50


def _bind_error(host: str, port: int) -> OSError | None:
    """Bind as gunicorn does (SO_REUSEADDR) and let go at once; the error if that fails."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, exc.strerror)
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return exc
    return None


def address_problem(host: str, port: int) -> str | None:
    """One line saying why the city cannot be served on ``host:port`` and what to do; None if free."""
    error = _bind_error(host, port)
    if error is None:
        return None
    if error.errno != errno.EADDRINUSE:
        return f"cannot serve on {host}:{port}: {error.strerror}"
    free = next(
        (
            p
            for p in range(port + 1, min(port + SUGGEST_WITHIN, 65535) + 1)
            if not _bind_error(host, p)
        ),
        None,
    )
    choice = f"make demo PORT={free}" if free else "make demo PORT=<another port>"
    return (
        f"port {port} on {host} is already in use (another `make demo` or server?): stop it, "
        f"or pick a free port: {choice} (`citycredit serve --port {free or '…'}`)"
    )


def served_url(host: str, port: int) -> str:
    """The address a browser or a partner on this machine uses for the server bound to host:port."""
    if host in WILDCARDS:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
