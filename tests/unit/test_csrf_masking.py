"""The CSRF token a page carries is masked anew on every response (pages are gzipped and some echo a
visitor's input: a secret repeated verbatim could be recovered from compressed sizes, BREACH)."""

from __future__ import annotations

import re

from flask import Flask, session

from citycredit.web import forms

KEY = "csrf_token"


def app() -> Flask:
    made = Flask(__name__)
    made.secret_key = "test"
    return made


def field_value(html: str) -> str:
    found = re.search(r'value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_each_page_carries_a_different_masking_of_the_one_token() -> None:
    with app().test_request_context("/"):
        token = forms.csrf_token(KEY)
        values = {field_value(forms.csrf_field(KEY)) for _ in range(20)}
        assert len(values) == 20
        assert all(token not in v for v in values)


def test_every_masked_value_is_accepted_and_tampering_is_not() -> None:
    flask_app = app()
    with flask_app.test_request_context("/"):
        session[KEY] = "s3cret-token-of-this-session"
        masked = forms.masked_csrf_token(KEY)
    for sent, ok in [
        (masked, True),
        (masked[:-2] + ("A" if masked[-2] != "A" else "B") + masked[-1], False),
        ("s3cret-token-of-this-session", False),  # the bare token never appears in a page
        ("", False),
        ("!!!not base64!!!", False),
        ("ab", False),
        ("令牌", False),
    ]:
        with flask_app.test_request_context("/", method="POST", data={"csrf_token": sent}):
            session[KEY] = "s3cret-token-of-this-session"
            assert forms.csrf_ok(KEY) is ok, sent


def test_a_masked_token_of_another_session_is_refused() -> None:
    flask_app = app()
    with flask_app.test_request_context("/"):
        session[KEY] = "token-of-alice"
        alices = forms.masked_csrf_token(KEY)
    with flask_app.test_request_context("/", method="POST", data={"csrf_token": alices}):
        session[KEY] = "token-of-bob"
        assert not forms.csrf_ok(KEY)
    with flask_app.test_request_context("/", method="POST", data={"csrf_token": alices}):
        assert not forms.csrf_ok(KEY)  # no session token at all
