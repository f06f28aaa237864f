"""Idempotency keys: a retried request with the same key gets the first response, not a second effect."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from citycredit.core.db import Base, JSONDoc, utcnow


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyReused(Exception):
    """The key was used before for a request with a different body."""


IN_PROGRESS = 0


def claim(
    session: Session, client_id: int, key: str, body: bytes
) -> tuple[dict[str, Any], int] | None:
    """Claim ``key`` for this request, or return the answer of the request that claimed it first.

    The claim is a row inserted before any work: a concurrent retry with the same key waits on it
    (the primary key) until the first request commits, then replays its answer instead of racing it.
    """
    digest = hashlib.sha256(body).hexdigest()
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    inserted = session.execute(
        module.insert(IdempotencyRecord)
        .values(
            client_id=client_id,
            key=key,
            request_sha256=digest,
            status=IN_PROGRESS,
            response={},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.key)
    ).first()
    if inserted is not None:
        return None
    found = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    )
    assert found is not None, "a conflicting claim is committed before ON CONFLICT gives up"
    if found.request_sha256 != digest:
        raise KeyReused("this key was first used with a different request body")
    return found.response, found.status


def complete(
    session: Session, client_id: int, key: str, status: int, response: dict[str, Any]
) -> None:
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key)
        .values(status=status, response=response)
    )


def release(session: Session, client_id: int, key: str) -> None:
    """Drop a claim whose request was refused: a refusal changed nothing and may be retried afresh."""
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    )
