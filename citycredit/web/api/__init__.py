"""The partner API (``/api/v1``), its OpenAPI document and docs page, OAuth and the JWKS.

Built on flask-smorest: marshmallow schemas on every endpoint validate at the edge and document the
API; errors are RFC 9457 problems (``citycredit.web.api.problems``). The Swagger UI assets are served from
the installed ``swagger-ui-bundle`` package, so the docs work offline.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from flask import Flask, send_from_directory
from flask_smorest import Api

from citycredit.core.registry import all_scopes, installed_domains, resolve_all
from citycredit.web.api import oauth
from citycredit.web.api.openapi import (
    DOCUMENTED,
    Problem,
    eligibility_schema,
    register_problem_responses,
)
from citycredit.web.api.problems import init_problems

API_DOCS_ASSETS = "/api/docs/assets/"


class CityApi(Api):
    """flask-smorest's Api, documenting our RFC 9457 problem as the error response of every endpoint."""

    ERROR_SCHEMA = Problem
    # Each endpoint lists the statuses it answers (openapi.problems); no catch-all "default".
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        # flask-smorest documents errors as application/json; ours are application/problem+json.
        register_problem_responses(self.spec, self.ERROR_SCHEMA)


def init_api(app: Flask) -> Api:
    app.config.update(
        API_TITLE="citycredit partner API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=API_DOCS_ASSETS,
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Partner venues verify citizens' QR credit codes and redeem benefits; data "
                    "sources upload records. Authenticate with the OAuth 2 client-credentials grant "
                    "at /oauth/token. Every error is an RFC 9457 problem "
                    "(application/problem+json); its `type` is documented at that path (see "
                    "/problems/). Each operation lists the statuses it answers; a method a path "
                    "does not have is 405 with `Allow`; 429 and 503 carry `Retry-After`."
                )
            },
            "components": {
                "securitySchemes": {
                    "oauth2": {
                        "type": "oauth2",
                        "flows": {
                            "clientCredentials": {
                                "tokenUrl": "/oauth/token",
                                "scopes": _scopes(),
                            },
                            # A citizen links an operator's system (push domain; PKCE S256).
                            "authorizationCode": {
                                "authorizationUrl": "/oauth/authorize",
                                "tokenUrl": "/oauth/token",
                                "scopes": {k: v for k, v in _scopes().items() if k == "links:read"},
                            },
                        },
                    }
                }
            },
        },
    )
    api = CityApi(app)
    api.spec.components.schema("EligibilityRule", eligibility_schema())

    @app.get(API_DOCS_ASSETS + "<path:filename>")
    def _docs_assets(filename: str) -> Any:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)

    api.register_blueprint(oauth.blueprint)
    for domain in installed_domains():
        for blueprint in resolve_all(domain.api):
            api.register_blueprint(blueprint)
    for name, schema in DOCUMENTED.items():
        api.spec.components.schema(name, schema=schema)
    # Registered last so that our problem handlers replace flask-smorest's default error payload.
    init_problems(app)
    return api


def _scopes() -> dict[str, str]:
    return all_scopes()
