"""``citycredit federation …``: this city's keys, the coordinator's membership (four eyes), syncing,
bulletins, cross-city consent, and the federation's standing (docs/FEDERATION.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from citycredit.cli.base import ACTOR, Context, pass_ctx
from citycredit.cli.engine import _citizen
from citycredit.cli.federation_demo import federation_demo, federation_demo_env
from citycredit.core.actors import Actor
from citycredit.core.db import utcnow
from credit_codes import consent
from federation import bulletins, coordinator, operations, queries
from federation import keys as fed_keys
from federation.models import CHANGE_ACTIONS


@click.group()
def federation() -> None:
    """Partner cities (十城互认): keys, trust list, members, bulletins."""


@federation.command("init")
@click.option(
    "--coordinator", is_flag=True, help="Also make the trust anchor (this city coordinates)."
)
@pass_ctx
def init(ctx: Context, coordinator: bool) -> None:
    """Make this city's federation key (once) and print the fingerprints to give out of band."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        city = fed_keys.ensure(session, settings.key_secret, "city")
        click.echo(f"federation key of {settings.city_code}: {city.fingerprint}")
        if coordinator:
            anchor = fed_keys.ensure(session, settings.key_secret, "anchor")
            click.echo(f"trust anchor (members pin this): {anchor.fingerprint}")


@federation.command("rekey")
@click.option("--anchor", is_flag=True, help="Re-key the trust anchor instead (members re-pin).")
@pass_ctx
def rekey(ctx: Context, anchor: bool) -> None:
    """Replace this city's federation key; the coordinator must approve the new fingerprint."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        key = fed_keys.create(session, settings.key_secret, "anchor" if anchor else "city")
    click.echo(f"new {'trust anchor' if anchor else 'federation key'}: {key.fingerprint}")


@federation.command("entry")
@pass_ctx
def entry(ctx: Context) -> None:
    """Print this city's signed entry (what the coordinator lists)."""
    with ctx.session() as session:
        try:
            click.echo(operations.own_entry(session, ctx.platform.settings))
        except fed_keys.NoFederationKey as exc:
            raise click.ClickException(str(exc)) from exc


@federation.command("propose")
@click.argument("issuer")
@click.argument("action", type=click.Choice(CHANGE_ACTIONS))
@click.option("--url", help="The member's base URL (join).")
@click.option("--fingerprint", help="The member's federation key fingerprint, given out of band.")
@click.option("--by", "by", required=True, help="The platform admin proposing it.")
@pass_ctx
def propose(
    ctx: Context, issuer: str, action: str, url: str | None, fingerprint: str | None, by: str
) -> None:
    """Coordinator: propose joining, suspending, resuming, leaving or re-keying a member."""
    with ctx.session() as session:
        try:
            change = coordinator.propose(
                session,
                ctx.platform.settings,
                Actor(by),
                issuer,
                action,
                base_url=url,
                fingerprint=fingerprint,
            )
        except Exception as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"proposed #{change.id}: {action} {issuer}; another platform admin approves it")


@federation.command("approve")
@click.argument("change_id", type=int)
@click.option("--by", "by", required=True, help="The approving platform admin (not the proposer).")
@click.option("--reject", is_flag=True, help="Reject instead.")
@pass_ctx
def approve(ctx: Context, change_id: int, by: str, reject: bool) -> None:
    """Coordinator: approve (or reject) a proposed membership change — four eyes."""
    with ctx.session() as session:
        try:
            change = coordinator.decide(
                session, ctx.platform.settings, Actor(by), change_id, approve=not reject
            )
        except coordinator.CoordinatorError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"#{change.id} {change.state}: {change.action} {change.issuer}")


@federation.command("publish")
@click.option("--force", is_flag=True, help="Sign a new list even if nothing changed.")
@pass_ctx
def publish(ctx: Context, force: bool) -> None:
    """Coordinator: read every member's entry and sign a new trust list if anything changed."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        try:
            errors = coordinator.refresh_entries(session, settings)
            published = coordinator.compile_list(session, settings, force=force)
        except (coordinator.CoordinatorError, fed_keys.NoFederationKey) as exc:
            raise click.ClickException(str(exc)) from exc
    for issuer, error in sorted(errors.items()):
        click.echo(f"  {issuer}: {'entry read' if error is None else 'kept last entry: ' + error}")
    click.echo(f"trust list seq {published.seq} signed" if published else "trust list unchanged")


@federation.command("sync")
@pass_ctx
def sync(ctx: Context) -> None:
    """Fetch the trust list from the coordinator and partners' bulletins."""
    settings = ctx.platform.settings
    with ctx.session() as session:
        try:
            trust_list, new = operations.sync_trust_list(session, settings, actor=ACTOR)
        except operations.NotFederated as exc:
            raise click.ClickException(str(exc)) from exc
        except operations.SyncFailed as exc:
            click.echo(f"trust list refused ({exc.type}): {exc.detail}", err=True)
            click.echo("the last good list keeps serving until its maximum age", err=True)
            trust_list, new = None, False
        if trust_list is not None:
            click.echo(
                f"trust list seq {trust_list.seq} {'accepted' if new else 'already held'}: "
                f"{len(trust_list.members)} members"
            )
        for issuer, result in sorted(bulletins.sync_bulletins(session, settings).items()):
            click.echo(f"  bulletins of {issuer}: {result}")
    if trust_list is None:
        raise SystemExit(1)


@federation.command("bulletins")
@pass_ctx
def publish_bulletins(ctx: Context) -> None:
    """Publish this city's bulletins for every day up to yesterday that has none."""
    with ctx.session() as session:
        published = bulletins.publish_due(session, ctx.platform.settings)
    click.echo(f"{len(published)} bulletin(s) published")


@federation.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """The federation as this city sees it: keys, the held list, members, syncs."""
    with ctx.session() as session:
        s = queries.standing(session, ctx.platform.settings, now=utcnow())
        data: dict[str, Any] = {
            "city": s.city_code,
            "federation_key": s.fingerprint,
            "trust_anchor_pinned": s.pinned_anchor or None,
            "trust_anchor_held": s.anchor_fingerprint,
            "held_seq": s.held_seq,
            "held_age_seconds": s.held_age_seconds,
            "too_old": s.too_old,
            "members": [
                {
                    "issuer": m.issuer,
                    "name": m.name_zh,
                    "status": m.status,
                    "fingerprint": m.fingerprint,
                    "keys": sorted(m.signing_keys),
                    "mappings": sorted(m.mappings),
                }
                for m in s.members
            ],
            "syncs": {
                x.what: {
                    "last_success": x.last_success_at.isoformat() if x.last_success_at else None,
                    "last_error": x.last_error,
                }
                for x in s.syncs
            },
            "pending_changes": [
                {"id": c.id, "issuer": c.issuer, "action": c.action, "by": c.proposed_by}
                for c in s.pending
            ],
        }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    click.echo(f"city {data['city']}  federation key {data['federation_key']}")
    click.echo(f"trust anchor pinned: {data['trust_anchor_pinned']}")
    click.echo(
        f"held trust list: seq {data['held_seq']}, {data['held_age_seconds']} s old"
        + ("  (TOO OLD: visitors refused)" if data["too_old"] else "")
    )
    for m in data["members"]:
        click.echo(f"  {m['issuer']:<10} {m['status']:<10} {m['name']}  {m['fingerprint']}")
    for change in data["pending_changes"]:
        click.echo(
            f"  pending #{change['id']}: {change['action']} {change['issuer']} by {change['by']}"
        )


@federation.command("consent")
@click.argument("id_number")
@click.argument("partner")
@click.option("--withdraw", is_flag=True)
@pass_ctx
def cross_city_consent(ctx: Context, id_number: str, partner: str, withdraw: bool) -> None:
    """Record a citizen's consent to cross-city recognition by PARTNER (or '*'), e.g. from a counter."""
    with ctx.session() as session:
        citizen = _citizen(ctx, session, id_number)
        if withdraw:
            others = [m.issuer for m in queries.partners(session, ctx.platform.settings)]
            consent.stop_sharing(
                session, citizen, partner, partners=others, channel="counter", actor=ACTOR
            )
            click.echo(
                f"no longer shared with {partner}: {consent.shared_with(session, citizen.id)}"
            )
        else:
            consent.give(session, citizen, partner, channel="counter", actor=ACTOR)
            click.echo(f"consent to recognition by {partner} recorded")


federation.add_command(federation_demo)
federation.add_command(federation_demo_env)

COMMANDS = (federation,)
