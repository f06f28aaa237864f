"""The citizen's phone page: sign-in, consent, my points and why, my QR code, benefits, who checked me."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="citizen",
    models=("citizen.models",),
    jobs="citizen.jobs:JOBS",
    web=("citycredit.web.citizen.web:init_citizen",),
    admin_pages=("citycredit.web.admin.objections",),
)
