"""``citycredit webhooks worker``: deliver the webhook outbox from a process of its own.

Several may run at once (on one host or several): each round leases its deliveries, so no two
workers send the same delivery at the same time (docs/PUSH.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import click

from citycredit.cli.base import Context, pass_ctx
from citycredit.cli.push_manage import SUBCOMMANDS
from citycredit.core.jobs import CityTimeFormatter
from push.delivery import LEASE, Round, deliver_due

log = logging.getLogger(__name__)
# Below this a slow receiver's answer (connect 5 s, answer 10 s) can outlast a lease.
SAFE_LEASE = 30.0
RETRY_AFTER_ERROR = 5.0


@click.group()
def webhooks() -> None:
    """Webhooks to operators' systems (Standard Webhooks)."""


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM: the worker sends nothing new, records what it sent, and
    exits (a receiver answering slowly is waited for, up to the request timeout)."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _add(total: Round, done: Round) -> None:
    for name in ("claimed", "sent", "delivered", "failed", "dead", "disabled"):
        setattr(total, name, getattr(total, name) + getattr(done, name))


@webhooks.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option(
    "--poll",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 60),
    help="Seconds between looks at the outbox when nothing was due.",
)
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 5000))
@click.option(
    "--lease",
    default=LEASE.total_seconds(),
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds a claimed batch is held; a killed worker's batch is sent again after it.",
)
@pass_ctx
def worker(ctx: Context, once: bool, poll: float, limit: int, lease: float) -> None:
    """Deliver due webhooks until Ctrl-C or SIGTERM (or, with --once, until nothing is due)."""
    platform = ctx.platform
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(CityTimeFormatter(platform.settings.tz))
    name = f"{socket.gethostname()}:{os.getpid()}"
    total = Round()
    click.echo(f"webhook worker {name} running; Ctrl-C to stop", err=True)
    if lease < SAFE_LEASE:
        click.echo(
            f"warning: a lease under {SAFE_LEASE:.0f} s is shorter than a slow receiver's answer "
            "may take: another worker could send the same delivery at the same time (tests only)",
            err=True,
        )
    with stop_on_signals() as stop:
        while not stop.is_set():
            try:
                done = deliver_due(
                    platform.sessions,
                    platform.settings,
                    worker=name,
                    limit=limit,
                    lease=dt.timedelta(seconds=lease),
                    stop=stop,
                )
            except Exception:  # the database restarting, a deadlock: log it, wait, go on
                log.exception("webhook round failed; trying again in %.0f s", RETRY_AFTER_ERROR)
                stop.wait(RETRY_AFTER_ERROR)
                continue
            _add(total, done)
            # A round that claimed anything may have freed the next of a queue: look again.
            if not done.claimed:
                if once:
                    break
                stop.wait(poll)
    click.echo(
        f"webhook worker {name} stopped: {total.sent} sent, {total.delivered} delivered, "
        f"{total.failed} to retry, {total.dead} dead",
        err=True,
    )


for _command in SUBCOMMANDS:  # subscriptions and deliveries (citycredit/cli/push_manage.py)
    webhooks.add_command(_command)

COMMANDS = (webhooks,)
