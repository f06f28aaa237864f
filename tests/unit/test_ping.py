"""The pool's cheap liveness check works for any socket a busy worker holds."""

from __future__ import annotations

import os
import resource
import socket

import pytest
from sqlalchemy.exc import DisconnectionError

from citycredit.core.db import _ping_if_hung_up


class _Connection:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.autocommit = False
        self.pinged = 0

    def fileno(self) -> int:
        return self.fd

    def execute(self, _sql: str) -> None:
        self.pinged += 1
        raise OSError("server closed the connection")


def test_an_idle_connection_on_a_descriptor_above_1023_is_used_without_a_ping() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2100:
        pytest.skip(f"this process may open only {soft} files")
    ours, theirs = socket.socketpair()
    high = os.dup2(ours.fileno(), 2048)
    try:
        connection = _Connection(high)
        _ping_if_hung_up(connection, None, None)  # nothing waiting: no ping, no error
        assert connection.pinged == 0
        theirs.close()  # the server hangs up: end of file is waiting
        with pytest.raises(DisconnectionError):
            _ping_if_hung_up(connection, None, None)
        assert connection.pinged == 1
    finally:
        os.close(high)
        ours.close()
        theirs.close()
