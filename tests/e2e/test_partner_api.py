"""Partner venues against a real server: the SDK, QR images read by zxing-cpp, an independent JOSE
library, every rejection, exact redemption under real parallel requests, and credential changes."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jws
from joserfc.jwk import KeySet
from PIL import Image

from citycredit.core.db import make_session_factory, unit_of_work
from citycredit.core.keys import current_signing_key
from citycredit_partner import (
    AlreadyRedeemedError,
    AuthenticationError,
    CodeRejectedError,
    NotEligibleError,
    PartnerClient,
    QuotaExhaustedError,
)
from tests.e2e.conftest import LiveCity

LIBRARY = "library-deposit-free"  # common tier ≥ 3, once a day
BUS = "bus-fare-discount"  # tier ≥ 4, six a day
POWER_BANK = "power-bank-free"  # tier ≥ 3, twice a day


def sdk(city: LiveCity, **options: object) -> PartnerClient:
    return PartnerClient(city.venue.client_id, city.venue.client_secret, city.url, **options)  # type: ignore[arg-type]


def test_a_library_desk_verifies_and_redeems_with_the_sdk(city: LiveCity) -> None:
    token = city.code(city.good)
    with sdk(city) as desk:
        check = desk.verify(token, LIBRARY)
        assert check.eligible and check.tier.level == 3 and check.tier.name_zh == "良好"
        assert check.benefit.zh == "免押金借阅图书最多40册"
        done = desk.redeem(token, LIBRARY)
        assert done.scenario == LIBRARY and done.id.startswith("red_")
        with pytest.raises(QuotaExhaustedError):
            desk.redeem(city.code(city.good), LIBRARY)
        # The bus discount needs tier 4: a verification says no, a redemption is refused.
        assert desk.verify(token, BUS).eligible is False
        with pytest.raises(NotEligibleError):
            desk.redeem(token, BUS)


def test_the_venue_learns_nothing_but_eligibility_and_tier(city: LiveCity) -> None:
    token = city.code(city.excellent)
    with sdk(city) as desk:
        access = desk._access_token()
    body = httpx.post(
        city.url + "/api/v1/verifications",
        json={"token": token, "scenario": BUS},
        headers={"Authorization": f"Bearer {access}"},
    ).json()
    assert set(body) == {
        "verification_id",
        "eligible",
        "tier",
        "scenario",
        "scenario_version",
        "benefit",
        "verified_at",
        "visitor",
        "issuer",
    }
    assert set(body["tier"]) == {"level", "name_zh", "name_en"}
    assert body["visitor"] is False
    assert body["issuer"] == {"code": "huangshi", "name_zh": "黄石市", "name_en": "Demo City"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "ct", "lt", "mv", "iat", "exp", "jti"}
    assert city.excellent not in json.dumps(claims) and "score" not in json.dumps(claims)
    # Two codes of the same person share no identifier a venue could link.
    again = jwt.decode(city.code(city.excellent), options={"verify_signature": False})
    assert again["sub"] != claims["sub"] and again["jti"] != claims["jti"]


def test_the_png_we_serve_decodes_back_to_the_same_token(city: LiveCity) -> None:
    response = city.issue_code(city.good, accept="image/png")
    assert response.status_code == 201 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    assert len(found) == 1
    token = found[0].text
    # The decoder itself reports the symbol: error correction M, version 15 or smaller.
    assert found[0].ec_level == "M" and int(found[0].extra["Version"]) <= 15
    with sdk(city) as desk:
        assert desk.verify(token, LIBRARY).eligible
    svg = city.issue_code(city.good, accept="image/svg+xml")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text


def test_codes_fit_a_version_15_qr_at_level_m(city: LiveCity) -> None:
    from credit_codes.qr import qr_version

    body = city.issue_code(city.excellent).json()
    assert qr_version(body["token"]) <= 15


# RFC 9864 deprecates the polymorphic "EdDSA" name for "Ed25519"; PyJWT (ours and the SDK's) knows only
# "EdDSA" so far, so the codes keep it and joserfc's deprecation notice is expected here.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")
def test_an_independent_jose_library_verifies_our_codes_with_our_jwks(city: LiveCity) -> None:
    token = city.code(city.good)
    key_set = KeySet.import_key_set(httpx.get(city.url + "/.well-known/jwks.json").json())
    verified = jws.deserialize_compact(token, key_set, algorithms=["EdDSA"])
    claims = json.loads(verified.payload)
    assert claims["iss"] == "huangshi" and claims["ct"] == 3
    assert claims["exp"] - claims["iat"] == 120


def _signing_key(city: LiveCity) -> tuple[str, Ed25519PrivateKey]:
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        return current_signing_key(session, city.settings.key_secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge(city: LiveCity, **changes: object) -> str:
    """A code signed with the city's real key, with claims changed (what an insider bug would produce)."""
    kid, private = _signing_key(city)
    good = jwt.decode(city.code(city.good), options={"verify_signature": False})
    claims = {**good, **changes}
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid, "typ": None})


def rejection_cases(city: LiveCity) -> dict[str, str]:
    token = city.code(city.good)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    kid, _ = _signing_key(city)
    raised = _b64(json.dumps({**claims, "ct": 5}).encode())
    public_x = httpx.get(city.url + "/.well-known/jwks.json").json()["keys"][0]["x"]
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    hs_body = f"{hs_header}.{payload}"
    import hashlib
    import hmac

    hs_sig = _b64(hmac.new(public_x.encode(), hs_body.encode(), hashlib.sha256).digest())
    stranger = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "not-ours"}
    )
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "token-expired": _forge(city, iat=now - 600, exp=now - 480),
        "bad-signature": f"{header}.{raised}.{signature}",
        "wrong-issuer": _forge(city, iss="sanya"),
        "unknown-key": stranger,
        "token-unsigned": f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{payload}.",
        "algorithm-not-allowed": f"{hs_body}.{hs_sig}",
        "token-malformed": "this is not a credit code",
    }


def test_every_rejection_has_its_own_documented_type_online_and_offline(city: LiveCity) -> None:
    cases = rejection_cases(city)
    with sdk(city) as desk:
        for reason, token in cases.items():
            with pytest.raises(CodeRejectedError) as online:
                desk.verify(token, LIBRARY)
            assert (online.value.reason, online.value.status) == (reason, 422), reason
            assert online.value.problem["type"] == f"/problems/{reason}"
            doc = httpx.get(city.url + online.value.problem["type"])
            assert doc.status_code == 200 and doc.json()["title"] == online.value.problem["title"]
            with pytest.raises(CodeRejectedError) as offline:
                desk.verify_offline(token)
            assert offline.value.reason == reason, reason
        # A valid code passes offline with the tier and nothing else.
        result = desk.verify_offline(city.code(city.excellent))
        assert (result.issuer, result.tier_level, result.local_tier) == ("huangshi", 4, "AA")


def test_two_desks_scanning_one_code_at_once_redeem_it_once(city: LiveCity) -> None:
    token = city.code(city.excellent)
    desks = [sdk(city) for _ in range(8)]
    for desk in desks:
        desk._access_token()

    def attempt(desk: PartnerClient) -> str:
        try:
            desk.redeem(token, BUS)
            return "ok"
        except AlreadyRedeemedError:
            return "already"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, desks))
    for desk in desks:
        desk.close()
    assert sorted(outcomes) == ["already"] * 7 + ["ok"]


def test_the_daily_quota_holds_exactly_under_parallel_redemptions(city: LiveCity) -> None:
    codes = [city.code(city.good) for _ in range(10)]
    desks = [sdk(city) for _ in codes]
    for desk in desks:
        desk._access_token()

    def attempt(pair: tuple[PartnerClient, str]) -> str:
        try:
            pair[0].redeem(pair[1], POWER_BANK)
            return "ok"
        except QuotaExhaustedError:
            return "quota"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, zip(desks, codes, strict=True)))
    for desk in desks:
        desk.close()
    assert outcomes.count("ok") == 2 and outcomes.count("quota") == 8


def test_a_retried_redemption_with_the_same_key_is_not_counted_twice(city: LiveCity) -> None:
    token = city.code(city.excellent)
    with sdk(city) as desk:
        first = desk.redeem(token, BUS, idempotency_key="desk-7-scan-1")
        again = desk.redeem(token, BUS, idempotency_key="desk-7-scan-1")
        assert again == first
        assert desk.redeem(city.code(city.excellent), BUS).id != first.id


def test_revoking_or_rotating_a_client_takes_effect_at_once(city: LiveCity) -> None:
    from citycredit.core.clients import find_client, revoke_client, rotate_secret

    factory = make_session_factory(city.db.engine)
    with sdk(city) as desk:
        desk.verify(city.code(city.good), LIBRARY)  # holds a valid access token now
        access = desk._access_token()
        with unit_of_work(factory) as session:
            new_secret = rotate_secret(
                session,
                find_client(session, city.venue.client_id),  # type: ignore[arg-type]
                key_secret=city.settings.key_secret,
            )
        stale = httpx.post(
            city.url + "/api/v1/verifications",
            json={"token": city.code(city.good), "scenario": LIBRARY},
            headers={"Authorization": f"Bearer {access}"},
        )
        assert stale.status_code == 401 and stale.json()["type"] == "/problems/invalid-token"
        with pytest.raises(AuthenticationError):
            desk.verify(city.code(city.good), LIBRARY)  # the old secret no longer gets a token
    with PartnerClient(city.venue.client_id, new_secret, city.url) as desk:
        assert desk.verify(city.code(city.good), LIBRARY).eligible
        with unit_of_work(factory) as session:
            revoke_client(session, find_client(session, city.venue.client_id))  # type: ignore[arg-type]
        with pytest.raises(AuthenticationError):
            desk.verify(city.code(city.good), LIBRARY)


def test_key_rotation_keeps_codes_in_flight_valid(city: LiveCity) -> None:
    from citycredit.core.keys import create_signing_key

    before = city.code(city.good)
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        create_signing_key(session, city.settings.key_secret)
    after = city.code(city.good)
    kids = {key["kid"] for key in httpx.get(city.url + "/.well-known/jwks.json").json()["keys"]}
    assert (
        jwt.get_unverified_header(before)["kid"] in kids
        and jwt.get_unverified_header(after)["kid"] in kids
    )
    with sdk(city) as desk:
        assert desk.verify(before, LIBRARY).eligible and desk.verify(after, LIBRARY).eligible
        assert desk.verify_offline(after).tier_level == 3  # unknown kid → JWKS refetched once


def test_withdrawing_consent_stops_new_codes_without_telling_venues(city: LiveCity) -> None:
    from citycredit.core.idnumber import parse_id_number
    from points_engine.operations import withdraw_consent
    from points_engine.queries import find_citizen

    token = city.code(city.good)
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        person = find_citizen(session, city.settings.id_hash_key, parse_id_number(city.good))
        assert person is not None
        withdraw_consent(session, person, channel="app")
    # The code already on screen answers as it would offline for its 120 s: the venue cannot tell
    # that consent was withdrawn. No new code can be issued.
    with sdk(city) as desk:
        assert desk.verify(token, LIBRARY).eligible is True
    assert city.issue_code(city.good).json()["type"] == "/problems/not-scored"


def test_data_sources_upload_records_with_row_errors_and_safe_retries(city: LiveCity) -> None:
    from tests import factories

    number = factories.id_number()
    rows = [
        {
            "source": "court",
            "source_record_id": "u1",
            "id_number": number,
            "item_code": "FINE",
            "document_no": "罚1",
            "occurred_on": "2026-05-01",
            "reported_on": "2026-05-02",
        },
        {
            "source": "court",
            "source_record_id": "u2",
            "id_number": number[:-1] + "0" if number[-1] != "0" else number[:-1] + "1",
            "item_code": "FINE",
            "document_no": "罚2",
            "occurred_on": "2026-05-01",
            "reported_on": "2026-05-02",
        },
    ]
    with PartnerClient(city.source.client_id, city.source.client_secret, city.url) as court:
        first = court.upload_records(rows, idempotency_key="court-batch-1")
        assert (first.inserted, first.rejected) == (1, 1)
        assert first.errors == [
            {
                "row": 2,
                "field": "id_number",
                "reason": "invalid ID number: check digit does not match (GB 11643)",
                "source_record_id": "u2",
                "code": "id_number",
            }
        ]
        again = court.upload_records(rows, idempotency_key="court-batch-1")
        assert again == first  # the same answer, not a second batch
        fresh = court.upload_records(rows)
        assert (fresh.inserted, fresh.unchanged, fresh.batch_id != first.batch_id) == (0, 1, True)
        token = court._access_token()
    reused = httpx.post(
        city.url + "/api/v1/records",
        json={"records": rows[:1]},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "court-batch-1"},
    )
    assert reused.status_code == 422 and reused.json()["type"] == "/problems/idempotency-key-reused"
    too_many = httpx.post(
        city.url + "/api/v1/records",
        json={"records": rows * 5001},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert too_many.status_code == 422 and "records" in too_many.json()["errors"]


def test_the_api_documents_itself_offline(city: LiveCity) -> None:
    spec = httpx.get(city.url + "/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/verifications", "/api/v1/redemptions", "/api/v1/records", "/oauth/token"):
        assert path in spec["paths"]
    page = httpx.get(city.url + "/api/docs").text
    # Nothing is fetched from elsewhere: every script and stylesheet is the city's own.
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/") or s.startswith("./") for s in sources), sources
    assert "/api/docs/assets/swagger-ui-bundle.js" in page
    asset = httpx.get(city.url + "/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    wrong = httpx.post(city.url + "/oauth/token", data={"grant_type": "password"})
    assert wrong.json()["type"] == "/problems/unsupported-grant-type"
    assert wrong.json()["error"] == "unsupported_grant_type" and wrong.json()["error_description"]
    # No grant at all is RFC 6749's invalid_request, which OAuth libraries know: 400, not 422.
    missing = httpx.post(city.url + "/oauth/token", data={"client_id": "x", "client_secret": "y"})
    assert missing.status_code == 400
    assert missing.json()["type"] == "/problems/invalid-request"
    assert missing.json()["error"] == "invalid_request"
    bad = httpx.post(
        city.url + "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert bad.headers["content-type"] == "application/problem+json"


def test_citycredit_verify_reads_a_screenshot_of_the_qr_code(
    city: LiveCity, tmp_path: Path
) -> None:
    shot = tmp_path / "screenshot.png"
    code = Image.open(io.BytesIO(city.issue_code(city.good, accept="image/png").content)).convert(
        "RGB"
    )
    # A phone screenshot: the code small and off-centre on a larger grey screen.
    screen = Image.new("RGB", (code.width * 2, code.height * 3), (230, 230, 230))
    screen.paste(code, (code.width // 3, code.height))
    screen.save(shot)
    env = {
        **os.environ,
        "CITYCREDIT_BASE_URL": city.url,
        "CITYCREDIT_CLIENT_ID": city.venue.client_id,
        "CITYCREDIT_CLIENT_SECRET": city.venue.client_secret,
    }
    command = [sys.executable, "-m", "citycredit_partner.cli"]
    online = subprocess.run(
        [*command, "--image", str(shot), "--scenario", LIBRARY],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert online.returncode == 0, online.stderr
    assert "ELIGIBLE 符合" in online.stdout and "良好" in online.stdout
    offline = subprocess.run(
        [*command, "--image", str(shot), "--offline"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0 and "tier level 3" in offline.stdout
    rejected = subprocess.run(
        [*command, "not-a-code", "--offline"], env=env, capture_output=True, text=True, timeout=60
    )
    assert rejected.returncode == 2 and "token-malformed" in rejected.stderr


def test_the_three_examples_run_against_a_city(city: LiveCity, tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    (instance / "demo").mkdir(parents=True, exist_ok=True)
    (instance / "demo" / "clients.json").write_text(
        json.dumps(
            {
                role: {"client_id": c.client_id, "client_secret": c.client_secret}
                for role, c in (("venue", city.venue), ("app", city.app))
            }
        )
    )
    env = {**os.environ, "CITYCREDIT_BASE_URL": city.url, "CITYCREDIT_INSTANCE_DIR": str(instance)}
    examples = Path(__file__).parents[2] / "examples"

    def run(script: str, number: str) -> str:
        done = subprocess.run(
            [sys.executable, str(examples / script), "--id", number],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "已核销" in run("library_desk.py", city.good)
    assert "不符合免押金借阅条件" in run("library_desk.py", city.poor)
    first_ride = run("bus_gate.py", city.excellent)
    assert "¥1.60" in first_ride and "discount recorded" in first_ride
    assert "¥2.00" in run("bus_gate.py", city.good)
    assert "power bank released" in run("power_bank_kiosk.py", city.good)
    assert "today's free rentals are used" not in run("power_bank_kiosk.py", city.good)
    assert "today's free rentals are used" in run("power_bank_kiosk.py", city.good)


def test_a_client_with_a_registered_public_key_authenticates_by_assertion(city: LiveCity) -> None:
    from cryptography.hazmat.primitives import serialization

    from citycredit.core.clients import register_client

    key = Ed25519PrivateKey.generate()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        issued = register_client(
            session,
            name="gate",
            kind="venue",
            scopes=["verify"],
            public_key_pem=pem,
            key_secret=city.settings.key_secret,
        )
        client_id = issued.client.client_id
    assert issued.secret is None
    now = int(dt.datetime.now(dt.UTC).timestamp())

    def assertion(signer: Ed25519PrivateKey, *, jti: str | None = None, life: int = 60) -> str:
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": city.url + "/oauth/token",
            "iat": now,
            "exp": now + life,
            "jti": jti or os.urandom(8).hex(),
        }
        return jwt.encode(claims, signer, algorithm="EdDSA")

    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    once = assertion(key)
    good = httpx.post(city.url + "/oauth/token", data={**form, "client_assertion": once})
    assert good.status_code == 200 and good.json()["scope"] == "verify"
    # An assertion is spent once, and must be short-lived: a leaked one is no standing credential.
    replayed = httpx.post(city.url + "/oauth/token", data={**form, "client_assertion": once})
    assert replayed.status_code == 401 and "already used" in replayed.json()["detail"]
    lasting = httpx.post(
        city.url + "/oauth/token", data={**form, "client_assertion": assertion(key, life=3600)}
    )
    assert lasting.status_code == 401 and "at most 300 s" in lasting.json()["detail"]
    forged = httpx.post(
        city.url + "/oauth/token",
        data={**form, "client_assertion": assertion(Ed25519PrivateKey.generate())},
    )
    assert forged.status_code == 401 and forged.json()["type"] == "/problems/invalid-client"
    verified = httpx.post(
        city.url + "/api/v1/verifications",
        json={"token": city.code(city.good), "scenario": LIBRARY},
        headers={"Authorization": f"Bearer {good.json()['access_token']}"},
    )
    assert verified.status_code == 200 and verified.json()["eligible"] is True


def test_every_verification_is_recorded_for_the_citizen_to_see(city: LiveCity) -> None:
    from sqlalchemy import select

    from citycredit.core.audit import AuditEvent
    from citycredit.core.idnumber import parse_id_number
    from credit_codes.models import Verification
    from points_engine.queries import find_citizen

    with sdk(city) as desk:
        desk.verify(city.code(city.good), LIBRARY)
        desk.verify(city.code(city.good), BUS)
        with pytest.raises(CodeRejectedError):
            desk.verify("garbage", LIBRARY)
    with unit_of_work(make_session_factory(city.db.engine)) as session:
        person = find_citizen(session, city.settings.id_hash_key, parse_id_number(city.good))
        assert person is not None
        checks = session.scalars(
            select(Verification).where(Verification.citizen_id == person.id)
        ).all()
        assert sorted((v.eligible, v.common_tier) for v in checks) == [(False, 3), (True, 3)]
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.actor == city.venue.client_id)
        ).all()
        # Rejected codes name no citizen, so they go to the audit log; the rest are verification rows.
        assert actions == ["code.rejected"]


def test_parallel_retries_with_one_key_all_get_the_one_redemption(city: LiveCity) -> None:
    token = city.code(city.excellent)
    desks = [sdk(city) for _ in range(6)]
    for desk in desks:
        desk._access_token()
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(lambda d: d.redeem(token, BUS, idempotency_key="gate-3-tap-9"), desks)
        )
    for desk in desks:
        desk.close()
    assert len({r.id for r in results}) == 1
