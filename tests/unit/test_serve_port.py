"""`citycredit serve --check` (run by `make demo` before it seeds anything): a taken port is one line
that names it and a free one to pick."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from citycredit.cli.main import main
from citycredit.cli.serving import address_problem, served_url


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_a_taken_port_is_one_line_naming_it_and_a_free_one(taken_port: int) -> None:
    result = CliRunner().invoke(main, ["serve", "--check", "--port", str(taken_port)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 1, lines
    assert f"port {taken_port} on 127.0.0.1 is already in use" in lines[0]
    suggested = int(lines[0].split("make demo PORT=")[1].split()[0])
    assert suggested > taken_port and address_problem("127.0.0.1", suggested) is None


def test_a_free_port_passes_the_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert CliRunner().invoke(main, ["serve", "--check", "--port", str(free)]).exit_code == 0
    assert "Cannot assign" in (address_problem("192.0.2.1", free) or "")


def test_the_served_url_is_what_a_browser_on_this_machine_opens() -> None:
    assert served_url("127.0.0.1", 5001) == "http://127.0.0.1:5001"
    assert served_url("0.0.0.0", 5001) == "http://127.0.0.1:5001"
    assert served_url("::1", 5001) == "http://[::1]:5001"
