"""What the SDK returns: small frozen dataclasses, never raw dictionaries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Benefit",
    "Issuer",
    "LinkedMember",
    "OfflineVerification",
    "Redemption",
    "Tier",
    "UploadResult",
    "Verification",
]


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
class Issuer:
    """The city that issued a code: its issuer code and names."""

    code: str
    name_zh: str
    name_en: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Issuer:
        return cls(
            code=str(data["code"]),
            name_zh=str(data.get("name_zh") or ""),
            name_en=data.get("name_en"),
        )


@dataclass(frozen=True)
class LinkedMember:
    """A member who linked your system, as the city says now (``GET /api/v1/links/{pseudonym}``)."""

    pseudonym: str
    common_level: int | None  # 5 best … 1; None: the citizen has no score now
    valid_until: dt.datetime  # trust the level until then; ask again before
    scenarios: tuple[str, ...]  # your scenarios the member qualifies for now

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> LinkedMember:
        level = data.get("common_level")
        valid_until = dt.datetime.fromisoformat(data["valid_until"])
        return cls(
            pseudonym=str(data["pseudonym"]),
            common_level=None if level is None else int(level),
            valid_until=valid_until if valid_until.tzinfo else valid_until.replace(tzinfo=dt.UTC),
            scenarios=tuple(str(code) for code in data.get("scenarios", ())),
        )


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
    # A visitor: the code was issued by a partner city (``issuer``); ``tier`` is the common level.
    visitor: bool = False
    issuer: Issuer | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Verification:
        issuer = data.get("issuer")
        return cls(
            id=data["verification_id"],
            eligible=bool(data["eligible"]),
            tier=Tier(**data["tier"]),
            scenario=data["scenario"],
            benefit=Benefit(**data["benefit"]),
            verified_at=dt.datetime.fromisoformat(data["verified_at"]),
            scenario_version=data.get("scenario_version"),
            visitor=bool(data.get("visitor", False)),
            issuer=Issuer.from_api(issuer) if isinstance(issuer, dict) else None,
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
    """A code checked without contacting the city: the own city's against its cached JWKS, a visitor's
    against the cached, signature-checked trust list. Nothing is recorded.

    For a ``visitor`` ``local_tier`` is None: a venue learns a partner city's common level only.
    """

    issuer: str
    tier_level: int
    local_tier: str | None
    kid: str
    expires_at: dt.datetime
    code_id: str
    issuer_name_zh: str | None = None
    issuer_name_en: str | None = None
    visitor: bool = False

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
