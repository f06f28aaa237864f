"""The citizen's phone page: sign-in, consent, my points and why, my QR code, benefits, who checked me."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="citizen",
    models=("citizen.models",),
    jobs="citizen.jobs:JOBS",
    web=("citycredit.web.citizen.web:init_citizen",),
    scopes={
        "objections:answer": (
            "read the objections against the client's data source's records and answer them "
            "(a data source's system)"
        ),
    },
    api=("citycredit.web.api.objections:blueprint",),
    admin_pages=("citycredit.web.admin.objections", "citycredit.web.admin.repairs"),
)
