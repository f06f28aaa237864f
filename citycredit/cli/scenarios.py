"""``citycredit operators|venues|scenarios``: the registry from the command line (the city's staff).

The command line acts city-wide as ``cli:$USER``; ``--as-operator`` narrows an import or export to one
operator, exactly as that operator's admin account would see it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from citycredit.cli.base import ACTOR, EXIT_ROWS_REJECTED, Context, pass_ctx
from citycredit.core import actors
from citycredit.core.audit import audit
from scenarios import csvio
from scenarios import operations as registry
from scenarios.models import CATEGORIES, SCENARIO_STATUSES, Operator, Scenario, Venue

CITY = actors.Actor(ACTOR, can_publish=True)


@contextmanager
def _session(ctx: Context) -> Iterator[Session]:
    try:
        with ctx.session() as session:
            yield session
    except registry.RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


def _operator(session: Session, code: str) -> Operator:
    operator = registry.find_operator(session, code)
    if operator is None:
        raise click.ClickException(f"no operator {code!r} (see `citycredit operators list`)")
    return operator


@click.group("operators")
def operators() -> None:
    """Scenario operators: the bodies that run benefits."""


@operators.command("add")
@click.argument("code")
@click.argument("name_zh")
@click.argument("name_en")
@pass_ctx
def operators_add(ctx: Context, code: str, name_zh: str, name_en: str) -> None:
    with _session(ctx) as session:
        if registry.find_operator(session, code) is not None:
            raise click.ClickException(f"operator {code!r} exists already")
        registry.ensure_operator(session, code, name_zh, name_en)

        audit(session, actor=ACTOR, action="operator.add", operator=code)
    click.echo(f"operator {code} added")


@operators.command("list")
@pass_ctx
def operators_list(ctx: Context) -> None:
    with _session(ctx) as session:
        for o in session.scalars(select(Operator).order_by(Operator.code)):
            click.echo(f"{o.code:28} {o.name_zh}  ({o.name_en})")


@click.group("venues")
def venues() -> None:
    """Venues: the places that honour benefits; their desks get API clients."""


@venues.command("add")
@click.argument("code")
@click.option("--operator", "operator_code", required=True)
@click.option("--category", type=click.Choice(list(CATEGORIES)), required=True)
@click.option("--name-zh", required=True)
@click.option("--name-en", required=True)
@click.option("--address", default="", help="Street address (Chinese).")
@pass_ctx
def venues_add(
    ctx: Context,
    code: str,
    operator_code: str,
    category: str,
    name_zh: str,
    name_en: str,
    address: str,
) -> None:
    with _session(ctx) as session:
        registry.add_venue(
            session,
            CITY,
            operator=_operator(session, operator_code),
            code=code,
            category=category,
            name_zh=name_zh,
            name_en=name_en,
            address_zh=address,
        )
    click.echo(f"venue {code} added")


@venues.command("list")
@click.option("--operator", "operator_code")
@pass_ctx
def venues_list(ctx: Context, operator_code: str | None) -> None:
    with _session(ctx) as session:
        query = select(Venue).order_by(Venue.code)
        if operator_code:
            query = query.where(Venue.operator_id == _operator(session, operator_code).id)
        for v in session.scalars(query):
            click.echo(f"{v.code:24} {v.category:11} {v.status:7} {v.name_zh}  ({v.name_en})")


@click.group("scenarios")
def scenarios() -> None:
    """Benefit scenarios (信易+): list, import/export CSV, review, publish, suspend, retire."""


@scenarios.command("list")
@click.option("--status", type=click.Choice(SCENARIO_STATUSES))
@click.option("--category", type=click.Choice(list(CATEGORIES)))
@click.option("--operator", "operator_code")
@pass_ctx
def scenarios_list(
    ctx: Context, status: str | None, category: str | None, operator_code: str | None
) -> None:
    with _session(ctx) as session:
        query = select(Scenario).order_by(Scenario.code)
        if status:
            query = query.where(Scenario.status == status)
        if category:
            query = query.where(Scenario.category == category)
        if operator_code:
            query = query.where(Scenario.operator_id == _operator(session, operator_code).id)
        found = list(session.scalars(query))
        versions = registry.current_versions(session, [s.id for s in found])
        for s in found:
            pending = versions.pending.get(s.id)
            shown = versions.live.get(s.id) or pending
            name = shown.name_zh if shown else ""
            extra = f"  [v{pending.number} {pending.state}]" if pending else ""
            click.echo(f"{s.code:40} {s.category:11} {s.status:10} {name}{extra}")
        click.echo(f"{len(found)} scenario(s)", err=True)


@scenarios.command("show")
@click.argument("code")
@pass_ctx
def scenarios_show(ctx: Context, code: str) -> None:
    with _session(ctx) as session:
        s = registry.find_scenario(session, code)
        click.echo(f"{s.code}  {s.category}  {s.status}  redeemed {s.redeemed_total}")
        click.echo(
            "venues: " + (", ".join(v.code for v in registry.venues_of(session, s.id)) or "-")
        )
        for v in registry.versions_of(session, s.id):
            rule = registry.rule_of(v)
            click.echo(f"  v{v.number} {v.state:10} {v.name_zh} / {v.name_en}")
            click.echo(f"      {v.benefit_zh}")
            click.echo(f"      who: {rule.describe('zh')} / {rule.describe('en')}")
            quotas = (
                f"per day {v.quota_per_day or '-'}, per month {v.quota_per_month or '-'}, "
                f"total {v.quota_total or '-'}"
            )
            click.echo(
                f"      quotas: {quotas}; valid {v.valid_from or '…'} – {v.valid_until or '…'}"
            )
            if v.review_note:
                click.echo(f"      review note: {v.review_note}")


def _actor(session: Session, as_operator: str | None) -> actors.Actor:
    if as_operator is None:
        return CITY
    return actors.Actor(ACTOR, operator_id=_operator(session, as_operator).id)


@scenarios.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--as-operator", help="Act as this operator: only its scenarios may be touched.")
@click.option("--submit", is_flag=True, help="Send new and changed drafts for review.")
@click.option("--check", is_flag=True, help="Validate only; change nothing.")
@pass_ctx
def scenarios_import(
    ctx: Context, file: Path, as_operator: str | None, submit: bool, check: bool
) -> None:
    """Import scenarios from CSV; every bad row is reported with its line and field (exit 3)."""
    with _session(ctx) as session:
        try:
            report = csvio.import_csv(
                session, _actor(session, as_operator), file.read_bytes(), submit_for_review=submit
            )
        except csvio.CsvFileError as exc:
            raise click.ClickException(f"{file}: {exc}") from exc
        if check:
            session.rollback()
    for error in report.errors:
        click.echo(f"{file}:{error.line}: {error.code or '-'}: {error.field}: {error.message}")
    verb = "would be" if check else "were"
    click.echo(
        f"{len(report.created)} created, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {report.rejected_rows} row(s) rejected"
        + (f" (nothing {verb} saved: --check)" if check else "")
    )
    if report.errors:
        sys.exit(EXIT_ROWS_REJECTED)


@scenarios.command("export")
@click.argument("file", default="-")
@click.option("--as-operator", help="Export only this operator's scenarios.")
@pass_ctx
def scenarios_export(ctx: Context, file: str, as_operator: str | None) -> None:
    """Export scenarios as CSV (each one's current definition) to FILE, or to stdout with '-'."""
    with _session(ctx) as session:
        actor = _actor(session, as_operator)
        if file == "-":
            count = csvio.write_csv(session, actor, sys.stdout)
        else:
            with open(file, "w", encoding="utf-8", newline="") as out:
                count = csvio.write_csv(session, actor, out)
    click.echo(f"{count} scenario(s) exported", err=True)


def _workflow(ctx: Context, code: str, step: str, text: str) -> None:
    with _session(ctx) as session:
        scenario = registry.find_scenario(session, code)
        if step == "publish":
            version = registry.publish(session, CITY, scenario, text)
            message = f"{code} v{version.number} published"
        elif step == "reject":
            version = registry.reject(session, CITY, scenario, text)
            message = f"{code} v{version.number} sent back to its author"
        else:
            getattr(registry, step)(session, CITY, scenario, text)
            message = f"{code} is now {scenario.status}"
    click.echo(message)


@scenarios.command("publish")
@click.argument("code")
@click.option("--note", default="", help="Review note.")
@pass_ctx
def scenarios_publish(ctx: Context, code: str, note: str) -> None:
    """Publish the version under review (not by the person who submitted it)."""
    _workflow(ctx, code, "publish", note)


@scenarios.command("reject")
@click.argument("code")
@click.option("--note", required=True, help="What needs to change.")
@pass_ctx
def scenarios_reject(ctx: Context, code: str, note: str) -> None:
    _workflow(ctx, code, "reject", note)


@scenarios.command("suspend")
@click.argument("code")
@click.option("--reason", required=True)
@pass_ctx
def scenarios_suspend(ctx: Context, code: str, reason: str) -> None:
    """Stop verifications and redemptions at once."""
    _workflow(ctx, code, "suspend", reason)


@scenarios.command("resume")
@click.argument("code")
@click.option("--reason", default="")
@pass_ctx
def scenarios_resume(ctx: Context, code: str, reason: str) -> None:
    _workflow(ctx, code, "resume", reason)


@scenarios.command("retire")
@click.argument("code")
@click.option("--reason", required=True)
@pass_ctx
def scenarios_retire(ctx: Context, code: str, reason: str) -> None:
    _workflow(ctx, code, "retire", reason)


COMMANDS = (operators, venues, scenarios)
