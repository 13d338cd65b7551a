"""Authorization matrix (issue 7): every route of every HTTP app x every built-in role.

The routes come from the apps themselves (each `Api`'s declared specs, checked against the
Chalice route table), never from a list here. Each built-in role gets a user holding exactly
that role (tenant roles in ABC Corp, which subscribes isp, crm and commerce; the platform
operator in the platform tenant) and every route is called with its token, and with none:

- a public route is reachable by everyone, and only the kinds in PUBLIC_KINDS are public;
- no token on a guarded route: 401 UNAUTHENTICATED;
- a role whose expanded permissions (`roles.expand`) do not grant the route's permission:
  403 FORBIDDEN "missing permission <it>" (APP_NOT_SUBSCRIBED for an app the tenant lacks);
- a role they do grant: the route was reached (anything but 401/403, and never a 5xx).
  The one other 403 a reached route may give here is the portal's NOT_LINKED_TO_CUSTOMER,
  to a user with `isp:portal:*` (through a wildcard) but no customer record of his own.

Then ABC Corp is suspended and the matrix runs again: its users get 403 TENANT_SUSPENDED
from every guarded route not declared `while_suspended`, whatever their roles; on the
`while_suspended` ones (settling bills) their permissions decide as before.

Bodies are empty and path parameters a dummy id, so a reached route mostly answers 400/404:
no call can touch a real tenant, user, key or record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dotmac.core.api import RouteSpec
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import ABC, JOHN, Answer, Platform, decode_unverified
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.test_isp_billing import link
from tests.integration.test_isp_customers import Isp

ANONYMOUS = "anonymous"
DUMMY_ID = "matrix-none"
PORTAL = "/api/v1/isp/portal/"
# What may be public, by kind: (method, path pattern).
PUBLIC_KINDS: dict[str, tuple[str, str]] = {
    "health probe": ("GET", r"(/api/v1/[a-z]+)?/health/(live|ready|startup)"),
    "OpenAPI document": ("GET", r"/api/v1/[a-z]+/openapi\.json"),
    "sign-in": ("POST", r"/api/v1/auth/(login|refresh)"),
    "signing keys": ("GET", r"/\.well-known/jwks\.json"),
    "catalog": ("GET", r"/api/v1/platform/(apps|plans)"),
    "self-service sign-up": ("POST", r"/api/v1/signup"),
}
ENVELOPE_KEYS = {"code", "message", "details", "request_id"}


@dataclass(frozen=True)
class Caller:
    """A user holding exactly one built-in role (or nobody, for ANONYMOUS)."""

    role: str
    token: str | None = None
    permissions: frozenset[str] = frozenset()
    apps: frozenset[str] = frozenset()
    platform: bool = False
    linked: bool = False


def app_routes() -> tuple[list[RouteSpec], list[str]]:
    """Every route of every HTTP app as declared, and the Chalice routes with no (or a
    contradicted) declaration."""
    from devcloud import registry
    from dotmac.core.permissions import PUBLIC
    from infra.resources import STACK

    declared: list[RouteSpec] = []
    undeclared: list[str] = []
    for name in STACK.http_apps:
        module = registry.load_app_module(name)
        specs = {(s.path, s.method): s for s in module.api.specs}
        for path, methods in module.app.routes.items():
            for method, entry in methods.items():
                spec = specs.get((path, method))
                if spec is None or (spec.permission == PUBLIC) != (entry.authorizer is None):
                    undeclared.append(f"{method} {path}")
                else:
                    declared.append(spec)
    return declared, undeclared


def public_kind(spec: RouteSpec) -> str | None:
    """Which allowed kind of public route `spec` is (None: not an allowed public route)."""
    for kind, (method, pattern) in PUBLIC_KINDS.items():
        if spec.method == method and re.fullmatch(pattern, spec.path):
            return kind
    return None


def test_every_route_declares_a_permission_and_only_the_allowed_kinds_are_public() -> None:
    from dotmac.core.permissions import PUBLIC

    routes, undeclared = app_routes()
    assert len(routes) > 150, len(routes)  # the enumeration found the apps' routes
    assert undeclared == []
    public = [r for r in routes if r.permission == PUBLIC]
    assert [f"{r.method} {r.path}" for r in public if public_kind(r) is None] == []
    assert {public_kind(r) for r in public} == set(PUBLIC_KINDS)


def callers(platform: Platform) -> list[Caller]:
    """One fresh user per built-in role, signed in; the ISP customer linked to a customer."""
    from devcloud.seed import DEMO_PASSWORD
    from dotmac.core.tenancy import PLATFORM_TENANT
    from dotmac.identity.roles import BUILTIN_ROLES, expand
    from dotmac.management.repository import cached_tenants

    abc = cached_tenants.get(ABC)
    assert abc is not None and abc.apps == {"isp", "crm", "commerce"}  # as DESIGN §9 has it
    customer = Isp(platform, platform.token(JOHN)).customer()
    found = [Caller(ANONYMOUS)]
    for role in BUILTIN_ROLES.values():
        tenant_id = PLATFORM_TENANT if role.name == "platform_operator" else ABC
        email = f"matrix-{role.name.replace('_', '-')}@{tenant_id}.example"
        platform.add_users(tenant_id, ((email, DEMO_PASSWORD, (role.name,)),))
        linked = role.name == "isp_customer"
        if linked:
            token = link(platform, email, customer).token
        else:
            token = platform.token(email, tenant_id)
        tenant = cached_tenants.get(tenant_id)
        assert tenant is not None
        on_platform = tenant_id == PLATFORM_TENANT
        expected = expand([role], tenant.apps, platform=on_platform)
        claims = decode_unverified(token)
        assert (claims["roles"], set(claims["perms"])) == ([role.name], expected), role.name
        found.append(Caller(role.name, token, expected, tenant.apps, on_platform, linked))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", DUMMY_ID, path)


def error_of(answer: Answer) -> tuple[str, str]:
    """(code, message) of an error envelope; ("", "") when the body is not one."""
    error = answer.json.get("error") if isinstance(answer.json, dict) else None
    if not isinstance(error, dict) or set(error) != ENVELOPE_KEYS or not error["request_id"]:
        return "", ""
    return str(error["code"]), str(error["message"])


def reached(answer: Answer) -> bool:
    return answer.status not in (401, 403) and answer.status < 500


def wrong(caller: Caller, route: RouteSpec, answer: Answer, *, suspended: bool) -> bool:
    """True when `answer` is not what `caller`'s role should get from `route` (with
    `caller`'s tenant SUSPENDED when `suspended`)."""
    from dotmac.core.permissions import CORE_APPS, PUBLIC, allowed, app_of

    if route.permission == PUBLIC:
        return not reached(answer)
    if caller.token is None:
        return (answer.status, error_of(answer)[0]) != (401, "UNAUTHENTICATED")
    if suspended and not caller.platform and not route.while_suspended:
        return (answer.status, error_of(answer)[0]) != (403, "TENANT_SUSPENDED")
    app = app_of(route.permission)
    if app not in CORE_APPS and not caller.platform and app not in caller.apps:
        return (answer.status, error_of(answer)[0]) != (403, "APP_NOT_SUBSCRIBED")
    if not allowed(caller.permissions, route.permission):
        refusal = ("FORBIDDEN", f"missing permission {route.permission}")
        return (answer.status, error_of(answer)) != (403, refusal)
    if answer.status == 403 and route.path.startswith(PORTAL) and not caller.linked:
        return error_of(answer)[0] != "NOT_LINKED_TO_CUSTOMER"
    return not reached(answer)


def run_matrix(
    platform: Platform, label: str, everyone: list[Caller], *, suspended: bool = False
) -> None:
    """Call every route as every caller; print the summary, assert nothing is amiss."""
    routes, undeclared = app_routes()
    mismatches = []
    for caller in everyone:
        for route in routes:
            body: dict[str, Any] | None = None if route.method in ("GET", "DELETE") else {}
            answer = platform.call(route.method, concrete(route.path), caller.token, body)
            if wrong(caller, route, answer, suspended=suspended):
                code = error_of(answer)[0]
                mismatches.append((caller.role, route.method, route.path, answer.status, code))
    checks = len(routes) * len(everyone)
    summary = (
        f"{label}: {len(routes)} routes x {len(everyone)} roles = {checks} checks, "
        f"{len(mismatches)} mismatches, {len(undeclared)} routes without a declared permission"
    )
    print(summary)
    assert (mismatches, undeclared) == ([], []), summary


def test_every_role_gets_exactly_what_its_permissions_grant_on_every_route(
    platform: Platform,
) -> None:
    run_matrix(platform, "authorization matrix", callers(platform))


def test_a_suspended_tenant_reaches_only_the_routes_declared_while_suspended(
    platform: Platform,
) -> None:
    everyone = callers(platform)
    operator = next(c for c in everyone if c.platform)
    suspend = f"/api/v1/platform/tenants/{ABC}/suspend"
    answer = platform.call("POST", suspend, operator.token, {"reason": "authorization matrix"})
    assert (answer.status, answer.attributes["status"]) == (200, "SUSPENDED"), answer.json
    assert any(r.while_suspended for r in app_routes()[0])  # the exception is exercised
    run_matrix(platform, "authorization matrix, tenant suspended", everyone, suspended=True)
