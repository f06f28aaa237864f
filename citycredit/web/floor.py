"""The floor of a verification, for bench/verify.py: only the work no verification can skip.

``POST /bench/verification-floor`` checks the code's Ed25519 signature once (its header and claims
read once, the sealed citizen opened), inserts one verification row and commits — through the same
app, request pipeline and session as ``POST /api/v1/verifications``, but without authentication,
scenario, rule, rate limit or marshmallow. The bench names the client and the scenario version in
the body. It is registered only when ``Settings.bench_floor`` is on (``CITYCREDIT_BENCH_FLOOR=1``),
which production refuses, and is a plain Flask route: not in the OpenAPI document.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from flask import Flask, current_app, request
from sqlalchemy import Boolean, bindparam, text

from citycredit.core import keys
from citycredit.core.db import UTCDateTime, utcnow
from citycredit.web.api.problems import Problem
from citycredit.web.context import db_session, platform_of
from credit_codes import tokens

PATH = "/bench/verification-floor"
# As cheap as an INSERT can be sent from here: written once (as the verification's own is).
_INSERT = text(
    "INSERT INTO verification (public_id, client_id, citizen_id, scenario_id, scenario_version_id,"
    " token_jti, eligible, common_tier, at) VALUES (:public_id, :client_id, :citizen_id,"
    " :scenario_id, :scenario_version_id, :token_jti, :eligible, :common_tier, :at)"
).bindparams(bindparam("at", type_=UTCDateTime()), bindparam("eligible", type_=Boolean()))


def init_floor(app: Flask) -> None:
    """Register the floor endpoint (benchmarks only; see the module's docstring)."""
    if not platform_of(app).settings.bench_floor:
        return
    app.add_url_rule(PATH, "verification_floor", verification_floor, methods=["POST"])


def verification_floor() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(name), int) for name in ("client", "scenario", "version")
    ):
        raise Problem("validation-error", "send token, client, scenario and version")
    settings = platform_of(current_app).settings
    session = db_session()
    try:
        code = tokens.parse_code(str(body.get("token", "")))
        public = keys.public_key_for(session, code.header["kid"])
        if public is None:
            raise tokens.UnknownKey("not a key of this city")
        try:
            public.verify(code.signature, code.signing_input)
        except InvalidSignature:
            raise tokens.BadSignature("the signature does not verify") from None
        claims = code.claims
        sealed = tokens.open_sealed(
            settings.token_key,
            str(claims["sub"]),
            issuer=settings.city_code,
            jti=str(claims["jti"]),
        )
    except (KeyError, TypeError):
        raise Problem("token-malformed", "a claim is missing") from None
    except tokens.TokenRejected as exc:
        raise Problem(exc.type, exc.detail) from None
    public_id = "ver_" + secrets.token_hex(8)
    session.execute(
        _INSERT,
        {
            "public_id": public_id,
            "client_id": body["client"],
            "citizen_id": sealed.citizen_id,
            "scenario_id": body["scenario"],
            "scenario_version_id": body["version"],
            "token_jti": str(claims["jti"]),
            "eligible": True,
            "common_tier": claims["ct"],
            "at": utcnow(),
        },
    )
    return {"verification_id": public_id, "eligible": True}
