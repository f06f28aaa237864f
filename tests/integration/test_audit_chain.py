"""The tamper-evident audit log (issue 13 §4): triggers refuse changes; a change that goes around them
(a superuser: trigger disabled or dropped) is found by the chain, which names the first broken event.
Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from joserfc import jws
from joserfc.jwk import OKPKey
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from citycredit.core import audit_chain
from citycredit.core.audit import AuditEvent, audit
from citycredit.core.audit_chain import AuditSeal
from citycredit.core.db import utcnow
from citycredit.core.keys import jwks
from tests.databases import ScratchDatabase
from tests.integration.audit_support import as_superuser

SECRET = b"audit-chain-test-secret"
GRACE = dt.timedelta(minutes=5)
INSERT_ONLY = ("audit_event", "audit_seal", "audit_checkpoint")


def later() -> dt.datetime:
    """A sealing run's clock, once the grace period of events written now is over."""
    return utcnow() + GRACE + dt.timedelta(seconds=1)


def events(
    session: Session,
    n: int,
    *,
    start: int | None = None,
    step: int = 1,
    at: dt.datetime | None = None,
) -> list[int]:
    """``n`` events; with ``start``, their ids are ``start``, ``start + step``, … (gaps: the ids of
    rolled-back transactions), else the database numbers them."""
    made = []
    for i in range(n):
        event = audit(
            session,
            actor=f"admin:clerk{i}",
            action="admin.citizen_view",
            citizen_id=100 + i,
            why="测试",
            n=i,
        )
        if start is not None:
            event.id = start + i * step
        if at is not None:
            event.at = at
        made.append(event)
    session.flush()
    if start is not None and session.get_bind().dialect.name == "postgresql":
        session.execute(  # the sequence goes on after the ids given, as it would have
            sa.text("SELECT setval(pg_get_serial_sequence('audit_event', 'id'), :top)"),
            {"top": made[-1].id},
        )
    return [e.id for e in made]


def next_id(session: Session) -> int:
    return (session.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0) + 1


def sealed(session: Session, n: int = 5, **kw: int) -> list[int]:
    ids = events(session, n, **kw)
    run = audit_chain.seal(session, SECRET, grace=GRACE, now=later())
    assert run.sealed >= n and run.up_to == ids[-1]
    return ids


def test_the_insert_only_triggers_refuse_update_and_delete(session: Session) -> None:
    ids = sealed(session, 2)
    for statement in (
        "UPDATE audit_event SET actor = 'someone else' WHERE id = :id",
        "DELETE FROM audit_event WHERE id = :id",
        "UPDATE audit_seal SET hash = 'x' WHERE event_id = :id",
        "DELETE FROM audit_seal WHERE event_id = :id",
        "UPDATE audit_checkpoint SET head_hash = 'x' WHERE up_to_event_id >= :id",
        "DELETE FROM audit_checkpoint WHERE up_to_event_id >= :id",
    ):
        with pytest.raises(DBAPIError, match="insert-only"), session.begin_nested():
            session.execute(sa.text(statement), {"id": ids[0]})
    if session.get_bind().dialect.name == "postgresql":
        for table in INSERT_ONLY:
            with pytest.raises(DBAPIError, match="insert-only"), session.begin_nested():
                session.execute(sa.text(f"TRUNCATE {table}"))
    assert audit_chain.verify_chain(session).ok


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")
def test_an_intact_chain_verifies_with_its_signed_checkpoints(session: Session) -> None:
    ids = sealed(session, 3)
    more = sealed(session, 2)
    found = audit_chain.verify_chain(session)
    assert found.ok and found.broken is None
    assert found.up_to == more[-1] and found.sealed >= 5 and found.unsealed == 0
    assert found.checkpoints >= 2 and found.last_checkpoint is not None
    assert found.last_checkpoint.up_to_event_id == more[-1]
    assert found.line().startswith(f"OK: audit chain intact up to event {more[-1]}")
    # The checkpoint is a JWS an independent library checks with the city's published key.
    jwk = next(k for k in jwks(session)["keys"] if k["kid"] == found.last_checkpoint.kid)
    token = jws.deserialize_compact(
        found.last_checkpoint.signature, OKPKey.import_key(jwk), algorithms=["EdDSA"]
    )
    assert json.loads(token.payload)["head"] == session.get(AuditSeal, more[-1]).hash
    assert ids[0] < more[0]


def test_events_in_their_grace_period_wait_and_a_gap_is_fine(session: Session) -> None:
    base = next_id(session)
    past = utcnow() - dt.timedelta(minutes=10)
    ids = events(session, 3, start=base, step=7, at=past)  # gaps: rolled-back transactions' ids
    young = events(session, 1)
    old = events(session, 1, at=past)  # older by another host's clock: waits behind the young one
    run = audit_chain.seal(session, SECRET, grace=GRACE)
    assert (run.sealed, run.up_to) == (3, ids[-1])
    found = audit_chain.verify_chain(session)
    assert found.ok and found.up_to == ids[-1] and found.unsealed == 2
    assert audit_chain.seal(session, SECRET, grace=GRACE, now=later()).up_to == old[0] > young[0]
    assert audit_chain.verify_chain(session).ok


def test_a_changed_event_is_named(session: Session) -> None:
    ids = sealed(session)
    with as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET citizen_id = 999 WHERE id = :id"), {"id": ids[2]}
        )
    found = audit_chain.verify_chain(session)
    assert not found.ok and found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("changed", ids[2])
    before = sa.select(sa.func.count()).select_from(AuditSeal).where(AuditSeal.event_id < ids[2])
    assert found.sealed == session.scalar(before)  # every event before it checked and intact
    assert f"BROKEN at event {ids[2]} (changed)" in found.line()


def test_a_changed_detail_is_named(session: Session) -> None:
    ids = sealed(session)
    with as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET detail = :d WHERE id = :id"),
            {"d": json.dumps({"why": "测试", "n": 4}), "id": ids[1]},
        )
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("changed", ids[1])


def test_a_deleted_event_is_named(session: Session) -> None:
    ids = sealed(session)
    with as_superuser(session):
        session.execute(sa.text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[3]})
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("deleted", ids[3])
    assert "deleted" in found.broken.message


def test_a_deleted_event_and_its_seal_are_found_by_the_next_link(session: Session) -> None:
    ids = sealed(session)
    with as_superuser(session):
        session.execute(sa.text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
        session.execute(sa.text("DELETE FROM audit_seal WHERE event_id = :id"), {"id": ids[1]})
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("deleted", ids[2])


def test_deleting_the_last_events_with_their_seals_is_found_by_the_checkpoint(
    session: Session,
) -> None:
    ids = sealed(session)
    with as_superuser(session):
        for table, column in (("audit_event", "id"), ("audit_seal", "event_id")):
            session.execute(sa.text(f"DELETE FROM {table} WHERE {column} >= :id"), {"id": ids[3]})
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("deleted", ids[-1])


def test_an_inserted_event_is_named(session: Session) -> None:
    base = next_id(session)
    ids = sealed(session, 3, start=base, step=10)
    with as_superuser(session):
        session.execute(
            sa.insert(AuditEvent).values(
                id=ids[1] + 3,
                at=utcnow() - dt.timedelta(hours=1),
                actor="admin:nobody",
                action="admin.alibi",
                detail={},
            )
        )
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("inserted", ids[1] + 3)


def test_rewritten_seals_do_not_match_the_signed_checkpoint(session: Session) -> None:
    """The superuser changes an event and recomputes every seal after it: the chain itself is
    consistent again, but its head no longer matches what the city's key signed."""
    ids = sealed(session)
    with as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET actor = 'admin:scapegoat' WHERE id = :id"),
            {"id": ids[1]},
        )
        session.execute(sa.text("DELETE FROM audit_seal WHERE event_id >= :id"), {"id": ids[1]})
        prev = session.get(AuditSeal, ids[0]).hash  # type: ignore[union-attr]
        rows = session.execute(
            sa.select(AuditEvent.__table__).where(AuditEvent.id >= ids[1]).order_by(AuditEvent.id)
        )
        for row in rows.all():
            digest = audit_chain.link_hash(prev, row)
            session.execute(
                sa.insert(AuditSeal).values(
                    event_id=row.id, prev_hash=prev, hash=digest, sealed_at=utcnow()
                )
            )
            prev = digest
    found = audit_chain.verify_chain(session)
    assert found.broken is not None
    assert (found.broken.kind, found.broken.event_id) == ("seal", ids[-1])
    assert "checkpoint" in found.broken.message


def test_a_forged_checkpoint_is_refused(session: Session) -> None:
    sealed(session, 2)
    with as_superuser(session):
        session.execute(sa.text("UPDATE audit_checkpoint SET count = count + 1"))
    found = audit_chain.verify_chain(session)
    assert found.broken is not None and found.broken.kind == "checkpoint"
    assert "signature does not verify" in found.broken.message


def test_a_window_checks_from_a_signed_checkpoint_and_the_command_checks_everything(
    session: Session,
) -> None:
    first, second, third = sealed(session, 2), sealed(session, 2), sealed(session, 2)
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditSeal))
    found = audit_chain.verify_chain(session, window=2)  # the last two: after the second run's
    assert found.ok and found.after == second[-1] and found.up_to == third[-1]
    assert found.sealed == total
    assert f"checked from the signed checkpoint at event {second[-1]} on" in found.line()
    assert audit_chain.verify_chain(session).after is None
    with as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET action = 'x' WHERE id = :id"), {"id": first[0]}
        )
    assert audit_chain.verify_chain(session, window=2).ok  # before the window: not read
    whole = audit_chain.verify_chain(session)
    assert whole.broken is not None and whole.broken.event_id == first[0]
    with as_superuser(session):
        session.execute(
            sa.text("UPDATE audit_event SET action = 'x' WHERE id = :id"), {"id": third[0]}
        )
    windowed = audit_chain.verify_chain(session, window=2)
    assert windowed.broken is not None
    assert (windowed.broken.kind, windowed.broken.event_id) == ("changed", third[0])
    with as_superuser(session):  # the checkpoint the window starts from must verify too
        session.execute(
            sa.text("UPDATE audit_checkpoint SET head_hash = :h WHERE up_to_event_id = :id"),
            {"h": "0" * 64, "id": second[-1]},
        )
    forged = audit_chain.verify_chain(session, window=2)
    assert forged.broken is not None
    assert (forged.broken.kind, forged.broken.event_id) == ("checkpoint", second[-1])


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated via RFC 9864")
def test_an_export_is_signed_and_audited(session: Session) -> None:
    ids = sealed(session, 3)
    young = events(session, 1)
    made = audit_chain.export(
        session,
        SECRET,
        first=utcnow() - dt.timedelta(hours=1),
        last=utcnow() + dt.timedelta(hours=1),
        actor="cli:auditor",
    )
    lines = [json.loads(line) for line in made.lines.decode().splitlines()]
    assert [r["id"] for r in lines][-4:] == [*ids, *young]
    assert lines[-1]["seal"] is None and lines[-2]["seal"] == session.get(AuditSeal, ids[-1]).hash  # type: ignore[union-attr]
    assert lines[-2]["detail"] == {"n": 2, "why": "测试"}
    # An independent library checks it: joserfc with the city's published JWKS.
    header = json.loads(base64.urlsafe_b64decode(made.signature.split(".")[0] + "=="))
    jwk = next(k for k in jwks(session)["keys"] if k["kid"] == header["kid"])
    checked = jws.deserialize_compact(made.signature, OKPKey.import_key(jwk), algorithms=["EdDSA"])
    payload = json.loads(checked.payload)
    assert payload["sha256"] == hashlib.sha256(made.lines).hexdigest()
    assert payload["count"] == made.count == len(lines)
    assert audit_chain.check_export(session, made.lines, made.signature) == payload
    assert (
        audit_chain.check_export(session, made.lines.replace(b"clerk1", b"clerk9"), made.signature)
        is None
    )
    recorded = session.scalar(sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert recorded is not None and (recorded.actor, recorded.action) == (
        "cli:auditor",
        "audit.export",
    )
    assert recorded.detail["count"] == made.count


def test_the_sealing_job_is_scheduled() -> None:
    from citycredit.core.jobs import registered_jobs

    job = {j.id: j for j in registered_jobs()}["core.audit_seal"]
    assert (job.trigger, job.options) == ("interval", {"minutes": 1})


def _cli(db: ScratchDatabase, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CITYCREDIT_DATABASE_URL": db.url,
        "CITYCREDIT_ID_HASH_KEY": "ab" * 32,
        "CITYCREDIT_INSTANCE_DIR": str(tmp / "instance"),
    }
    return subprocess.run(
        [sys.executable, "-m", "citycredit.cli", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_commands_seal_verify_name_the_broken_link_and_export(
    fresh_database: ScratchDatabase, tmp_path: Path
) -> None:
    with Session(fresh_database.engine) as session, session.begin():
        events(session, 4)
    sealed_run = _cli(fresh_database, tmp_path, "seal", "--grace", "0")
    assert sealed_run.returncode == 0, sealed_run.stderr
    assert "sealed 4 events, up to event 4" in sealed_run.stdout
    ok = _cli(fresh_database, tmp_path, "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: audit chain intact up to event 4; 4 events sealed")
    today = dt.date.today()
    out = tmp_path / "audit.jsonl"
    exported = _cli(
        fresh_database,
        tmp_path,
        "export",
        "--from",
        str(today - dt.timedelta(days=1)),
        "--to",
        str(today + dt.timedelta(days=1)),
        "--out",
        str(out),
    )
    assert exported.returncode == 0, exported.stderr
    with Session(fresh_database.engine) as session:
        assert audit_chain.check_export(
            session, out.read_bytes(), (tmp_path / "audit.jsonl.jws").read_text().strip()
        )
        actions = session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["audit.chain_verify", "audit.export"]  # reading the log is audited
    with Session(fresh_database.engine) as session, session.begin(), as_superuser(session):
        session.execute(sa.text("UPDATE audit_event SET actor = 'admin:x' WHERE id = 3"))
    broken = _cli(fresh_database, tmp_path, "verify")
    assert broken.returncode == 1
    assert "BROKEN at event 3 (changed)" in broken.stderr
