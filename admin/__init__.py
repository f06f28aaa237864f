"""The operators' and city credit office's web admin (server-rendered, Simplified Chinese first)."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="admin",
    models=("admin.models",),
    web=("citycredit.web.admin.web:init_admin",),
    admin_pages=(
        "citycredit.web.admin.account",
        "citycredit.web.admin.pages",
        "citycredit.web.admin.users",
    ),
    cli=("citycredit.cli.admin:admin",),
)
