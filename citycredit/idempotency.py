"""Idempotency keys: a retried request with the same key gets the first response, not a second effect."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from citycredit.db import Base, JSONDoc, utcnow


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


def replay_or_none(
    session: Session, client_id: int, key: str, body: bytes
) -> tuple[dict[str, Any], int] | None:
    found = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id, IdempotencyRecord.key == key
        )
    )
    if found is None:
        return None
    if found.request_sha256 != hashlib.sha256(body).hexdigest():
        raise KeyReused("this key was first used with a different request body")
    return found.response, found.status


def store_response(
    session: Session, client_id: int, key: str, body: bytes, status: int, response: dict[str, Any]
) -> None:
    session.add(
        IdempotencyRecord(
            client_id=client_id,
            key=key,
            request_sha256=hashlib.sha256(body).hexdigest(),
            status=status,
            response=response,
        )
    )
    session.flush()
