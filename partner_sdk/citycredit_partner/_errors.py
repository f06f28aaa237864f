"""Errors raised by the SDK. Catch :class:`PartnerError` for all of them.

PartnerError
├── APIConnectionError          the city could not be reached (after retries)
├── CodeRejectedError           the credit code must not be honoured (.reason: expired, bad-signature…)
├── TrustListError              a federation trust list was refused (.reason: trust-list-rollback…)
├── WebhookRejectedError        a webhook that must not be processed; answer 400 (.reason)
│   ├── WebhookHeaderError      missing-header, malformed-header
│   ├── WebhookSignatureError   bad-signature: no signature matches any of the receiver's secrets
│   ├── WebhookTimestampError   timestamp-too-old, timestamp-too-new: outside the replay window
│   └── WebhookPayloadError     malformed-body: signed by the city, but not an event the SDK reads
└── APIStatusError              the API answered with an error (.status, .problem)
    ├── AuthenticationError     401: wrong credentials, revoked client
    ├── PermissionDeniedError   403: missing scope
    │   └── NotEligibleError    403: the citizen does not qualify (nothing redeemed)
    ├── NotFoundError           404: unknown scenario, unknown citizen
    ├── ConflictError           409
    │   ├── AlreadyRedeemedError   this code was already redeemed for this benefit
    │   ├── QuotaExhaustedError    a quota is used up (per citizen per day/month, or in total)
    │   └── ScenarioUnavailableError  suspended, outside its dates, or not offered at this venue
    ├── InvalidRequestError     400 / 422: the request itself is wrong (.errors)
    ├── RateLimitError          429
    └── ServerError             5xx
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AlreadyRedeemedError",
    "AuthenticationError",
    "CodeRejectedError",
    "ConflictError",
    "InvalidRequestError",
    "NotEligibleError",
    "NotFoundError",
    "PartnerError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitError",
    "ScenarioUnavailableError",
    "ServerError",
    "TrustListError",
    "WebhookHeaderError",
    "WebhookPayloadError",
    "WebhookRejectedError",
    "WebhookSignatureError",
    "WebhookTimestampError",
]


class PartnerError(Exception):
    """Base of every error the SDK raises."""


class APIConnectionError(PartnerError):
    """The city's API could not be reached, even after retrying."""


class CodeRejectedError(PartnerError):
    """A credit code that must not be honoured: expired, tampered, unknown key, wrong issuer…

    ``reason`` is the documented problem type (``token-expired``, ``bad-signature``, ``unknown-key``,
    ``wrong-issuer``, ``algorithm-not-allowed``, ``token-unsigned``, ``token-malformed``). Offline
    checks raise it too, with ``status`` None. A visitor's code (issued by a partner city) may also be
    refused as ``issuer-not-member``, ``member-suspended``, ``mapping-unknown``,
    ``no-cross-city-consent``, or with a ``trust-list-*`` reason when no usable trust list is held.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
    ):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status
        self.problem = problem or {}


class TrustListError(PartnerError):
    """A federation trust list that must not be used; the last good list keeps serving.

    ``reason`` is ``trust-list-bad-signature``, ``trust-list-entry-unsigned``, ``trust-list-rollback``
    or ``trust-list-too-old`` (docs/FEDERATION.md, "The trust list").
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class WebhookRejectedError(PartnerError):
    """A webhook request that must not be processed; answer it with 400 (the city retries it).

    ``reason`` is ``missing-header``, ``malformed-header``, ``bad-signature``, ``timestamp-too-old``,
    ``timestamp-too-new`` or ``malformed-body``; ``webhook_id`` is the ``webhook-id`` header as
    received (unverified unless the reason is ``timestamp-*`` or ``malformed-body``).
    """

    def __init__(self, reason: str, detail: str, *, webhook_id: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.webhook_id = webhook_id


class WebhookHeaderError(WebhookRejectedError):
    """A ``webhook-id``, ``webhook-timestamp`` or ``webhook-signature`` header missing or unreadable."""


class WebhookSignatureError(WebhookRejectedError):
    """No ``v1`` signature matches the body under any of the receiver's secrets: forged, tampered,
    or signed with a secret the receiver does not hold (rotated without the new one)."""


class WebhookTimestampError(WebhookRejectedError):
    """Genuinely signed, but sent outside the replay window: a replay, or a clock that is off."""


class WebhookPayloadError(WebhookRejectedError):
    """Genuinely signed, but the body is not a JSON event the SDK can read."""


class APIStatusError(PartnerError):
    """The API answered with an RFC 9457 problem."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotEligibleError(PermissionDeniedError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class AlreadyRedeemedError(ConflictError):
    pass


class QuotaExhaustedError(ConflictError):
    pass


class ScenarioUnavailableError(ConflictError):
    """The scenario is suspended, outside its validity dates, or not honoured at this venue."""


class InvalidRequestError(APIStatusError):
    @property
    def errors(self) -> dict[str, Any]:
        found: dict[str, Any] = self.problem.get("errors", {})
        return found


class RateLimitError(APIStatusError):
    pass


class ServerError(APIStatusError):
    pass


_BY_TYPE: dict[str, type[APIStatusError]] = {
    "not-eligible": NotEligibleError,
    "already-redeemed": AlreadyRedeemedError,
    "quota-exhausted": QuotaExhaustedError,
    "scenario-unavailable": ScenarioUnavailableError,
}
_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
    429: RateLimitError,
}
CODE_REJECTIONS = frozenset(
    {
        "token-malformed",
        "token-unsigned",
        "algorithm-not-allowed",
        "unknown-key",
        "bad-signature",
        "token-expired",
        "wrong-issuer",
        # A visitor's code, refused by the venue's city (docs/FEDERATION.md).
        "issuer-not-member",
        "member-suspended",
        "trust-list-too-old",
        "mapping-unknown",
        "no-cross-city-consent",
    }
)


def error_from_response(status: int, problem: dict[str, Any]) -> PartnerError:
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    if slug in CODE_REJECTIONS:
        return CodeRejectedError(
            slug, str(problem.get("detail", "")), status=status, problem=problem
        )
    cls = (
        _BY_TYPE.get(slug)
        or _BY_STATUS.get(status)
        or (ServerError if status >= 500 else APIStatusError)
    )
    return cls(status, problem)
