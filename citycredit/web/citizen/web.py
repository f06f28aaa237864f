"""The citizen's phone pages at ``/me``: server-rendered, Simplified Chinese first, no outside requests.

Sessions: the signed cookie holds the citizen's row id (never an ID number) with idle (30 min) and
absolute (12 h) deadlines; signing in clears the session first. Every form POST carries the session's
CSRF token. A citizen reaches only their own data: every lookup is by the signed-in citizen, so another
citizen's record or objection id answers 404, exactly like an id that does not exist.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from markupsafe import Markup
from sqlalchemy import delete
from werkzeug.exceptions import BadRequest

from citizen import operations as citizen_ops
from citizen import queries, repairs
from citizen.identity import SignInError, provider_for
from citizen.models import (
    OBJECTION_STATUS_NAMES,
    OBJECTION_STEP_NAMES,
    REPAIR_STATUS_NAMES,
    REPAIR_STEP_NAMES,
    CitizenSession,
)
from citycredit.core.audit import audit
from citycredit.core.db import utcnow
from citycredit.web import forms, security
from citycredit.web.citizen import charts
from citycredit.web.context import db_session, platform_of
from credit_codes import consent as cross_city
from credit_codes import qr, tokens
from credit_codes.operations import NotScored, issue_credit_code
from credit_codes.queries import checks_of_citizen
from federation.operations import held_list
from federation.queries import partner_checks_of_citizen, partner_offers
from federation.queries import partners as partner_cities
from points_engine import operations as engine
from points_engine.explain_text import reason_text
from points_engine.models import Citizen
from points_engine.queries import current_snapshot
from points_engine.tiers import (
    TIER_RELATION,
    common_level_words,
    common_tier,
    tier_pair,
    tier_parts,
)
from push import authorize
from scenarios import benefit_search
from scenarios.benefits import my_benefits
from scenarios.models import CATEGORIES

bp = Blueprint(
    "citizen",
    __name__,
    url_prefix="/me",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=12)
_SID, _CSRF, _LANG = "cz_sid", "cz_csrf", "cz_lang"
PUBLIC = frozenset({"citizen.login", "citizen.send_code", "citizen.check_code", "citizen.static"})
F = TypeVar("F", bound=Callable[..., Any])
# Where sign-in returns to when a page outside /me asked for it (only these paths: never elsewhere).
NEXT = "cz_next"
RETURN_PATHS = ("/oauth/authorize?",)


def init_citizen(app: Flask) -> None:
    app.register_blueprint(bp)
    app.extensions["citizen_now"] = utcnow


def now() -> dt.datetime:
    clock: Callable[[], dt.datetime] = current_app.extensions["citizen_now"]
    return clock()


def settings() -> Any:
    return platform_of(current_app).settings


def today() -> dt.date:
    return now().astimezone(settings().tz).date()


def lang() -> str:
    return str(g.get("cz_lang") or session.get(_LANG) or "zh")


def t(zh: str, en: str) -> str:
    return en if lang() == "en" else zh


def lang_url(code: str) -> str:
    """This page in another language (home when this page answers only POST)."""
    return forms.lang_url(code, "citizen.home")


def csrf_field() -> Markup:
    return forms.csrf_field(_CSRF)


def me() -> Citizen:
    citizen: Citizen | None = g.get("citizen")
    if citizen is None:
        abort(401)
    return citizen


def local_time(moment: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(settings().tz).strftime(fmt) if moment else "—"


_BADGES = {
    queries.Standing.COUNTING: "yes",
    queries.Standing.UNDER_OBJECTION: "wait",
    queries.Standing.NOT_COUNTING: "no",
    queries.Standing.NOT_SCORED: "",
}


def standing_badge(status: str, counted: bool | None) -> Markup:
    """A record's standing (``queries.standing``) as a badge, the same on every page."""
    found = queries.standing(status, counted)
    classes = " ".join(c for c in ("badge", _BADGES[found], "rec-status") if c)
    return Markup('<span class="{}">{}</span>').format(classes, t(*queries.STANDING_NAMES[found]))


def model_name(e: Any) -> str:
    """The scoring model as people call it (its title and version), never the engine's identifier."""
    if not e.model_title_zh:
        return t("现行评分规则", "the current scoring rules")
    return t(
        f"{e.model_title_zh}（第 {e.model_version} 版）",
        f"{e.model_title_en} (version {e.model_version})",
    )


@bp.context_processor
def _globals() -> dict[str, Any]:
    return {
        "t": t,
        "lang": lang,
        "lang_url": lang_url,
        "csrf_field": csrf_field,
        "local_time": local_time,
        "standing_badge": standing_badge,
        "model_name": model_name,
        "reason_text": reason_text,
        "tier_of": common_tier,
        # The tier in the words every surface uses (points_engine.tiers): the city tier, then the
        # common level; conditions say "common level … or above".
        "tier_pair": lambda code, zh=None, en=None, level=None: tier_pair(
            code, zh, en, level, lang()
        ),
        "tier_parts": lambda code, zh, en, level: tier_parts(code, zh, en, level, lang()),
        "common_level": lambda level, or_above=False: common_level_words(
            level, lang(), or_above=or_above
        ),
        "tier_relation": lambda: t(*TIER_RELATION),
        "demo_mode": settings().demo_mode,
        "category_name": category_name,
        "objection_status": lambda code: t(*OBJECTION_STATUS_NAMES[code]),
        "objection_step": lambda code: t(*OBJECTION_STEP_NAMES[code]),
        "repair_status": lambda code: t(*REPAIR_STATUS_NAMES[code]),
        "repair_step": lambda code: t(*REPAIR_STEP_NAMES[code]),
        "period_words": lambda period: t(*period.words()) if period else "",
        "timedelta": dt.timedelta,
    }


@bp.before_request
def _guard() -> Any:
    chosen = request.args.get("lang")
    if chosen in ("zh", "en"):
        session[_LANG] = chosen
        g.cz_lang = chosen
    if request.endpoint == "citizen.static":
        return None
    if request.method == "POST" and not forms.csrf_ok(_CSRF):
        raise BadRequest("csrf")
    sid = session.get(_SID)
    if sid is not None:
        moment = now()
        stored = db_session().get(CitizenSession, sid)
        if (
            stored is None
            or moment - stored.seen_at > IDLE
            or moment - stored.started_at > ABSOLUTE
        ):
            if stored is not None:
                db_session().delete(stored)
            _clear()
            g.expired = True
        else:
            g.citizen = db_session().get(Citizen, stored.citizen_id)
            if moment - stored.seen_at > dt.timedelta(seconds=30):
                stored.seen_at = moment
    if g.get("citizen") is None and request.endpoint not in PUBLIC:
        if request.accept_mimetypes.best == "application/json" or request.path.endswith(".json"):
            return Response(json.dumps({"error": "signed-out"}), 401, mimetype="application/json")
        return redirect(url_for("citizen.login", expired=1 if g.get("expired") else None))
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    # Personal pages must not linger in shared caches or the back-button cache of a lent phone.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.errorhandler(BadRequest)
def _bad_request(error: BadRequest) -> Any:
    return render_template(
        "citizen/message.html",
        title=t("请求已过期", "Request expired"),
        text=t("页面已过期，请返回重试。", "The page had expired; go back and try again."),
    ), 400


def _clear() -> None:
    for key in (_SID, _CSRF):
        session.pop(key, None)


# --- sign-in ---------------------------------------------------------------------------------------


@bp.get("/login")
def login() -> Any:
    if g.get("citizen") is not None:
        return redirect(url_for("citizen.home"))
    return render_template(
        "citizen/login.html",
        challenge=None,
        error=None,
        expired=bool(request.args.get("expired")),
        signed_out=request.args.get("signed_out") == "1",
    )


@bp.post("/login")
def send_code() -> Any:
    provider = provider_for(settings())
    try:
        challenge = provider.start(
            db_session(), settings(), request.form.get("id_number", ""), now=now()
        )
    except SignInError as exc:
        return render_template(
            "citizen/login.html", challenge=None, error=t(exc.zh, exc.en), expired=False
        ), 422
    if challenge.redirect_to:
        return redirect(challenge.redirect_to)
    return render_template("citizen/login.html", challenge=challenge, error=None, expired=False)


@bp.post("/login/code")
def check_code() -> Any:
    provider = provider_for(settings())
    challenge_id = request.form.get("challenge", "")
    try:
        citizen = provider.finish(
            db_session(), settings(), challenge_id, request.form.get("code", ""), now=now()
        )
    except SignInError as exc:
        # The failed attempt is counted (committed), and the citizen may try again.
        security.mark_failed()
        return render_template(
            "citizen/login.html",
            challenge={"challenge_id": challenge_id},
            error=t(exc.zh, exc.en),
            expired=False,
        ), 422
    language = session.get(_LANG)
    going_on = session.get(NEXT)
    session.clear()  # a fresh session: nothing from before sign-in carries over
    if language:
        session[_LANG] = language
    sid = secrets.token_urlsafe(32)
    db_session().add(CitizenSession(id=sid, citizen_id=citizen.id, started_at=now(), seen_at=now()))
    session[_SID] = sid

    audit(
        db_session(),
        actor=queries.actor_of(citizen),
        action="citizen.sign_in",
        citizen_id=citizen.id,
    )
    if isinstance(going_on, str) and going_on.startswith(RETURN_PATHS):
        return redirect(going_on)  # back to where sign-in was asked for (an operator's link)
    target = "citizen.home" if citizen.consent_given else "citizen.consent"
    return redirect(url_for(target))


@bp.post("/logout")
def logout() -> Any:
    sid = session.get(_SID)
    if sid is not None:
        db_session().execute(delete(CitizenSession).where(CitizenSession.id == sid))
    _clear()
    return redirect(url_for("citizen.login", signed_out=1))


# --- consent ---------------------------------------------------------------------------------------


@bp.get("/consent")
def consent() -> Any:
    citizen = me()
    return render_template(
        "citizen/consent.html",
        citizen=citizen,
        history=queries.consent_history(db_session(), citizen),
    )


@bp.post("/consent")
def change_consent() -> Any:
    citizen = me()
    session_ = db_session()
    if request.form.get("action") == "give":
        engine.give_consent(
            session_,
            citizen,
            channel="citizen-page",
            as_of=today(),
            actor=queries.actor_of(citizen),
        )
        return redirect(url_for("citizen.home"))
    if request.form.get("action") == "withdraw":
        if request.form.get("confirm") != "yes" or not citizen.consent_given:
            # Deleting the score is never one tap away: the confirm page says what is lost.
            return redirect(url_for("citizen.withdraw_consent_form"))
        engine.withdraw_consent(
            session_, citizen, channel="citizen-page", actor=queries.actor_of(citizen)
        )
        return redirect(url_for("citizen.consent", withdrawn=1))
    abort(400)


@bp.get("/consent/withdraw")
def withdraw_consent_form() -> Any:
    citizen = me()
    if not citizen.consent_given:
        return redirect(url_for("citizen.consent"))
    pending = queries.objection_cases(
        db_session(), today=today(), calendar=_terms().calendar, citizen=citizen, pending=True
    )
    return render_template("citizen/consent_withdraw.html", pending_objections=len(pending))


# --- home ------------------------------------------------------------------------------------------


@bp.get("/")
def home() -> Any:
    citizen = me()
    if not citizen.consent_given:
        return redirect(url_for("citizen.consent"))
    view = queries.home(db_session(), citizen, today=today())
    e = view.explanation
    trend_chart = charts.line_chart(
        [(p.month[2:], p.score) for p in view.trend],
        title=t("近12个月信用分走势", "Score over the last 12 months"),
        desc=t("按现行评分规则，以每月月底的记录计算", "Each month's end, under today's rules"),
        y_label=t("信用分", "Score"),
    )
    dimension_chart = charts.signed_bars(
        [(t(d.name_zh, d.name_en), d.value) for d in e.dimensions],
        title=t("各维度得分", "Points by dimension"),
        desc=t("每个维度对信用分的贡献", "What each dimension adds to the score"),
        value_label=t("加减分", "Points added or taken away"),
    )
    return render_template(
        "citizen/home.html",
        e=e,
        view=view,
        trend_chart=trend_chart,
        dimension_chart=dimension_chart,
    )


# --- records and objections ------------------------------------------------------------------------


@bp.get("/records")
def records() -> Any:
    citizen = me()
    session_ = db_session()
    explanation = queries.explain_for_page(session_, citizen, today=today())
    # The latest objection to each record (an earlier one may have been withdrawn or decided).
    latest = {}
    for objection in reversed(queries.objections_of(session_, citizen)):
        latest[objection.record_id] = objection
    return render_template(
        "citizen/records.html",
        e=explanation,
        groups=queries.record_groups(explanation.records),
        objections=latest,
        improvements=queries.improvements(session_),
        repairable={
            v.record.id: v for v in repairs.repairable_records(session_, citizen, today=today())
        },
        today=today(),
    )


def _record_or_404(record_id: int) -> Any:
    record = citizen_ops.own_record(db_session(), me(), record_id)
    if record is None:
        abort(404)
    return record


def _terms() -> citizen_ops.ObjectionTerms:
    return citizen_ops.ObjectionTerms.from_settings(settings())


def _record_name(record: Any) -> tuple[str, str]:
    return queries.item_names(db_session()).get(record.item_code, (record.item_code,) * 2)


@bp.get("/records/<int:record_id>/objection")
def objection_form(record_id: int) -> Any:
    record = _record_or_404(record_id)
    return render_template(
        "citizen/objection.html",
        record=record,
        name=_record_name(record),
        days=settings().objection_days,
        error=None,
        reason="",
    )


@bp.post("/records/<int:record_id>/objection")
def file_objection(record_id: int) -> Any:
    record = _record_or_404(record_id)
    reason = request.form.get("reason", "")
    try:
        objection = citizen_ops.file_objection(
            db_session(), me(), record, reason, today=today(), now=now(), terms=_terms()
        )
    except citizen_ops.ObjectionRefused as exc:
        return render_template(
            "citizen/objection.html",
            record=record,
            name=_record_name(record),
            days=settings().objection_days,
            error=t(exc.zh, exc.en),
            reason=reason,
        ), 422
    return redirect(url_for("citizen.objection", public_id=objection.public_id, filed=1))


@bp.get("/objections")
def objections() -> Any:
    cases = queries.objection_cases(
        db_session(), today=today(), calendar=_terms().calendar, citizen=me()
    )
    return render_template("citizen/objections.html", cases=cases)


def _case_or_404(public_id: str) -> queries.ObjectionCase:
    found = queries.objection_cases(
        db_session(),
        today=today(),
        calendar=_terms().calendar,
        citizen=me(),
        public_id=public_id,
        with_steps=True,
    )
    if not found:
        abort(404)
    return found[0]


@bp.get("/objections/<public_id>")
def objection(public_id: str) -> Any:
    case = _case_or_404(public_id)
    snapshot = None
    if not case.pending:
        # The outcome's effect: the score as rescored when the case ended (and since).
        snapshot = current_snapshot(db_session(), me().id)
    return render_template(
        "citizen/objection_case.html",
        case=case,
        snapshot=snapshot,
        filed=request.args.get("filed") == "1",
        withdrawn=request.args.get("withdrawn") == "1",
    )


@bp.get("/objections/<public_id>/withdraw")
def withdraw_form(public_id: str) -> Any:
    case = _case_or_404(public_id)
    if not case.pending:
        return redirect(url_for("citizen.objection", public_id=public_id))
    return render_template("citizen/objection_withdraw.html", case=case)


@bp.post("/objections/<public_id>/withdraw")
def withdraw(public_id: str) -> Any:
    case = _case_or_404(public_id)
    if case.pending:
        citizen_ops.withdraw(db_session(), me(), case.objection, now=now(), today=today())
        return redirect(url_for("citizen.objection", public_id=public_id, withdrawn=1))
    return redirect(url_for("citizen.objection", public_id=public_id))


# --- credit repair ---------------------------------------------------------------------------------


@bp.get("/repairs")
def repairs_page() -> Any:
    citizen = me()
    session_ = db_session()
    return render_template(
        "citizen/repairs.html",
        cases=repairs.repair_cases(session_, citizen=citizen),
        records=repairs.repairable_records(session_, citizen, today=today()),
        names=queries.item_names(session_),
    )


def _repair_form(record: Any, statement: str, error: str | None) -> Any:
    session_ = db_session()
    return render_template(
        "citizen/repair_form.html",
        verdict=repairs.eligibility(session_, record, today=today()),
        name=_record_name(record),
        statement=statement,
        error=error,
        max_files=repairs.MAX_ATTACHMENTS,
    )


@bp.get("/records/<int:record_id>/repair")
def repair_form(record_id: int) -> Any:
    return _repair_form(_record_or_404(record_id), "", None)


@bp.post("/records/<int:record_id>/repair")
def apply_for_repair(record_id: int) -> Any:
    record = _record_or_404(record_id)
    statement = request.form.get("statement", "")
    uploads = [
        repairs.Upload(f.filename or "", f.read(repairs.MAX_ATTACHMENT_BYTES + 1))
        for f in request.files.getlist("attachments")
        if f.filename
    ]
    try:
        application = repairs.apply(
            db_session(), me(), record, statement, uploads, today=today(), now=now()
        )
    except repairs.RepairRefused as exc:
        return _repair_form(record, statement, t(exc.zh, exc.en)), 422
    return redirect(url_for("citizen.repair", public_id=application.public_id, applied=1))


def _repair_or_404(public_id: str) -> repairs.RepairCase:
    found = repairs.repair_cases(db_session(), citizen=me(), public_id=public_id, with_details=True)
    if not found:
        abort(404)
    return found[0]


@bp.get("/repairs/<public_id>")
def repair(public_id: str) -> Any:
    case = _repair_or_404(public_id)
    snapshot = (
        current_snapshot(db_session(), me().id) if case.application.status == "approved" else None
    )
    return render_template(
        "citizen/repair_case.html",
        case=case,
        snapshot=snapshot,
        applied=request.args.get("applied") == "1",
        withdrawn=request.args.get("withdrawn") == "1",
    )


@bp.get("/repairs/<public_id>/attachments/<int:attachment_id>")
def repair_attachment(public_id: str, attachment_id: int) -> Any:
    case = _repair_or_404(public_id)
    found = next((a for a in case.attachments if a.id == attachment_id), None)
    if found is None:
        abort(404)
    audit(
        db_session(),
        actor=queries.actor_of(me()),
        action="repair.attachment.read",
        citizen_id=me().id,
        application=public_id,
        attachment=found.id,
    )
    # Always a download (never shown inline in the page's origin), its type as the content says.
    return send_file(
        io.BytesIO(found.data),
        mimetype=found.content_type,
        as_attachment=True,
        download_name=found.filename,
        max_age=0,
    )


@bp.get("/repairs/<public_id>/withdraw")
def repair_withdraw_form(public_id: str) -> Any:
    case = _repair_or_404(public_id)
    if not case.pending:
        return redirect(url_for("citizen.repair", public_id=public_id))
    return render_template("citizen/repair_withdraw.html", case=case)


@bp.post("/repairs/<public_id>/withdraw")
def repair_withdraw(public_id: str) -> Any:
    case = _repair_or_404(public_id)
    if not case.pending:
        return redirect(url_for("citizen.repair", public_id=public_id))
    repairs.withdraw(db_session(), me(), case.application, now=now())
    return redirect(url_for("citizen.repair", public_id=public_id, withdrawn=1))


# --- the credit code -------------------------------------------------------------------------------


def _issue() -> tokens.CreditCode | None:
    citizen = me()
    try:
        return issue_credit_code(
            db_session(), settings(), citizen, now=now(), actor=queries.actor_of(citizen)
        )
    except NotScored:
        return None


def _fresh_code() -> dict[str, Any] | None:
    """A fresh code as the page draws it: the token only (the browser makes the QR), < 1 KB."""
    code = _issue()
    if code is None:
        return None
    return {
        "token": code.token,
        "expires_at": code.expires_at.isoformat(),
        "expires_in": max(0, int((code.expires_at - now()).total_seconds())),
    }


@bp.get("/code")
def code() -> Any:
    fresh = _fresh_code()
    return render_template(
        "citizen/code.html", fresh=fresh, lifetime=settings().code_lifetime_seconds
    )


@bp.get("/code.json")
def code_json() -> Any:
    fresh = _fresh_code()
    if fresh is None:
        return Response(json.dumps({"error": "not-scored"}), 409, mimetype="application/json")
    return Response(json.dumps(fresh, separators=(",", ":")), mimetype="application/json")


@bp.get("/code.png")
def code_png() -> Any:
    """A fresh code drawn by the server, for a browser without scripts (the page links here from its
    <noscript>): it does not renew itself; opening it again gives a new one."""
    code = _issue()
    if code is None:
        return redirect(url_for("citizen.code"))
    return Response(qr.render_png(code.token), mimetype="image/png")


# --- benefits and checks ---------------------------------------------------------------------------


@bp.get("/benefits")
def benefits() -> Any:
    """Search, a category, a district ("near me"): all in the query string, so links keep them."""
    citizen = me()
    listed = my_benefits(db_session(), citizen, today=today(), actor=queries.actor_of(citizen))
    args = request.args
    page = {
        "benefits_url": benefits_url,
        "district_name": district_name,
        "eligible": sum(1 for b in listed if b.eligible),
        "total": len(listed),
    }
    try:
        query = benefit_search.parse_query(
            args.get("q", ""),
            args.get("category", ""),
            args.get("district", ""),
            args.get("condition", ""),
            listed,
        )
    except benefit_search.QueryError as error:
        # What was typed stays in the box to be corrected, less what cannot be shown.
        typed = "".join(c for c in args.get("q", "")[:500] if c.isprintable())
        return render_template(
            "citizen/benefits.html",
            error=t(error.zh, error.en),
            query=benefit_search.BenefitQuery(typed),
            results=None,
            **page,
        ), 400
    return render_template(
        "citizen/benefits.html",
        error=None,
        query=query,
        results=benefit_search.find_benefits(listed, query),
        **page,
    )


def benefits_url(query: Any, **changes: str | None) -> str:
    """The benefits page with ``query``'s filters, some changed (None drops one)."""
    values = {
        "q": query.text,
        "category": query.category,
        "district": query.district,
        "condition": query.condition,
        **changes,
    }
    return url_for("citizen.benefits", **{k: v for k, v in values.items() if v})


def district_name(code: str) -> str:
    return t(*benefit_search.DISTRICT_NAMES[code])


@bp.get("/checks")
def checks() -> Any:
    """Local venues' checks and partner cities' questions, newest first, in one list."""
    citizen = me()
    session_ = db_session()
    actor = queries.actor_of(citizen)
    local = checks_of_citizen(session_, citizen, actor=actor, limit=500)
    remote = partner_checks_of_citizen(session_, settings(), citizen, actor=actor, limit=500)
    merged: list[tuple[str, Any]] = [("local", c) for c in local] + [("partner", q) for q in remote]
    merged.sort(key=lambda item: item[1].at, reverse=True)
    # A partner's scenario is named as its bulletin names it (a code of its own otherwise).
    benefit_names = {
        (offer.partner, str(b.get("code"))): (str(b.get("name_zh")), str(b.get("name_en")))
        for offer in (partner_offers(session_, settings()) if remote else [])
        for b in offer.benefits
        if isinstance(b, dict) and b.get("name_zh") and b.get("name_en")
    }
    return render_template("citizen/checks.html", checks=merged, benefit_names=benefit_names)


# --- partner cities (跨城互认) ------------------------------------------------------------------------

CHANNEL = "citizen-page"


def _city_names() -> dict[str, tuple[str, str]]:
    """Every city the held trust list names (whatever its status), by issuer code."""
    trust_list = held_list(db_session(), settings())
    names = {"*": ("全部合作城市", "all partner cities")}
    if trust_list is not None:
        names.update({code: (m.name_zh, m.name_en) for code, m in trust_list.members.items()})
    return names


def city_name(code: str, names: dict[str, tuple[str, str]]) -> str:
    zh, en = names.get(code, (code, code))
    return t(zh, en)


def category_name(code: str | None) -> str:
    """A category as the federation's value set names it, else as this city does, else its code."""
    if not code:
        return ""
    if "cz_categories" not in g:
        trust_list = held_list(db_session(), settings())
        listed = trust_list.value_sets.get("categories", []) if trust_list else []
        g.cz_categories = {
            str(c["code"]): (str(c["name_zh"]), str(c["name_en"]))
            for c in listed
            if isinstance(c, dict) and {"code", "name_zh", "name_en"} <= c.keys()
        }
    if code in g.cz_categories:
        return t(*g.cz_categories[code])
    if code in CATEGORIES:
        return t(CATEGORIES[code][1], CATEGORIES[code][2])
    return code


def _standing(citizen: Citizen) -> set[str]:
    return {row.partner for row in cross_city.standing(db_session(), citizen.id)}


def _shares(partner: str, standing: set[str]) -> bool:
    if partner == cross_city.ALL:
        return bool(standing)  # "stop sharing with all" ends every standing consent
    return cross_city.ALL in standing or partner in standing


@dataclass(frozen=True)
class ConsentLine:
    at: dt.datetime
    partner: str
    given: bool
    channel: str | None


@bp.get("/partners")
def partners() -> Any:
    citizen = me()
    session_ = db_session()
    active = partner_cities(session_, settings())
    standing = _standing(citizen)
    names = _city_names()
    lines = []
    for change in cross_city.history(session_, citizen, actor=queries.actor_of(citizen)):
        lines.append(ConsentLine(change.given_at, change.partner, True, change.channel))
        if change.withdrawn_at is not None:
            lines.append(ConsentLine(change.withdrawn_at, change.partner, False, None))
    lines.sort(key=lambda line: line.at, reverse=True)
    flash = None
    for key, given in (("shared", True), ("stopped", False)):
        code = request.args.get(key)
        if code and code in names:
            flash = (given, city_name(code, names))
    return render_template(
        "citizen/partners.html",
        active=active,
        everyone=cross_city.ALL in standing,
        standing=standing,
        # Consents that still stand for a city that is no longer an active partner.
        inactive=sorted(standing - {cross_city.ALL} - {m.issuer for m in active}),
        names=names,
        city_name=city_name,
        lines=lines,
        flash=flash,
        scored=citizen.consent_given,
    )


@bp.post("/partners")
def share() -> Any:
    citizen = me()
    partner = request.form.get("partner", "")
    if partner != cross_city.ALL and partner not in {
        m.issuer for m in partner_cities(db_session(), settings())
    }:
        return render_template(
            "citizen/message.html",
            title=t("不是合作城市", "Not a partner city"),
            text=t(
                "该城市目前不是本市的合作城市，无法共享。",
                "That city is not a partner city now; nothing was shared.",
            ),
        ), 422
    cross_city.give(
        db_session(), citizen, partner, channel=CHANNEL, actor=queries.actor_of(citizen)
    )
    return redirect(url_for("citizen.partners", shared=partner))


def _remaining_after(partner: str, standing: set[str]) -> list[str]:
    """Who the citizen still shares with, by name, once sharing with all turns into a list."""
    active = {m.issuer for m in partner_cities(db_session(), settings())}
    return sorted((active | standing) - {cross_city.ALL, partner})


@bp.get("/partners/stop")
def stop_form() -> Any:
    citizen = me()
    partner = request.args.get("partner", "")
    standing = _standing(citizen)
    if not _shares(partner, standing):
        return redirect(url_for("citizen.partners"))
    names = _city_names()
    converts = partner != cross_city.ALL and cross_city.ALL in standing
    return render_template(
        "citizen/partner_stop.html",
        partner=partner,
        name=city_name(partner, names),
        remaining=[city_name(c, names) for c in _remaining_after(partner, standing)]
        if converts
        else None,
        lifetime=settings().code_lifetime_seconds,
    )


@bp.post("/partners/stop")
def stop_sharing() -> Any:
    """Withdraw at once. Stopping one city while sharing with all keeps the others by name."""
    citizen = me()
    session_ = db_session()
    actor = queries.actor_of(citizen)
    partner = request.form.get("partner", "")
    standing = _standing(citizen)
    if not _shares(partner, standing):
        return redirect(url_for("citizen.partners"))
    cross_city.stop_sharing(
        session_,
        citizen,
        partner,
        partners=[m.issuer for m in partner_cities(session_, settings())],
        channel=CHANNEL,
        actor=actor,
    )
    return redirect(url_for("citizen.partners", stopped=partner))


@bp.get("/partners/benefits")
def partner_benefits() -> Any:
    citizen = me()
    found = queries.recognition(db_session(), settings(), citizen, actor=queries.actor_of(citizen))
    return render_template(
        "citizen/partner_benefits.html",
        view=found,
        tier=common_tier(found.level) if found.level else None,
    )


# --- my data ---------------------------------------------------------------------------------------


@bp.get("/data")
def my_data() -> Any:
    return render_template("citizen/data.html")


@bp.get("/data.json")
def data_json() -> Any:
    citizen = me()
    held = queries.everything_held(
        db_session(), citizen, today=today(), now=now(), settings=settings()
    )
    # The links live above the citizen domain (push): the shell adds them to what is held.
    held["links"] = _links_held(citizen)
    body = json.dumps(held, ensure_ascii=False, indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": f"attachment; filename=my-credit-data-{today().isoformat()}.json"
        },
    )


def _links_held(citizen: Citizen) -> list[dict[str, Any]]:
    """Every link the citizen made with an operator's system: who, what it shares, the pseudonym
    that operator knows them by, since when, and whether and by whom it was revoked."""
    return [
        {
            "operator": {"zh": line.operator_zh, "en": line.operator_en},
            "system": line.system,
            "pseudonym": line.link.pseudonym,
            "shares": list(line.link.shares),
            "since": line.link.created_at.isoformat(),
            "revoked_at": line.link.revoked_at.isoformat() if line.link.revoked_at else None,
            "revoked_by": line.link.revoked_by,
        }
        for line in authorize.links_of_citizen(db_session(), citizen)
    ]


@bp.get("/report")
def report() -> Any:
    """What the records page says, record by record, in a form to print or hand over; city time."""
    citizen = me()
    session_ = db_session()
    held = queries.everything_held(session_, citizen, today=today(), now=now(), settings=settings())
    explanation = queries.explain_for_page(session_, citizen, today=today())
    return render_template(
        "citizen/report.html",
        held=held,
        e=explanation,
        groups=queries.record_groups(explanation.records),
        names=queries.item_names(session_),
        produced_at=now(),
        # The export keeps ISO instants in UTC; the report shows them as every page does.
        at=lambda iso: local_time(dt.datetime.fromisoformat(iso)) if iso else "—",
    )
