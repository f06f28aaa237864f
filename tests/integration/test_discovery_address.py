"""The discovery document names the address the city is actually served at (issue 12): the configured
public URL, else the one the request reached, never a port-5000 default nobody serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from citycredit.web.app import create_app
from tests.databases import ScratchDatabase

DISCOVERY = "/.well-known/citycredit-configuration"


@pytest.mark.parametrize(
    "public_url, expected",
    [
        (None, "http://127.0.0.1:5007"),
        ("https://credit.example.gov.cn", "https://credit.example.gov.cn"),
    ],
)
def test_discovery_names_the_served_or_configured_address(
    fresh_database: ScratchDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    public_url: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("CITYCREDIT_PUBLIC_URL", raising=False)
    config = {
        "database_url": fresh_database.url,
        "id_hash_key": b"k" * 32,
        "instance_dir": tmp_path,
    }
    app = create_app({**config, **({"public_url": public_url} if public_url else {})})
    try:
        found = app.test_client().get(DISCOVERY, base_url="http://127.0.0.1:5007").get_json()
        assert found["token_endpoint"] == expected + "/oauth/token"
        assert found["jwks_uri"] == expected + "/.well-known/jwks.json"
        assert found["api_base"] == expected + "/api/v1"
        assert found["trust_list_uri"] == expected + "/api/v1/federation/trust-list"
    finally:
        app.extensions["citycredit"].engine.dispose()
