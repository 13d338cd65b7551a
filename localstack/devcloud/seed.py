"""Seed data for the local cloud: a signing key, the platform operator, the demo tenant ABC Corp.

Idempotent: a second run finds everything in place and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

DEMO_PASSWORD = "DotMac-demo-2026"  # local demo only; printed in the README  # noqa: S105


@dataclass(frozen=True)
class DemoUser:
    email: str
    name: str
    roles: tuple[str, ...]
    customer_id: str | None = None


PLATFORM_OPERATOR = DemoUser("operator@dotmac.example", "Platform Operator", ("platform_operator",))
ABC_CORP = "abc-corp"
ABC_CORP_APPS = frozenset({"isp", "crm", "commerce"})
ABC_CORP_USERS = (
    DemoUser("john.smith@abc-corp.example", "John Smith", ("tenant_admin",)),
    DemoUser("sarah@abc-corp.example", "Sarah", ("isp_manager", "crm_manager")),
    DemoUser("mike@abc-corp.example", "Mike", ("crm_sales_rep", "commerce_manager")),
    DemoUser("jane@abc-corp.example", "Jane", ("isp_customer", "commerce_customer"), "CUST-0001"),
    DemoUser("tom@abc-corp.example", "Tom", ("isp_technician",)),
)


def ensure_signing_key() -> None:
    """Create the first JWT signing key in KMS if there is none."""
    from dotmac.identity import keys, tokens

    keys.keyring.forget()
    if not keys.keyring.jwks()["keys"]:
        keys.rotate(overlap_seconds=tokens.ACCESS_TOKEN_SECONDS + 60)


def ensure_tenant(tenant_id: str, name: str, plan: str, apps: frozenset[str]) -> None:
    from dotmac.core.errors import NotFoundError
    from dotmac.management import repository

    try:
        repository.get_tenant(tenant_id)
    except NotFoundError:
        repository.create_tenant(tenant_id, name, plan, set(apps))


def ensure_users(tenant_id: str, users: tuple[DemoUser, ...]) -> None:
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity import service
    from dotmac.identity.repository import UserRepository
    from dotmac.identity.schemas import UserCreate

    ctx = TenantContext(
        tenant_id, "seed", permissions=frozenset({"identity:*:*"}), request_id="seed"
    )
    existing = UserRepository(ctx)
    for user in users:
        if existing.find_by_email(user.email) is None:
            request = UserCreate(
                email=user.email,
                name=user.name,
                roles=list(user.roles),
                customer_id=user.customer_id,
            )
            service.create_user(ctx, request, password=DEMO_PASSWORD)


def run() -> None:
    """Seed everything (the launcher calls this after the bootstrap)."""
    from dotmac.core.tenancy import PLATFORM_TENANT

    ensure_signing_key()
    ensure_tenant(PLATFORM_TENANT, "DotMac Platform", "enterprise", frozenset())
    ensure_users(PLATFORM_TENANT, (PLATFORM_OPERATOR,))
    ensure_tenant(ABC_CORP, "ABC Corp", "professional", ABC_CORP_APPS)
    ensure_users(ABC_CORP, ABC_CORP_USERS)
