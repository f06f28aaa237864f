"""A library's lending system hearing from the city (信易阅): the levels of the members who linked it.

CITYCREDIT_WEBHOOK_SECRET=whsec_… python examples/library_webhooks.py --port 8025 --db members.sqlite3

Subscribe https://<your host>/citycredit/webhooks to ``tier.changed`` and ``link.revoked`` in the
city's admin; the secret is shown once. While the city rotates it, give both, space separated:
CITYCREDIT_WEBHOOK_SECRET="whsec_new… whsec_old…". The desk then asks ``current_level(db, pseudonym)``
(the pseudonym is what the member's link gave you) instead of scanning a code.

Answers: 204 once the event is stored, 200 for a copy already processed, 400 for a request that is
not the city's (bad signature, outside the five-minute window, …), 500 when storing failed: the city
retries, and the copy goes through because its id was not marked (``WebhookReceiver.process``).
Flask's own server is for trying it out; behind a real one (gunicorn, waitress) nothing changes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from flask import Flask, Response, jsonify, request

from citycredit_partner import (
    LinkRevoked,
    SQLiteSeenStore,
    TierChanged,
    WebhookEvent,
    WebhookReceiver,
    WebhookRejectedError,
)

log = logging.getLogger("library_webhooks")

SCHEMA = """
CREATE TABLE IF NOT EXISTS member_level (
    pseudonym TEXT PRIMARY KEY,
    common_level INTEGER NOT NULL CHECK (common_level BETWEEN 1 AND 5),
    valid_until REAL NOT NULL,  -- unix seconds: the level is unknown after it (ask the city again)
    as_of REAL NOT NULL         -- the event's timestamp: an older event never overwrites a newer one
);
CREATE TABLE IF NOT EXISTS revoked_link (
    pseudonym TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL    -- a late copy of an older tier.changed must not bring the level back
);
"""


def connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, timeout=10, isolation_level=None)


def store_event(db: Path, event: WebhookEvent) -> None:
    """Apply one event in one transaction; idempotent, and an older event loses to a newer one."""
    as_of = event.timestamp.timestamp()
    connection = connect(db)
    try:
        connection.execute("BEGIN IMMEDIATE")
        match event.payload:
            case TierChanged(pseudonym=pseudonym, common_level=level, valid_until=until):
                revoked = connection.execute(
                    "SELECT revoked_at FROM revoked_link WHERE pseudonym = ?", (pseudonym,)
                ).fetchone()
                if revoked is None or revoked[0] < as_of:  # newer than a revocation: linked again
                    connection.execute("DELETE FROM revoked_link WHERE pseudonym = ?", (pseudonym,))
                    connection.execute(
                        "INSERT INTO member_level VALUES (?, ?, ?, ?) ON CONFLICT (pseudonym)"
                        " DO UPDATE SET common_level = excluded.common_level,"
                        " valid_until = excluded.valid_until, as_of = excluded.as_of"
                        " WHERE excluded.as_of >= member_level.as_of",
                        (pseudonym, level, until.timestamp(), as_of),
                    )
            case LinkRevoked(pseudonym=pseudonym, revoked_at=revoked_at):
                at = max(as_of, revoked_at.timestamp() if revoked_at else as_of)
                connection.execute(
                    "INSERT INTO revoked_link VALUES (?, ?) ON CONFLICT (pseudonym)"
                    " DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)",
                    (pseudonym, at),
                )
                connection.execute(
                    "DELETE FROM member_level WHERE pseudonym = ? AND as_of <= ?", (pseudonym, at)
                )
            case _:
                pass  # scenario.* and keys.rotated: nothing to store for a lending desk
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def current_level(db: Path, pseudonym: str, now: dt.datetime | None = None) -> int | None:
    """What the desk asks: the member's common level, or None (not linked, revoked, or expired;
    refresh an expiring one with GET /api/v1/links/{pseudonym} before valid_until)."""
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    with closing(connect(db)) as connection:
        row = connection.execute(
            "SELECT common_level FROM member_level WHERE pseudonym = ? AND valid_until > ?",
            (pseudonym, moment),
        ).fetchone()
    return None if row is None else int(row[0])


def create_app(secrets: list[str], db: Path) -> Flask:
    with closing(connect(db)) as connection:
        connection.executescript(SCHEMA)
    # The ids processed live in the same file, so a restarted receiver still drops the copies the
    # city re-sends (its worker may have died after our 204, before it wrote the delivery down).
    receiver = WebhookReceiver(secrets, seen=SQLiteSeenStore(db))
    app = Flask(__name__)

    @app.post("/citycredit/webhooks")
    def citycredit_webhook() -> tuple[Response | str, int]:
        try:
            # The body exactly as sent: parsing and re-serialising it would break the signature.
            event = receiver.process(
                request.get_data(), request.headers, lambda event: store_event(db, event)
            )
        except WebhookRejectedError as refused:
            log.warning("refused a webhook: %s", refused)
            return jsonify(reason=refused.reason, detail=refused.detail), 400
        if event is None:
            return jsonify(duplicate=request.headers.get("webhook-id")), 200
        log.info("stored %s %s", event.type, event.id)  # no pseudonym in the logs
        return "", 204

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--db", type=Path, default=Path("library-members.sqlite3"))
    args = parser.parse_args()
    secrets = os.environ.get("CITYCREDIT_WEBHOOK_SECRET", "").split()
    if not secrets:
        raise SystemExit("set CITYCREDIT_WEBHOOK_SECRET to the subscription's whsec_… secret")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    create_app(secrets, args.db).run(host=args.host, port=args.port)


if __name__ == "__main__":
    main()
