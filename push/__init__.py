"""Pushing credit information to scenario systems (issue 15; docs/PUSH.md): a citizen links an
operator's system with consent (OAuth 2 authorization code with PKCE), the operator learns a pairwise
pseudonym and the common level, and signed webhooks (Standard Webhooks) tell it when that changes, when
a link is revoked, when scenarios change status and when the city's keys rotate. Events leave through a
transactional outbox: stored with the change that causes them, delivered at least once, in order per
subscription and pseudonym."""

from citycredit.core.registry import Domain

DOMAIN = Domain(
    name="push",
    models=("push.models",),
    jobs="push.jobs:JOBS",
    cli=("citycredit.cli.push_worker:COMMANDS", "citycredit.cli.links:COMMANDS"),
    scopes={
        "links:read": "read the links citizens made with this operator's system (pseudonym, level)",
        "webhooks:manage": "manage this client's webhook subscriptions and their secrets",
    },
    api=("citycredit.web.api.links:blueprint", "citycredit.web.api.webhooks:blueprint"),
    web=("citycredit.web.citizen.links:init_links",),
    admin_pages=("citycredit.web.admin.push",),
    listens={
        "scores.written": ("push.listeners:scores_written",),
        "consent.withdrawn": ("push.listeners:consent_withdrawn",),
        "scenario.status": ("push.listeners:scenario_status",),
        "keys.rotated": ("push.listeners:keys_rotated",),
    },
)
