"""Responses gzipped on the way out (citycredit.web.compression), on a bare Flask app: only when the
client accepts gzip, only text-like bodies worth it, never twice, never a file or a stream."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, send_file

from citycredit.web.compression import MIN_SIZE, init_compression

PAGE = "<!doctype html><title>长页面</title>" + "<p>信用分 1005，等级 A。</p>\n" * 200
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)

    @app.get("/page")
    def page() -> Any:
        return PAGE

    @app.get("/small")
    def small() -> Any:
        return "x" * (MIN_SIZE - 1)

    @app.get("/png")
    def png() -> Any:
        return Response(b"\x89PNG" + bytes(4000), mimetype="image/png")

    @app.get("/encoded")
    def encoded() -> Any:
        body = gzip.compress(PAGE.encode())
        return Response(body, mimetype="text/html", headers={"Content-Encoding": "gzip"})

    @app.get("/file")
    def file() -> Any:
        return send_file(io.BytesIO(PAGE.encode()), mimetype="text/plain")

    @app.get("/stream")
    def stream() -> Any:
        def lines() -> Iterator[str]:
            yield from PAGE.splitlines(keepends=True)

        return Response(lines(), mimetype="text/csv")

    @app.get("/tagged")
    def tagged() -> Any:
        response = Response(PAGE, mimetype="text/html")
        response.set_etag("v1")
        return response

    init_compression(app)
    return app


def test_a_page_is_gzipped_for_a_client_that_accepts_it_and_plain_otherwise(app: Flask) -> None:
    client = app.test_client()
    zipped = client.get("/page", headers=GZIP)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert int(zipped.headers["Content-Length"]) == len(zipped.data) < len(PAGE.encode()) / 10
    assert gzip.decompress(zipped.data).decode() == PAGE
    for headers in ({}, {"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0, br"}):
        plain = client.get("/page", headers=headers)
        assert "Content-Encoding" not in plain.headers, headers
        assert plain.get_data(as_text=True) == PAGE
        # The plain answer varies too: a shared cache must not give it to a gzip client or back.
        assert "Accept-Encoding" in plain.headers["Vary"]
    assert (
        client.get("/page", headers={"Accept-Encoding": "*"}).headers["Content-Encoding"] == "gzip"
    )


@pytest.mark.parametrize("path", ["/small", "/png", "/encoded", "/file", "/stream"])
def test_small_binary_encoded_file_and_streamed_bodies_pass_untouched(
    app: Flask, path: str
) -> None:
    client = app.test_client()
    plain = client.get(path)
    asked = client.get(path, headers=GZIP)
    assert asked.data == plain.data
    assert asked.headers.get("Content-Encoding") == plain.headers.get("Content-Encoding")
    if path == "/encoded":  # compressed once, by its view, not twice
        assert gzip.decompress(asked.data).decode() == PAGE


def test_a_strong_etag_names_the_gzipped_bytes_apart(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/tagged").headers["ETag"] == '"v1"'
    assert client.get("/tagged", headers=GZIP).headers["ETag"] == '"v1-gzip"'
