"""citycredit partner SDK: verify citizens' QR credit codes, redeem benefits, upload records.

from citycredit_partner import PartnerClient, NotEligibleError

with PartnerClient(client_id, client_secret, "https://credit.example.gov.cn") as city:
    result = city.verify(scanned_text, "library-deposit-free")
    if result.eligible:
        city.redeem(scanned_text, "library-deposit-free")

Visitors from partner cities are verified offline against the federation's trust list:
``PartnerClient(..., trust_anchor=fingerprint).verify_offline(code).visitor``.

Webhooks from the city (a linked member's level changed, a link revoked, …) are verified and
deduplicated by ``WebhookReceiver(secret, seen=SQLiteSeenStore(path)).process(body, headers, handler)``.
"""

from ._client import PartnerClient
from ._errors import (
    AlreadyRedeemedError,
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    CodeRejectedError,
    ConflictError,
    InvalidRequestError,
    NotEligibleError,
    NotFoundError,
    PartnerError,
    PermissionDeniedError,
    QuotaExhaustedError,
    RateLimitError,
    ScenarioUnavailableError,
    ServerError,
    TrustListError,
    WebhookHeaderError,
    WebhookPayloadError,
    WebhookRejectedError,
    WebhookSignatureError,
    WebhookTimestampError,
)
from ._models import (
    Benefit,
    Issuer,
    LinkedMember,
    OfflineVerification,
    Redemption,
    Tier,
    UploadResult,
    Verification,
)
from ._trustlist import (
    TrustAnchor,
    TrustList,
    TrustListCache,
    jwk_thumbprint,
    public_jwk,
    verify_trust_list,
)
from .webhooks import (
    InMemorySeenStore,
    KeysRotated,
    LinkRevoked,
    ScenarioChanged,
    SeenStore,
    SQLiteSeenStore,
    TierChanged,
    WebhookEvent,
    WebhookReceiver,
)

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AlreadyRedeemedError",
    "AuthenticationError",
    "Benefit",
    "CodeRejectedError",
    "ConflictError",
    "InMemorySeenStore",
    "InvalidRequestError",
    "Issuer",
    "KeysRotated",
    "LinkRevoked",
    "LinkedMember",
    "NotEligibleError",
    "NotFoundError",
    "OfflineVerification",
    "PartnerClient",
    "PartnerError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitError",
    "Redemption",
    "SQLiteSeenStore",
    "ScenarioChanged",
    "ScenarioUnavailableError",
    "SeenStore",
    "ServerError",
    "Tier",
    "TierChanged",
    "TrustAnchor",
    "TrustList",
    "TrustListCache",
    "TrustListError",
    "UploadResult",
    "Verification",
    "WebhookEvent",
    "WebhookHeaderError",
    "WebhookPayloadError",
    "WebhookReceiver",
    "WebhookRejectedError",
    "WebhookSignatureError",
    "WebhookTimestampError",
    "jwk_thumbprint",
    "public_jwk",
    "verify_trust_list",
]
__version__ = "0.1.0"
