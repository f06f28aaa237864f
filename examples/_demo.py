"""Shared by the examples: the demo city's credentials and a way to get a citizen's code as a phone would.

`make demo` writes the demo clients' credentials to instance/demo/clients.json and prints the city's
address as ``export CITYCREDIT_BASE_URL=…`` (http://127.0.0.1:5000 unless PORT was given). A real venue
gets its client id and secret from the city's admin and reads the code with its scanner instead.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from citycredit_partner import APIConnectionError, PartnerClient
from citycredit_partner.cli import decode_image

BASE_URL = (os.environ.get("CITYCREDIT_BASE_URL") or "http://127.0.0.1:5000").rstrip("/")
# The demo's files: CITYCREDIT_INSTANCE_DIR, else the instance/ of the project these examples are in.
INSTANCE = Path(
    os.environ.get("CITYCREDIT_INSTANCE_DIR") or Path(__file__).resolve().parents[1] / "instance"
)
CREDENTIALS = INSTANCE / "demo" / "clients.json"


def run(main: Callable[[], None]) -> None:
    """Run an example; a city that does not answer is one line, not a traceback."""
    try:
        main()
    except (httpx.TransportError, APIConnectionError):
        raise SystemExit(
            f"cannot reach the city at {BASE_URL} — is `make demo` running? "
            "Set CITYCREDIT_BASE_URL to the address it printed."
        ) from None


def credentials(role: str) -> tuple[str, str]:
    if os.environ.get("CITYCREDIT_CLIENT_ID") and role == "venue":
        return os.environ["CITYCREDIT_CLIENT_ID"], os.environ["CITYCREDIT_CLIENT_SECRET"]
    if not CREDENTIALS.exists():
        raise SystemExit(
            f"{CREDENTIALS} not found: run `make demo` first (or set CITYCREDIT_CLIENT_ID/SECRET)"
        )
    found = json.loads(CREDENTIALS.read_text())[role]
    return found["client_id"], found["client_secret"]


def venue_client() -> PartnerClient:
    client_id, secret = credentials("venue")
    return PartnerClient(client_id, secret, BASE_URL)


def phone_shows_code(id_number: str) -> str:
    """What the citizen's phone does: ask the city's app backend for a fresh code (valid 120 s)."""
    client_id, secret = credentials("app")
    token = httpx.post(
        BASE_URL + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    ).json()["access_token"]
    response = httpx.post(
        BASE_URL + "/api/v1/credit-codes",
        json={"id_number": id_number},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 201:
        raise SystemExit(
            f"no code for this citizen: {response.json().get('detail') or response.json()['title']}"
        )
    code: str = response.json()["token"]
    return code


def scanned_code(description: str) -> str:
    """The code the desk scanned: from a photo (--image), as text (--code), or fetched for --id."""
    parser = argparse.ArgumentParser(description=description)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--id", help="a demo citizen's ID number (`make demo` prints some)")
    group.add_argument("--image", type=Path, help="a photo or screenshot of the citizen's QR code")
    group.add_argument("--code", help="the scanned text")
    args = parser.parse_args()
    if args.image:
        return decode_image(args.image)
    return str(args.code) if args.code else phone_shows_code(args.id)
