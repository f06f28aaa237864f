"""citycredit partner SDK: verify citizens' QR credit codes, redeem benefits, upload records.

from citycredit_partner import PartnerClient, NotEligibleError

with PartnerClient(client_id, client_secret, "https://credit.example.gov.cn") as city:
    result = city.verify(scanned_text, "library-deposit-free")
    if result.eligible:
        city.redeem(scanned_text, "library-deposit-free")
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
)
from ._models import Benefit, OfflineVerification, Redemption, Tier, UploadResult, Verification

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "AlreadyRedeemedError",
    "AuthenticationError",
    "Benefit",
    "CodeRejectedError",
    "ConflictError",
    "InvalidRequestError",
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
    "UploadResult",
    "Verification",
]
__version__ = "0.1.0"
