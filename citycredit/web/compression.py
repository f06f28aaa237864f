"""Responses gzipped on the way out when the client accepts it (the standard library's gzip only).

A page or JSON answer is compressed when the client's ``Accept-Encoding`` allows gzip, its type is
text-like, it is at least :data:`MIN_SIZE` bytes, and nothing encoded it already. Files sent from disk
(``send_file``, the static folders) and streamed bodies pass untouched: they are read lazily, and a
front proxy compresses or caches them better. Every compressible answer says ``Vary:
Accept-Encoding``, compressed or not, so a shared cache never hands gzip to a client that did not ask.
"""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

MIN_SIZE = (
    512  # bytes; a smaller body fits one packet either way, and gzip's 20-byte frame costs more
)
LEVEL = 6  # zlib's default: near the best ratio for text at a fraction of level 9's time
COMPRESSIBLE = frozenset(
    {
        "application/javascript",
        "application/jrd+json",
        "application/json",
        "application/problem+json",
        "application/xml",
        "image/svg+xml",
        "text/css",
        "text/csv",
        "text/html",
        "text/javascript",
        "text/plain",
        "text/xml",
    }
)


def init_compression(app: Flask) -> None:
    """Compress every response the app makes; call it after every other app-level hook is
    registered, so that it runs first among them (on the body the views made) and the unit of work
    still commits last."""
    app.after_request(compress_response)


def compress_response(response: Response) -> Response:
    if not _compressible(response):
        return response
    response.vary.add("Accept-Encoding")
    if request.accept_encodings["gzip"] <= 0:  # absent, or refused with q=0
        return response
    body = response.get_data()
    if len(body) < MIN_SIZE:
        return response
    # mtime=0: the same body always gives the same bytes (no timestamp in the gzip header).
    response.set_data(gzip.compress(body, compresslevel=LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:  # a strong validator names one exact byte sequence
        response.set_etag(etag + "-gzip")
    return response


def _compressible(response: Response) -> bool:
    return (
        response.status_code >= 200
        and response.status_code not in (204, 206, 304)
        and not response.direct_passthrough  # a file sent from disk
        and not response.is_streamed  # a generator: buffering it would defeat its purpose
        and "Content-Encoding" not in response.headers
        and "Content-Range" not in response.headers
        and response.mimetype in COMPRESSIBLE
    )
