"""Linking an operator's system with consent, on the citizen's side (issue 15; push.authorize):

- ``GET /oauth/authorize``: the operator's system sends the citizen here (OAuth 2 authorization code,
  RFC 6749 §4.1, with PKCE S256, RFC 7636). The request is checked first; a bad client or redirect
  URI is shown as a page (never redirected), other errors go back with ``error`` and ``state``
  (§4.1.2.1). A citizen not signed in signs in as usual and comes back here.
- the consent page: who asks, exactly what it will and will not receive, 同意 / 拒绝 (a CSRF-protected
  POST to the same address), answered by a redirect to the registered URI with the code or
  ``error=access_denied``.
- ``/me/links`` (我的授权): every link, what it shares, since when, its status; revoking is one tap.

The pages share the citizen pages' session, CSRF token, language, templates and navigation.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import BadRequest

from citizen import queries
from citycredit.core.db import utcnow
from citycredit.web import security
from citycredit.web.citizen import web
from citycredit.web.context import db_session, platform_of
from push import authorize, links

bp = Blueprint("citizen_links", __name__)

SHARE_WORDS = {
    "common_level": (
        "通用信用等级（1–5 级）及其有效期",
        "your common level (1–5) and until when it holds",
    ),
    "scenarios": ("您在该单位可享受的权益项目", "which of its benefits you qualify for"),
}


def init_links(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.before_request
def _guard() -> Any:
    answer = web._guard()
    if request.endpoint == "citizen_links.authorize_page" and request.method == "GET":
        # The request is checked before anything else; then the citizen is asked to sign in.
        return None
    return answer


bp.context_processor(web._globals)
bp.after_request(web._no_store)
bp.errorhandler(BadRequest)(web._bad_request)


def _refused_page(exc: authorize.AuthorizeError, status: int = 400) -> Any:
    return render_template(
        "citizen/link_refused.html",
        title=web.t("无法完成授权", "This link cannot be made"),
        text=web.t(
            "发起授权的系统提供的信息有误，请回到该系统重试，或联系其运营单位。",
            "The system that sent you here sent a request that is not valid. Go back to it and try "
            "again, or contact its operator.",
        ),
        detail=exc.description,
    ), status


def _go_back(request_: authorize.AuthorizationRequest | None, uri: str, **params: str) -> Any:
    state = request_.state if request_ is not None else None
    return redirect(authorize.redirect_to(uri, **params, state=state))


def _checked(params: Any) -> authorize.AuthorizationRequest | Any:
    try:
        return authorize.validate_request(db_session(), params)
    except authorize.AuthorizeError as exc:
        if not exc.redirect:
            return _refused_page(exc)
        state = params.get("state")
        return redirect(
            authorize.redirect_to(
                params["redirect_uri"],
                error=exc.error,
                error_description=exc.description,
                state=state if _echoable(state) else None,
            )
        )


def _echoable(state: Any) -> bool:
    return isinstance(state, str) and len(state) <= authorize.MAX_STATE and state.isprintable()


@bp.get("/oauth/authorize")
def authorize_page() -> Any:
    checked = _checked(request.args)
    if not isinstance(checked, authorize.AuthorizationRequest):
        return checked
    if g.get("citizen") is None:
        session[web.NEXT] = request.full_path
        return redirect(url_for("citizen.login", expired=1 if g.get("expired") else None))
    citizen = web.me()
    existing = links.live_link(db_session(), citizen.id, checked.operator.id)
    page = render_template(
        "citizen/link_consent.html",
        req=checked,
        scored=citizen.consent_given,
        existing=existing,
        shares=[SHARE_WORDS[s] for s in links.SHARES],
    )
    response = make_response(page, 200 if citizen.consent_given else 409)
    # The answer (a redirect after the form's POST) goes to the operator's registered address.
    return security.allow_form_redirect(response, checked.redirect_uri)


@bp.post("/oauth/authorize")
def decide() -> Any:
    checked = _checked(request.form)
    if not isinstance(checked, authorize.AuthorizationRequest):
        return checked
    citizen = web.me()
    decision = request.form.get("decision")
    if decision == "deny":
        return _go_back(
            checked,
            checked.redirect_uri,
            error="access_denied",
            error_description="the citizen said no",
        )
    if decision != "approve":
        raise BadRequest("decision")
    settings = platform_of(current_app).settings
    try:
        code = authorize.approve(
            db_session(),
            checked,
            citizen,
            id_hash_key=settings.id_hash_key,
            # The token endpoint's clock: the code's 10 minutes are checked there.
            now=utcnow(),
            actor=queries.actor_of(citizen),
        )
    except links.LinkError:
        return render_template(
            "citizen/link_refused.html",
            title=web.t("需要先授权信用评分", "Consent to scoring comes first"),
            text=web.t(
                "您尚未授权信用评分，没有可以共享的等级，因此不能授权其他系统读取。",
                "You have not consented to scoring, so there is no level to share and no system "
                "can be linked.",
            ),
            detail=None,
            consent_link=True,
        ), 409
    return _go_back(checked, checked.redirect_uri, code=code)


# --- 我的授权 ---------------------------------------------------------------------------------------


@bp.get("/me/links")
def links_page() -> Any:
    citizen = web.me()
    return render_template(
        "citizen/links.html",
        lines=authorize.links_of_citizen(db_session(), citizen),
        share_words=SHARE_WORDS,
        revoked=request.args.get("revoked") == "1",
    )


@bp.post("/me/links/<int:link_id>/revoke")
def revoke(link_id: int) -> Any:
    """One tap: the link ends at once, and the operator is told (``link.revoked``) by the outbox."""
    citizen = web.me()
    link = authorize.own_link(db_session(), citizen, link_id)
    if link is None:
        return render_template(
            "citizen/message.html",
            title=web.t("找不到该授权", "No such link"),
            text=web.t("该授权不存在。", "That link does not exist."),
        ), 404
    links.revoke_link(db_session(), link, by="citizen", actor=queries.actor_of(citizen))
    return redirect(url_for("citizen_links.links_page", revoked=1))
