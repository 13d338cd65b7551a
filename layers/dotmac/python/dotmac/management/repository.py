"""Tenant records and the cached lookup every request's authorizer uses."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from dotmac.core.errors import ConflictError, NotFoundError
from dotmac.core.tenancy import platform_key, validate_tenant_id

CACHE_SECONDS = 30.0


class TenantStatus(StrEnum):
    """A tenant's lifecycle states (DESIGN §6)."""

    REQUESTED = "REQUESTED"
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    DEPROVISIONING = "DEPROVISIONING"
    DEPROVISIONED = "DEPROVISIONED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Tenant:
    """What the rest of the platform needs to know about a tenant."""

    tenant_id: str
    name: str
    status: TenantStatus
    plan: str
    apps: frozenset[str]
    mfa_required: bool

    @property
    def active(self) -> bool:
        return self.status is TenantStatus.ACTIVE


def tenant_pk(tenant_id: str) -> str:
    return platform_key("TENANT", validate_tenant_id(tenant_id))


def _to_tenant(item: object) -> Tenant:
    from dotmac.management.models import TenantItem

    assert isinstance(item, TenantItem)
    return Tenant(
        tenant_id=item.PK.split("#", 1)[1],
        name=item.name,
        status=TenantStatus(item.status),
        plan=item.plan,
        apps=frozenset(item.apps or ()),
        mfa_required=bool(item.mfa_required),
    )


def get_tenant(tenant_id: str) -> Tenant:
    """Read one tenant (one GetItem); NotFoundError if there is none."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import TENANT_SK, TenantItem

    ensure_bound()
    try:
        return _to_tenant(TenantItem.get(tenant_pk(tenant_id), TENANT_SK))
    except TenantItem.DoesNotExist as exc:
        raise NotFoundError(f"tenant {tenant_id} not found") from exc


def create_tenant(
    tenant_id: str, name: str, plan: str, apps: set[str], *, mfa_required: bool = False
) -> Tenant:
    """Create an ACTIVE tenant record (conditional: the id must be free)."""
    from pynamodb.exceptions import PutError

    from dotmac.core.model import ensure_bound
    from dotmac.management.models import TENANT_SK, TenantItem

    ensure_bound()
    item = TenantItem(
        tenant_pk(tenant_id),
        TENANT_SK,
        name=name,
        status=TenantStatus.ACTIVE.value,
        plan=plan,
        apps=set(apps) or None,
        mfa_required=mfa_required,
        created_at=datetime.now(UTC),
    )
    try:
        item.save(condition=TenantItem.PK.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise ConflictError(f"tenant {tenant_id} already exists") from exc
        raise
    cached_tenants.forget(tenant_id)
    return _to_tenant(item)


def set_status(tenant_id: str, status: TenantStatus) -> Tenant:
    """Move a tenant to `status` (optimistic locking on the record)."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import TENANT_SK, TenantItem

    ensure_bound()
    item = TenantItem.get(tenant_pk(tenant_id), TENANT_SK)
    item.update(actions=[TenantItem.status.set(status.value)])
    cached_tenants.forget(tenant_id)
    return _to_tenant(item)


class TenantCache:
    """Per-container cache of tenant records (the authorizer's warm path makes no reads)."""

    def __init__(self, ttl: float = CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Tenant | None]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: str) -> Tenant | None:
        """The tenant, or None if it does not exist; re-read after `ttl` seconds."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(tenant_id)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            tenant: Tenant | None = get_tenant(tenant_id)
        except NotFoundError:
            tenant = None
        with self._lock:
            self._entries[tenant_id] = (now, tenant)
        return tenant

    def forget(self, tenant_id: str | None = None) -> None:
        with self._lock:
            if tenant_id is None:
                self._entries.clear()
            else:
                self._entries.pop(tenant_id, None)


cached_tenants = TenantCache()
