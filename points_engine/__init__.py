"""The points engine: lawful records in, explainable scores and tiers out.

Free of Flask by design: every function takes plain data and a SQLAlchemy session, so the API, the admin,
the scheduler, the CLI, the benchmarks and the tests all call the same code.
"""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="points_engine",
    models=("points_engine.models",),
    jobs="points_engine.jobs:JOBS",
    scopes={"records:write": "upload records (data sources)"},
    client_kinds=("source",),
    api=(
        "citycredit.web.api.records:blueprint",
        "citycredit.web.api.rejections:blueprint",
        "citycredit.web.api.catalogue:blueprint",
    ),
    admin_pages=("citycredit.web.admin.catalogue", "citycredit.web.admin.quality"),
    cli=("citycredit.cli.engine:COMMANDS", "citycredit.cli.catalogue:COMMANDS"),
)
