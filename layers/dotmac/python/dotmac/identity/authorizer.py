"""The one authorizer every app uses (a Lambda TOKEN authorizer in AWS).

It verifies the bearer token (signature, algorithm, key id, issuer, audience, lifetime),
then checks the tenant and the user against per-container caches, so a warm request makes
no DynamoDB call. It builds the request's identity from verified claims only; the route
wrapper turns that into a `TenantContext`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dotmac.core.errors import AuthenticationError, NotFoundError
from dotmac.core.observability import get_logger
from dotmac.core.tenancy import TenantContext
from dotmac.management.repository import TenantStatus, cached_tenants

USER_CACHE_SECONDS = 30.0
# Tenants whose users' tokens are still looked at (a suspended one's are refused with 403).
SERVING = frozenset({TenantStatus.ACTIVE, TenantStatus.SUSPENDED})


class Unauthorized(Exception):
    """API Gateway answers 401 when a TOKEN authorizer fails with exactly this message."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class UserStates:
    """Per-container cache: is this user still ACTIVE? (re-read every 30 s)."""

    def __init__(self, ttl: float = USER_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def active(self, tenant_id: str, user_id: str) -> bool:
        now = time.monotonic()
        hit = self._entries.get((tenant_id, user_id))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        from dotmac.identity.repository import UserRepository

        try:
            user = UserRepository(TenantContext(tenant_id, user_id)).get(user_id)
            state = user.status == "ACTIVE"
        except NotFoundError:
            state = False
        with self._lock:
            self._entries[(tenant_id, user_id)] = (now, state)
        return state

    def forget(self, tenant_id: str | None = None, user_id: str | None = None) -> None:
        with self._lock:
            if tenant_id is None or user_id is None:
                self._entries.clear()
            else:
                self._entries.pop((tenant_id, user_id), None)


user_states = UserStates()


def bearer(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        raise Unauthorized
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized
    return token.strip()


def authorize_token(header: str | None) -> dict[str, str]:
    """Verify a token and return the authorizer context; raises Unauthorized."""
    from dotmac.identity.tokens import verify_access_token

    token = bearer(header)
    try:
        claims = verify_access_token(token)
    except AuthenticationError as exc:
        get_logger().info("token refused", reason=exc.message)
        raise Unauthorized from exc
    tenant = cached_tenants.get(claims.tenant_id)
    if tenant is None or tenant.status not in SERVING:
        get_logger().info("token refused", reason="unknown or closed tenant")
        raise Unauthorized
    if not user_states.active(claims.tenant_id, claims.subject):
        get_logger().info("token refused", reason="unknown tenant or inactive user")
        raise Unauthorized
    return {
        "tid": claims.tenant_id,
        "sub": claims.subject,
        "roles": ",".join(claims.roles),
        "perms": ",".join(claims.permissions),
        "apps": ",".join(sorted(tenant.apps)),
        "tenant_status": tenant.status.value,
        "restriction": claims.restriction or "",
        "customer": claims.customer_id or "",
    }


def authorize(auth_request: Any) -> Any:
    """Chalice built-in authorizer: allow every route, with the verified identity as context."""
    from chalice import AuthResponse

    context = authorize_token(auth_request.token)
    return AuthResponse(routes=["*"], principal_id=context["sub"], context=context)
