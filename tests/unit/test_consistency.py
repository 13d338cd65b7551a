"""Cross-checks between the layer, the apps and infra that keep them from drifting apart."""

from __future__ import annotations

import pytest

from devcloud import registry
from dotmac.core import health
from dotmac.core.model import INDEX_KEYS, TableItem
from dotmac.core.permissions import PUBLIC
from infra.resources import STACK

PUBLIC_PATH_MARKERS = ("/health/", "/openapi.json")
# DESIGN §5: only login, refresh, the JWKS and health (and the OpenAPI documents) are public;
# issue 4 adds the catalog read and self-service sign-up (rate-limited per IP).
PUBLIC_PATHS = {
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/.well-known/jwks.json",
    "/api/v1/platform/apps",
    "/api/v1/platform/plans",
    "/api/v1/signup",
}


def test_every_function_resolves_to_a_callable_handler() -> None:
    for function in STACK.functions:
        assert callable(registry.handler(function)), function.name


def test_the_layer_knows_the_same_queues_as_infra() -> None:
    assert set(health.QUEUES) <= {q.name for q in STACK.queues}


def test_model_indexes_match_the_table_definition() -> None:
    table = STACK.table
    declared = {(table.pk, table.sk)} | {(i.pk, i.sk) for i in table.indexes}
    assert set(INDEX_KEYS.values()) == declared
    assert TableItem.expires_at.attr_name == table.ttl_attribute


@pytest.mark.parametrize("app_name", STACK.http_apps)
def test_every_route_declares_a_permission(app_name: str) -> None:
    """Enumerates the Chalice route table itself, so a route added around `Api.route` is caught."""
    module = registry.load_app_module(app_name)
    api, app = module.api, module.app
    declared = {(s.path, s.method): s.permission for s in api.specs}
    for path, methods in app.routes.items():
        for method, entry in methods.items():
            assert (path, method) in declared, f"{method} {path} bypasses Api.route"
            permission = declared[(path, method)]
            if permission == PUBLIC:
                assert path in PUBLIC_PATHS or any(m in path for m in PUBLIC_PATH_MARKERS), (
                    f"{method} {path} is public but is not a health/openapi route"
                )
                assert entry.authorizer is None
            else:
                assert entry.authorizer is not None, f"{method} {path} has no authorizer"
