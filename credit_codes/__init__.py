"""Signed QR credit codes (信用码), their verification by venues, and redemption of benefits (核销)."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="credit_codes",
    models=("credit_codes.models",),
    scopes={
        "verify": "verify citizens' credit codes (venues)",
        "redeem": "redeem benefits (venues)",
        "codes:issue": "issue credit codes to consenting citizens (the city's own app)",
    },
    client_kinds=("venue", "app", "city"),
    api=("citycredit.web.api.credit_codes:blueprint",),
    cli=("citycredit.cli.codes:COMMANDS",),
)
