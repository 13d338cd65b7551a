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


PLATFORM_OPERATOR = DemoUser("operator@dotmac.example", "Platform Operator", ("platform_operator",))
ABC_CORP = "abc-corp"
ABC_CORP_APPS = frozenset({"isp", "crm", "commerce"})
ABC_CORP_USERS = (
    DemoUser("john.smith@abc-corp.example", "John Smith", ("tenant_admin",)),
    DemoUser("sarah@abc-corp.example", "Sarah", ("isp_manager", "crm_manager")),
    DemoUser("mike@abc-corp.example", "Mike", ("crm_sales_rep", "commerce_manager")),
    DemoUser("jane@abc-corp.example", "Jane", ("isp_customer", "commerce_customer")),
    DemoUser("tom@abc-corp.example", "Tom", ("isp_technician",)),
)


def ensure_signing_key() -> None:
    """Create the first JWT signing key in KMS if there is none."""
    from dotmac.identity import keys, tokens

    keys.keyring.forget()
    if not keys.keyring.jwks()["keys"]:
        keys.rotate(overlap_seconds=tokens.ACCESS_TOKEN_SECONDS + 60)


def ensure_platform_tenant() -> None:
    """The reserved `platform` tenant of the operators (not a customer: written directly)."""
    from dotmac.core.errors import NotFoundError
    from dotmac.core.tenancy import PLATFORM_TENANT
    from dotmac.management import repository

    try:
        repository.get_tenant(PLATFORM_TENANT)
    except NotFoundError:
        repository.create_tenant(PLATFORM_TENANT, "DotMac Platform", "enterprise", set())


def ensure_provisioned(admin: DemoUser, *, timeout: float = 120.0) -> None:
    """Provision ABC Corp through the provisioning workflow, as a sign-up would, and wait."""
    import time

    from dotmac.management import provisioning, service
    from dotmac.management.repository import TenantStatus, find_tenant_item
    from dotmac.management.schemas import SignupRequest

    existing = find_tenant_item(ABC_CORP)
    if existing is None or existing.status != TenantStatus.ACTIVE.value:
        request = SignupRequest(
            name="ABC Corp",
            subdomain=ABC_CORP,
            plan="professional",
            apps=sorted(ABC_CORP_APPS),
            admin_email=admin.email,
            admin_name=admin.name,
            password=DEMO_PASSWORD,
        )
        ctx = provisioning.system_context("seed")
        service.request_provisioning(ctx, request, f"seed-{ABC_CORP}-{int(time.time())}")
    deadline = time.monotonic() + timeout
    while True:
        item = find_tenant_item(ABC_CORP)
        status = item.status if item else None
        if status == TenantStatus.ACTIVE.value:
            return
        if status == TenantStatus.FAILED.value or time.monotonic() > deadline:
            reason = item.failure_reason if item else "no record"
            raise RuntimeError(f"provisioning {ABC_CORP} ended {status}: {reason}")
        time.sleep(0.05)


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
            )
            service.create_user(ctx, request, password=DEMO_PASSWORD)


def run() -> None:
    """Seed everything (the launcher calls this after the bootstrap)."""
    from dotmac.core.tenancy import PLATFORM_TENANT

    ensure_signing_key()
    ensure_platform_tenant()
    ensure_users(PLATFORM_TENANT, (PLATFORM_OPERATOR,))
    admin, *others = ABC_CORP_USERS
    ensure_provisioned(admin)
    ensure_users(ABC_CORP, tuple(others))
