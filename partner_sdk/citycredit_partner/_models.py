"""What the SDK returns: small frozen dataclasses, never raw dictionaries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = ["Benefit", "OfflineVerification", "Redemption", "Tier", "UploadResult", "Verification"]


@dataclass(frozen=True)
class Tier:
    level: int  # common scale: 5 best … 1
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Benefit:
    zh: str
    en: str


@dataclass(frozen=True)
class Verification:
    id: str
    eligible: bool
    tier: Tier
    scenario: str
    benefit: Benefit
    verified_at: dt.datetime
    # The version of the scenario's rules the answer was given under (None from older cities).
    scenario_version: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Verification:
        return cls(
            id=data["verification_id"],
            eligible=bool(data["eligible"]),
            tier=Tier(**data["tier"]),
            scenario=data["scenario"],
            benefit=Benefit(**data["benefit"]),
            verified_at=dt.datetime.fromisoformat(data["verified_at"]),
            scenario_version=data.get("scenario_version"),
        )


@dataclass(frozen=True)
class Redemption:
    id: str
    verification_id: str
    scenario: str
    benefit: Benefit
    redeemed_at: dt.datetime
    scenario_version: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Redemption:
        return cls(
            id=data["redemption_id"],
            verification_id=data["verification_id"],
            scenario=data["scenario"],
            benefit=Benefit(**data["benefit"]),
            redeemed_at=dt.datetime.fromisoformat(data["redeemed_at"]),
            scenario_version=data.get("scenario_version"),
        )


@dataclass(frozen=True)
class OfflineVerification:
    """A code checked against the cached JWKS, without contacting the city. Nothing is recorded."""

    issuer: str
    tier_level: int
    local_tier: str
    kid: str
    expires_at: dt.datetime
    code_id: str

    def qualifies(self, min_tier_level: int) -> bool:
        return self.tier_level >= min_tier_level


@dataclass(frozen=True)
class UploadResult:
    batch_id: int
    rows: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    errors: list[dict[str, Any]]
