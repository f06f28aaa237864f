"""The federation of partner cities (十城互认): trust list, visitors' codes, tier exchange, bulletins.

Wire formats and the order of every check: docs/FEDERATION.md.
"""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="federation",
    models=("federation.models",),
    jobs="federation.jobs:JOBS",
    scopes={
        "tiers:exchange": (
            "ask a partner city for the common level of its citizen who presents themselves here, "
            "with that citizen's consent (the city's own systems)"
        ),
    },
    client_kinds=(),
    api=("citycredit.web.api.federation:blueprint",),
    admin_pages=("citycredit.web.admin.federation",),
    cli=("citycredit.cli.federation:COMMANDS",),
)
