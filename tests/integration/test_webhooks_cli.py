"""``citycredit webhooks …`` (push_manage.SUBCOMMANDS) on a real database: subscribe prints the
secret once, list shows no secret, rotate, disable with a reason, enable, deliveries, resend."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner
from sqlalchemy import select, update

from citycredit.cli.base import Context
from citycredit.cli.push_manage import SUBCOMMANDS
from citycredit.core.clients import register_client
from citycredit.core.db import make_session_factory, unit_of_work
from push import outbox
from push.models import Delivery
from scenarios.models import Operator
from tests.databases import ScratchDatabase

GROUP = click.Group("webhooks", commands=list(SUBCOMMANDS))
_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def run(db: ScratchDatabase, tmp: Path, *args: str) -> Any:
    ctx = Context()
    env = {
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_ID_HASH_KEY": "ab" * 32,
        "CITYCREDIT_KEY_SECRET": "cd" * 32,
        "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
    }
    try:
        return CliRunner().invoke(GROUP, list(args), env=env, obj=ctx)
    finally:
        if ctx._platform is not None:
            ctx._platform.engine.dispose()


def test_the_commands_manage_subscriptions_and_deliveries(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    db = fresh_database
    with unit_of_work(make_session_factory(db.engine)) as session:
        operator = Operator(code="library", name_zh="图书馆", name_en="Library")
        session.add(operator)
        session.flush()
        client_id = register_client(
            session,
            name="library system",
            kind="operator",
            scopes=["webhooks:manage"],
            operator_id=operator.id,
            key_secret=bytes.fromhex("cd" * 32),
        ).client.client_id

    refused = run(
        db, tmp_path, "subscribe", client_id, "http://lib.example/h", "--event", "tier.changed"
    )
    assert refused.exit_code == 1 and "https" in refused.output
    made = run(
        db, tmp_path, "subscribe", client_id, "https://lib.example/h",
        "--event", "tier.changed", "--event", "scenario.published",
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    secret = _SECRET.findall(made.output)
    assert len(secret) == 1
    sub_id = re.search(r"subscription (sub_\S+):", made.output).group(1)  # type: ignore[union-attr]

    listed = run(db, tmp_path, "list")
    assert sub_id in listed.output and "active" in listed.output
    assert not _SECRET.search(listed.output)

    rotated = run(db, tmp_path, "rotate", sub_id)
    assert rotated.exit_code == 0 and _SECRET.findall(rotated.output) != secret
    assert "previous secret also signs until" in rotated.output

    off = run(db, tmp_path, "disable", sub_id, "--reason", "receiver moving")
    assert off.exit_code == 0
    assert "disabled (receiver moving)" in run(db, tmp_path, "list").output
    assert run(db, tmp_path, "enable", sub_id).exit_code == 0

    with unit_of_work(make_session_factory(db.engine)) as session:
        outbox.emit(session, [outbox.Outgoing("scenario.published", "s", {"scenario": "s"})])
        delivery_id = session.scalar(select(Delivery.id))
        session.execute(update(Delivery).values(status="dead", attempts=9, last_status_code=500))
    dead = run(db, tmp_path, "deliveries", "--status", "dead")
    assert f"{delivery_id}  dead  attempts 9  last 500" in dead.output
    assert "no deliveries" in run(db, tmp_path, "deliveries", "--status", "pending").output
    resent = run(db, tmp_path, "resend", str(delivery_id), "999999")
    assert "queued 1 of 2" in resent.output and "unknown: 999999" in resent.output
    assert f"{delivery_id}  pending" in run(db, tmp_path, "deliveries").output

    assert run(db, tmp_path, "delete", sub_id).exit_code == 0
    assert "no subscriptions" in run(db, tmp_path, "list").output
    assert run(db, tmp_path, "rotate", sub_id).exit_code == 1
