"""Benefit scenarios (信易+): what a venue grants to which tiers. The full registry arrives with issue 4."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="scenarios",
    models=("scenarios.models",),
    scopes={
        "scenarios:write": (
            "create, edit, submit and suspend the operator's own scenarios (operators)"
        ),
    },
    client_kinds=("operator",),
    api=("citycredit.web.api.scenarios:blueprint",),
    admin_pages=("citycredit.web.admin.scenarios", "citycredit.web.admin.venues"),
    cli=("citycredit.cli.scenarios:COMMANDS",),
)
