"""How a citizen proves who they are: a pluggable identity provider.

A provider has two steps. ``start`` takes what the citizen typed (their ID number) and sends a challenge
(an SMS, a push to the city app…); ``finish`` checks the answer and returns the citizen. A single
sign-on provider would return ``redirect_to`` from ``start`` and receive the callback's code in
``finish``. Providers are registered in :data:`PROVIDERS` and chosen by ``CITYCREDIT_CITIZEN_IDENTITY``.

The demo provider sends a six-digit one-time code to the server log (and, in demo mode only, shows it
on screen). Only an HMAC of the code is stored; a challenge allows five attempts and lives five minutes;
a citizen may ask for five codes per ten minutes. Whether an ID number is known is never revealed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citizen.models import SignInChallenge
from citycredit.core.config import Settings
from citycredit.core.idnumber import InvalidIdNumber, id_hash, parse_id_number
from points_engine.models import Citizen

log = logging.getLogger(__name__)

CHALLENGE_LIFETIME = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 5
MAX_CHALLENGES = 5
CHALLENGE_WINDOW = dt.timedelta(minutes=10)


class SignInError(Exception):
    """A sign-in step failed; the message is for the citizen, in both languages."""

    def __init__(self, zh: str, en: str):
        super().__init__(en)
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class Challenge:
    challenge_id: str
    expires_at: dt.datetime
    sent_to_zh: str
    sent_to_en: str
    # Demo mode only: the code itself, shown on screen so the demo needs no phone.
    shown_code: str | None = None
    # A single sign-on provider sends the browser here instead of asking for a code.
    redirect_to: str | None = None


class IdentityProvider(ABC):
    name: ClassVar[str]

    @abstractmethod
    def start(
        self, session: Session, settings: Settings, typed: str, *, now: dt.datetime
    ) -> Challenge: ...

    @abstractmethod
    def finish(
        self,
        session: Session,
        settings: Settings,
        challenge_id: str,
        answer: str,
        *,
        now: dt.datetime,
    ) -> Citizen: ...


def _code_hash(settings: Settings, challenge_id: str, code: str) -> str:
    key = settings.secret_key.encode()
    return hmac.new(key, f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


class DemoOneTimeCode(IdentityProvider):
    """Six-digit codes "sent" to the server log: the demo and tests; a city plugs in SMS or its app."""

    name = "demo"

    def start(
        self, session: Session, settings: Settings, typed: str, *, now: dt.datetime
    ) -> Challenge:
        try:
            citizen_id = parse_id_number(typed, today=now.astimezone(settings.tz).date())
        except InvalidIdNumber as exc:
            raise SignInError(
                f"身份证号码无效：{_zh_reason(str(exc))}", f"not a valid ID number: {exc}"
            ) from None
        digest = id_hash(settings.id_hash_key, citizen_id)
        recent = session.scalar(
            select(func.count())
            .select_from(SignInChallenge)
            .where(
                SignInChallenge.id_hash == digest,
                SignInChallenge.created_at > now - CHALLENGE_WINDOW,
            )
        )
        if (recent or 0) >= MAX_CHALLENGES:
            raise SignInError(
                "验证码发送过于频繁，请十分钟后再试。",
                "Too many codes asked for; try again in ten minutes.",
            )
        challenge_id = secrets.token_urlsafe(16)
        code = f"{secrets.randbelow(1_000_000):06d}"
        session.add(
            SignInChallenge(
                public_id=challenge_id,
                id_hash=digest,
                birth_date=citizen_id.birth_date,
                code_hash=_code_hash(settings, challenge_id, code),
                created_at=now,
                expires_at=now + CHALLENGE_LIFETIME,
                attempts=0,
            )
        )
        session.flush()
        # The log names the challenge, never the ID number.
        log.warning("demo sign-in: one-time code %s for challenge %s", code, challenge_id)
        return Challenge(
            challenge_id,
            now + CHALLENGE_LIFETIME,
            "演示环境：验证码已写入服务器日志",
            "Demo: the code was written to the server log",
            shown_code=code if settings.demo_mode else None,
        )

    def finish(
        self,
        session: Session,
        settings: Settings,
        challenge_id: str,
        answer: str,
        *,
        now: dt.datetime,
    ) -> Citizen:
        challenge = session.scalar(
            select(SignInChallenge).where(SignInChallenge.public_id == challenge_id)
        )
        expired = SignInError(
            "验证码已失效，请重新获取。", "The code has expired; ask for a new one."
        )
        if challenge is None or challenge.used_at is not None or challenge.expires_at <= now:
            raise expired
        if challenge.attempts >= MAX_ATTEMPTS:
            raise SignInError(
                "错误次数过多，请重新获取验证码。", "Too many wrong codes; ask for a new one."
            )
        challenge.attempts += 1
        expected = _code_hash(settings, challenge_id, answer.strip())
        if not hmac.compare_digest(expected, challenge.code_hash):
            session.flush()
            left = MAX_ATTEMPTS - challenge.attempts
            raise SignInError(
                f"验证码不正确，还可尝试 {left} 次。", f"Wrong code; {left} attempt(s) left."
            )
        challenge.used_at = now
        citizen = session.scalar(select(Citizen).where(Citizen.id_hash == challenge.id_hash))
        if citizen is None:
            # A first sign-in registers the citizen (no records, no consent yet).
            citizen = Citizen(id_hash=challenge.id_hash, birth_date=challenge.birth_date)
            session.add(citizen)
        session.flush()
        return citizen


def _zh_reason(reason: str) -> str:
    if "18 characters" in reason:
        return "应为18位"
    if "check digit" in reason:
        return "校验位不正确"
    return "格式或日期不正确"


PROVIDERS: dict[str, type[IdentityProvider]] = {DemoOneTimeCode.name: DemoOneTimeCode}


def provider_for(settings: Settings) -> IdentityProvider:
    try:
        return PROVIDERS[settings.citizen_identity]()
    except KeyError:
        raise RuntimeError(
            f"unknown citizen identity provider {settings.citizen_identity!r} "
            f"(known: {', '.join(PROVIDERS)})"
        ) from None
