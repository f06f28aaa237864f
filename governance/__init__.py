"""Governance outcomes published the next day (issue 11 §4): a signed, sequence-numbered bulletin of
each day's objection outcomes, repair outcomes and list changes, for the provincial / national
platform to pull or to receive by push before 08:00 city time. Wire format: docs/GOVERNANCE.md."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="governance",
    models=("governance.models",),
    jobs="governance.jobs:JOBS",
    scopes={
        "governance:read": (
            "read the city's signed daily governance bulletins (the provincial or national "
            "credit platform)"
        ),
        "lists:write": "file a department's red and black list decisions (a data source's system)",
    },
    client_kinds=(),  # the provincial platform's client is of kind "city"
    api=(
        "citycredit.web.api.governance:blueprint",
        "citycredit.web.api.governance:lists_blueprint",
    ),
    web=("citycredit.web.public_lists:init_lists",),
    admin_pages=(
        "citycredit.web.admin.bulletins",
        "citycredit.web.admin.lists",
        "citycredit.web.admin.reports",
    ),
    cli=("citycredit.cli.governance:COMMANDS", "citycredit.cli.reports:COMMANDS"),
)
