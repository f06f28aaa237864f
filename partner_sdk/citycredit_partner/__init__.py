"""citycredit partner SDK: verify citizens' QR credit codes, redeem benefits, upload records.

from citycredit_partner import PartnerClient, NotEligibleError

with PartnerClient(client_id, client_secret, "https://credit.example.gov.cn") as city:
    result = city.verify(scanned_text, "library-deposit-free")
    if result.eligible:
        city.redeem(scanned_text, "library-deposit-free")

Visitors from partner cities are verified offline against the federation's trust list:
``PartnerClient(..., trust_anchor=fingerprint).verify_offline(code).visitor``.
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
)
from ._models import (
    Benefit,
    Issuer,
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

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AlreadyRedeemedError",
    "AuthenticationError",
    "Benefit",
    "CodeRejectedError",
    "ConflictError",
    "InvalidRequestError",
    "Issuer",
    "NotEligibleError",
    "NotFoundError",
    "OfflineVerification",
    "PartnerClient",
    "PartnerError",
    "PermissionDeniedError",
    "QuotaExhaustedError",
    "RateLimitError",
    "Redemption",
    "ScenarioUnavailableError",
    "ServerError",
    "Tier",
    "TrustAnchor",
    "TrustList",
    "TrustListCache",
    "TrustListError",
    "UploadResult",
    "Verification",
    "jwk_thumbprint",
    "public_jwk",
    "verify_trust_list",
]
__version__ = "0.1.0"
