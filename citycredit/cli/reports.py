"""``citycredit reports month YYYY-MM``: the monthly report (通报) on demand — what the scheduler does
on the 1st — written as CSV and XLSX files, one per report (the city's and each department's).
docs/REPORTS.md."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from citizen.operations import ObjectionTerms
from citycredit.cli.base import ACTOR, MONTH, Context, pass_ctx
from citycredit.core.actors import Actor
from citycredit.core.db import utcnow
from governance import reports


@click.group("reports")
def reports_group() -> None:
    """The credit office's monthly reports (通报)."""


@reports_group.command("month")
@click.argument("month", type=MONTH)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder for the files (made if missing).",
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--format",
    "formats",
    type=click.Choice(["csv", "xlsx"]),
    multiple=True,
    default=("csv", "xlsx"),
    show_default=True,
)
@pass_ctx
def reports_month(
    ctx: Context, month: dt.date, out: Path, lang: str, formats: tuple[str, ...]
) -> None:
    """Generate (and store) a month's report, then write the city's and each department's files."""
    settings = ctx.platform.settings
    first = month.replace(day=1)
    terms = ObjectionTerms.from_settings(settings)
    with ctx.session() as session:
        try:
            row = reports.generate(
                session,
                first,
                tz=settings.tz,
                terms=terms,
                actor=Actor(ACTOR),
                today=ctx.platform.today(),
                now=utcnow(),
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        report = reports.from_dict(row.figures)
        sha, at = row.sha256, row.generated_at
    out.mkdir(parents=True, exist_ok=True)
    stamp = (
        f"Generated {at.astimezone(settings.tz):%Y-%m-%d %H:%M} by {ACTOR}; sha256 {sha}"
        if lang == "en"
        else f"生成于 {at.astimezone(settings.tz):%Y-%m-%d %H:%M}（{ACTOR}），sha256 {sha}"
    )
    for department in [None, *reports.source_codes(report)]:
        for fmt in formats:
            render = reports.to_csv if fmt == "csv" else reports.to_xlsx
            path = out / reports.file_name(report, department=department, ext=fmt)
            path.write_bytes(render(report, lang=lang, department=department, generated=stamp))
            click.echo(str(path))
    click.echo(f"{first:%Y-%m}: stored, sha256 {sha}")


COMMANDS = (reports_group,)
