"""Webhook subscriptions and deliveries from the command line (attached to ``citycredit webhooks``).

The same use cases as the partner API and the admin: ``push.subscriptions`` for a subscription's
secret and status, ``push.delivery.resend`` for a delivery's state; each audits what it changes.
"""

from __future__ import annotations

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.cli.base import ACTOR, Context, pass_ctx
from citycredit.core.clients import find_client
from push import delivery as deliveries
from push import queries
from push import subscriptions as subs
from push.models import DELIVERY_STATES, EVENT_TYPES, Subscription


def _subscription(session: Session, public_id: str) -> Subscription:
    found = queries.subscription(session, public_id)
    if found is None:
        raise click.ClickException(f"no subscription {public_id!r} (or it is deleted)")
    return found


@click.command("subscribe")
@click.argument("client_id")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(EVENT_TYPES),
    help="An event type to receive (repeat for several).",
)
@pass_ctx
def subscribe(ctx: Context, client_id: str, url: str, events: tuple[str, ...]) -> None:
    """Subscribe CLIENT_ID's URL to events; prints the signing secret, this once only."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        client = find_client(session, client_id)
        if client is None:
            raise click.ClickException(f"no API client {client_id!r}")
        try:
            sub, secret = subs.create_subscription(
                session,
                client,
                url=url,
                event_types=events,
                key_secret=settings.key_secret,
                actor=ACTOR,
                allow_http=subs.allows_http(url, settings),
            )
        except subs.SubscriptionError as exc:
            raise click.ClickException(str(exc)) from exc
        public_id = sub.public_id
    click.echo(f"subscription {public_id}: {url} <- {', '.join(sorted(set(events)))}")
    click.echo(f"signing secret (shown this once, never again): {secret}")


@click.command("list")
@click.option("--client", "client_id", help="Only this API client's subscriptions.")
@pass_ctx
def list_subscriptions(ctx: Context, client_id: str | None) -> None:
    """Subscriptions, newest first: id, client, status, pending and dead deliveries, URL, events."""
    with ctx.session() as session:
        only = None
        if client_id is not None:
            client = find_client(session, client_id)
            if client is None:
                raise click.ClickException(f"no API client {client_id!r}")
            only = client.id
        rows = queries.subscriptions(session, client_id=only)
        for row in rows:
            s = row.subscription
            failing = f" failing since {s.failing_since:%Y-%m-%d %H:%M}Z" if s.failing_since else ""
            reason = f" ({s.disabled_reason})" if s.status == "disabled" else ""
            click.echo(
                f"{s.public_id}  {row.client.client_id}  {s.status}{reason}{failing}  "
                f"pending {row.pending} dead {row.dead}  {s.url}  {','.join(s.event_types)}"
            )
    if not rows:
        click.echo("no subscriptions")


@click.command("rotate")
@click.argument("subscription_id")
@pass_ctx
def rotate(ctx: Context, subscription_id: str) -> None:
    """A new signing secret (printed once); the previous one keeps signing for 24 hours."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        sub = _subscription(session, subscription_id)
        secret = subs.rotate_secret(session, sub, key_secret=settings.key_secret, actor=ACTOR)
        until = sub.previous_until
    click.echo(f"new signing secret (shown this once, never again): {secret}")
    click.echo(f"the previous secret also signs until {until:%Y-%m-%d %H:%M}Z")


def _set_status(ctx: Context, subscription_id: str, status: str, reason: str = "") -> None:
    with ctx.session() as session:
        sub = _subscription(session, subscription_id)
        try:
            subs.set_status(session, sub, status, actor=ACTOR, reason=reason)
        except subs.SubscriptionError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{subscription_id}: {status}")


@click.command("disable")
@click.argument("subscription_id")
@click.option("--reason", default="", help="Shown to the operator beside the subscription.")
@pass_ctx
def disable(ctx: Context, subscription_id: str, reason: str) -> None:
    """Stop sending to a subscription (events meanwhile are not queued for it)."""
    _set_status(ctx, subscription_id, "disabled", reason)


@click.command("enable")
@click.argument("subscription_id")
@pass_ctx
def enable(ctx: Context, subscription_id: str) -> None:
    """Send to a subscription again; its failure streak starts over."""
    _set_status(ctx, subscription_id, "active")


@click.command("delete")
@click.argument("subscription_id")
@pass_ctx
def delete(ctx: Context, subscription_id: str) -> None:
    """Delete a subscription; its deliveries stay as history."""
    _set_status(ctx, subscription_id, "deleted")


@click.command("resend")
@click.argument("delivery_ids", nargs=-1, required=True, type=click.IntRange(min=1))
@pass_ctx
def resend(ctx: Context, delivery_ids: tuple[int, ...]) -> None:
    """Queue deliveries again at once, with the same webhook-id (not cancelled ones)."""
    with ctx.session() as session:
        found = queries.owned_deliveries(session, delivery_ids, operator_id=None)
        queued = deliveries.resend(session, found, actor=ACTOR)
    missing = sorted(set(delivery_ids) - set(found))
    click.echo(f"queued {queued} of {len(delivery_ids)}")
    if missing:
        click.echo("unknown: " + " ".join(str(i) for i in missing))


@click.command("deliveries")
@click.option("--status", type=click.Choice(DELIVERY_STATES))
@click.option("--subscription", "subscription_id", help="Only this subscription's.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@pass_ctx
def list_deliveries(
    ctx: Context, status: str | None, subscription_id: str | None, limit: int
) -> None:
    """Deliveries, newest first: id, status, attempts, last answer, event, subscription."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        sub_id = None
        if subscription_id is not None:
            sub_id = session.scalar(
                select(Subscription.id).where(Subscription.public_id == subscription_id)
            )
            if sub_id is None:
                raise click.ClickException(f"no subscription {subscription_id!r}")
        page = queries.deliveries(
            session,
            queries.DeliveryFilters(status=status or "", subscription_id=sub_id),
            tz=settings.tz,
            size=limit,
        )
        for row in page.rows:
            d = row.delivery
            answer = str(d.last_status_code or "-") + (f" {d.last_error}" if d.last_error else "")
            click.echo(
                f"{d.id}  {d.status}  attempts {d.attempts}  last {answer}  "
                f"{row.event.type} {row.event.public_id}  {row.subscription.public_id}"
            )
    if not page.rows:
        click.echo("no deliveries")


SUBCOMMANDS: tuple[click.Command, ...] = (
    subscribe,
    list_subscriptions,
    rotate,
    disable,
    enable,
    delete,
    resend,
    list_deliveries,
)
