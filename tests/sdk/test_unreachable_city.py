"""A city that does not answer (`make demo` not running, or on another port) is one line naming the
address and the variable to set: from citycredit-verify and from each example, never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from citycredit_partner.cli import main as verify_command

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def nobody_there() -> str:
    """A loopback address where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_citycredit_verify_says_in_one_line_that_the_city_is_unreachable(
    nobody_there: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYCREDIT_BASE_URL", nobody_there)
    assert verify_command(["--offline", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"]) == 3
    said = capsys.readouterr().err.splitlines()
    assert said == [
        f"error: cannot reach the city at {nobody_there} — is it running? "
        "Set CITYCREDIT_BASE_URL (or --base-url) to its address."
    ]


@pytest.mark.parametrize(
    "script, scanned",
    [
        ("library_desk.py", ["--id", "420202200606228236"]),
        ("bus_gate.py", ["--code", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"]),
        ("power_bank_kiosk.py", ["--code", "eyJhbGciOiJFZERTQSJ9.e30.c2ln"]),
    ],
)
def test_each_example_says_in_one_line_that_the_city_is_unreachable(
    script: str, scanned: list[str], nobody_there: str, tmp_path: Path
) -> None:
    (tmp_path / "demo").mkdir()
    credentials = {"client_id": "cc_demo", "client_secret": "not-checked"}
    (tmp_path / "demo" / "clients.json").write_text(
        json.dumps({"venue": credentials, "app": credentials})
    )
    env = {
        **os.environ,
        "CITYCREDIT_BASE_URL": nobody_there,
        "CITYCREDIT_INSTANCE_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *scanned],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"cannot reach the city at {nobody_there} — is `make demo` running? "
        "Set CITYCREDIT_BASE_URL to the address it printed."
    ]
