"""The ground floor: configuration, database, audit, ID numbers, identities (API clients, actors), signing
keys, jobs and the domain registry. It imports no domain and no web framework."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="core",
    models=(
        "citycredit.core.audit",
        "citycredit.core.audit_chain",
        "citycredit.core.clients",
        "citycredit.core.keys",
        "citycredit.core.idempotency",
    ),
    jobs="citycredit.core.audit_chain:JOBS",
    cli=("citycredit.cli.audit:COMMANDS",),
)
