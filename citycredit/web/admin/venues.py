"""Admin pages for venues and API clients: add venues, issue, rotate and revoke credentials.

A secret is shown exactly once, in the response to the request that created it (never flashed: the
flash store is the session cookie), with ``Cache-Control: no-store``. Operators see and manage only
their own venues and those venues' clients; the platform admin sees every client.
"""

from __future__ import annotations

from typing import Any

from flask import (
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select

from citycredit.core.clients import (
    ApiClient,
    find_client,
    register_client,
    revoke_client,
    rotate_secret,
)
from citycredit.web.admin.scenarios import actor, category_name
from citycredit.web.admin.web import (
    NAV,
    PERMISSIONS,
    NavItem,
    admin_audit,
    can,
    operator_scope,
    require_permission,
    t,
)
from citycredit.web.admin.web import bp as admin_bp
from citycredit.web.context import db_session, platform_of
from scenarios import operations as registry
from scenarios.models import CATEGORIES, Operator, Scenario, ScenarioVenue, Venue

NAV.insert(2, NavItem("admin.venues", "场所与凭证", "Venues & clients", PERMISSIONS["venues.view"]))

VENUE_SCOPES = ("verify", "redeem")


def _operators() -> list[Operator]:
    query = select(Operator).order_by(Operator.code)
    if operator_scope() is not None:
        query = query.where(Operator.id == operator_scope())
    return list(db_session().scalars(query))


def _venue_or_404(code: str) -> Venue:
    venue = db_session().scalar(select(Venue).where(Venue.code == code))
    if venue is None or not actor().may_see(venue.operator_id):
        abort(404)
    return venue


@admin_bp.get("/venues")
@require_permission("venues.view")
def venues() -> Any:
    session = db_session()
    query = (
        select(
            Venue,
            Operator,
            select(func.count())
            .select_from(ScenarioVenue)
            .where(ScenarioVenue.venue_id == Venue.id)
            .scalar_subquery(),
            select(func.count())
            .select_from(ApiClient)
            .where(ApiClient.venue_id == Venue.id, ApiClient.status == "active")
            .scalar_subquery(),
        )
        .join(Operator, Operator.id == Venue.operator_id)
        .order_by(Operator.code, Venue.code)
    )
    if operator_scope() is not None:
        query = query.where(Venue.operator_id == operator_scope())
    return render_template(
        "admin/venues/list.html",
        rows=session.execute(query).all(),
        operators=_operators(),
        categories=CATEGORIES,
        form={},
        errors={},
    )


@admin_bp.post("/venues")
@require_permission("venues.manage")
def add_venue() -> Any:
    session = db_session()
    form = request.form
    operator = next((o for o in _operators() if o.code == form.get("operator")), None)
    errors: dict[str, list[str]] = {}
    if operator is None:
        errors["operator"] = [t("请选择运营方", "choose an operator")]
    elif not form.get("name_zh", "").strip() or not form.get("name_en", "").strip():
        for name in ("name_zh", "name_en"):
            if not form.get(name, "").strip():
                errors[name] = [t("请填写中英文名称", "give the name in Chinese and English")]
    else:
        try:
            venue = registry.add_venue(
                session,
                actor(),
                operator=operator,
                code=form.get("code", "").strip(),
                category=form.get("category", ""),
                name_zh=form.get("name_zh", ""),
                name_en=form.get("name_en", ""),
                address_zh=form.get("address_zh", ""),
            )
        except registry.InvalidScenario as exc:
            errors = exc.errors
        else:
            g.admin_audited = True
            flash(t(f"已添加场所 {venue.code}", f"Venue {venue.code} added"), "success")
            return redirect(url_for("admin.venue_detail", code=venue.code))
    return (
        render_template(
            "admin/venues/list.html",
            rows=[],
            operators=_operators(),
            categories=CATEGORIES,
            form=dict(form),
            errors=errors,
        ),
        422,
    )


@admin_bp.get("/venues/<code>")
@require_permission("venues.view")
def venue_detail(code: str) -> Any:
    session = db_session()
    venue = _venue_or_404(code)
    scenarios = session.scalars(
        select(Scenario)
        .join(ScenarioVenue, ScenarioVenue.scenario_id == Scenario.id)
        .where(ScenarioVenue.venue_id == venue.id)
        .order_by(Scenario.code)
    ).all()
    clients = session.scalars(
        select(ApiClient).where(ApiClient.venue_id == venue.id).order_by(ApiClient.id.desc())
    ).all()
    return render_template(
        "admin/venues/detail.html",
        venue=venue,
        operator=session.get(Operator, venue.operator_id),
        scenarios=scenarios,
        clients=clients,
        scopes=VENUE_SCOPES,
        category=category_name(venue.category),
    )


def _secret_page(client: ApiClient, secret: str, *, rotated: bool) -> Any:
    response = make_response(
        render_template("admin/venues/secret.html", client=client, secret=secret, rotated=rotated)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@admin_bp.post("/venues/<code>/clients")
@require_permission("clients.manage")
def issue_client(code: str) -> Any:
    venue = _venue_or_404(code)
    if not actor().may_manage(venue.operator_id):
        abort(403)
    scopes = [s for s in request.form.getlist("scopes") if s in VENUE_SCOPES]
    name = request.form.get("name", "").strip()[:200]
    if not scopes or not name:
        flash(
            t("请填写终端名称并至少选择一项权限。", "Name the desk and choose at least one scope."),
            "error",
        )
        return redirect(url_for("admin.venue_detail", code=code))
    issued = register_client(
        db_session(),
        name=name,
        kind="venue",
        scopes=scopes,
        venue_id=venue.id,
        operator_id=venue.operator_id,
        key_secret=platform_of(current_app).settings.key_secret,
    )
    assert issued.secret is not None
    admin_audit(
        "client.issue", client=issued.client.client_id, venue=venue.code, scopes=" ".join(scopes)
    )
    return _secret_page(issued.client, issued.secret, rotated=False)


def _client_or_404(client_id: str) -> ApiClient:
    client = find_client(db_session(), client_id)
    if client is None:
        abort(404)
    scope = operator_scope()
    if scope is not None and client.operator_id != scope:
        abort(404)
    return client


@admin_bp.post("/clients/<client_id>/rotate")
@require_permission("clients.manage")
def rotate_client(client_id: str) -> Any:
    client = _client_or_404(client_id)
    if client.status != "active" or client.secret_hash is None:
        flash(
            t("该凭证已吊销或使用公钥认证，无法轮换密钥。", "Revoked, or authenticates by key."),
            "error",
        )
        return redirect(request.referrer or url_for("admin.clients"))
    secret = rotate_secret(
        db_session(), client, key_secret=platform_of(current_app).settings.key_secret
    )
    admin_audit("client.rotate", client=client.client_id)
    return _secret_page(client, secret, rotated=True)


@admin_bp.post("/clients/<client_id>/revoke")
@require_permission("clients.manage")
def revoke(client_id: str) -> Any:
    client = _client_or_404(client_id)
    if client.status == "active":
        revoke_client(db_session(), client)
        admin_audit("client.revoke", client=client.client_id)
        flash(
            t(
                f"已吊销 {client.client_id}，其访问令牌立即失效。",
                f"{client.client_id} revoked; its access tokens stopped working at once.",
            ),
            "success",
        )
    venue = db_session().get(Venue, client.venue_id) if client.venue_id else None
    return redirect(
        url_for("admin.venue_detail", code=venue.code) if venue else url_for("admin.clients")
    )


@admin_bp.get("/clients")
@require_permission("clients.view")
def clients() -> Any:
    session = db_session()
    query = (
        select(ApiClient, Venue, Operator)
        .outerjoin(Venue, Venue.id == ApiClient.venue_id)
        .outerjoin(Operator, Operator.id == ApiClient.operator_id)
        .order_by(ApiClient.id.desc())
    )
    if operator_scope() is not None:
        query = query.where(ApiClient.operator_id == operator_scope())
    return render_template(
        "admin/venues/clients.html",
        rows=session.execute(query).all(),
        may_manage=can("clients.manage"),
    )
