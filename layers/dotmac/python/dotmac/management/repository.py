"""Tenant records, their step history, and the cached lookup every request's authorizer uses."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dotmac.core.errors import ConflictError, NotFoundError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, query_page, query_page_with_head
from dotmac.core.tenancy import platform_key, validate_tenant_id

if TYPE_CHECKING:
    from dotmac.management.models import LifecycleStepItem, PartnerItem, TenantItem

# One read per tenant per warm container per 5 minutes serves the authorizer (status,
# apps) and the entitlement checks (plan, licence). A suspension made in another
# container takes effect here within this time; the one that made it forgets at once.
CACHE_SECONDS = 300.0


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
    licence_id: str | None = None
    licence_expires_at: datetime | None = None
    partner_id: str | None = None

    @property
    def active(self) -> bool:
        return self.status is TenantStatus.ACTIVE


def tenant_pk(tenant_id: str) -> str:
    return platform_key("TENANT", validate_tenant_id(tenant_id))


def tenant_id_of(item: TenantItem) -> str:
    return item.PK.split("#", 1)[1]


def to_tenant(item: TenantItem) -> Tenant:
    """The immutable view of a tenant record."""
    return Tenant(
        tenant_id=tenant_id_of(item),
        name=item.name,
        status=TenantStatus(item.status),
        plan=item.plan,
        apps=frozenset(item.apps or ()),
        mfa_required=bool(item.mfa_required),
        licence_id=item.licence_id,
        licence_expires_at=item.licence_expires_at,
        partner_id=item.partner_id,
    )


def index_keys(tenant_id: str, status: str, partner_id: str | None) -> dict[str, Any]:
    """GSI1 lists tenants by status; GSI2 lists a partner's referred tenants."""
    from dotmac.management.models import TENANTS_INDEX_PK

    keys: dict[str, Any] = {"GSI1PK": TENANTS_INDEX_PK, "GSI1SK": f"{status}#{tenant_id}"}
    if partner_id:
        keys |= {"GSI2PK": platform_key("PARTNER", partner_id), "GSI2SK": tenant_id}
    return keys


def get_tenant_item(tenant_id: str) -> TenantItem:
    """One GetItem (strongly consistent); NotFoundError if there is none."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import TENANT_SK, TenantItem

    ensure_bound()
    try:
        return TenantItem.get(tenant_pk(tenant_id), TENANT_SK, consistent_read=True)
    except TenantItem.DoesNotExist as exc:
        raise NotFoundError(f"tenant {tenant_id} not found") from exc


def find_tenant_item(tenant_id: str) -> TenantItem | None:
    try:
        return get_tenant_item(tenant_id)
    except NotFoundError:
        return None


def get_tenant(tenant_id: str) -> Tenant:
    """Read one tenant (one GetItem); NotFoundError if there is none."""
    return to_tenant(get_tenant_item(tenant_id))


def tenant_with_steps(tenant_id: str) -> tuple[TenantItem, list[LifecycleStepItem]]:
    """The tenant record and its step history: one Query over the tenant's partition."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import LifecycleStepItem, TenantItem

    ensure_bound()
    connection: Any = TenantItem._get_connection()
    record: TenantItem | None = None
    steps: list[LifecycleStepItem] = []
    start_key = None
    while True:
        answer = connection.query(
            tenant_pk(tenant_id), consistent_read=True, exclusive_start_key=start_key
        )
        for raw in answer.get("Items", []):
            if raw["SK"]["S"].startswith("STEP#"):
                steps.append(LifecycleStepItem.from_raw_data(raw))
            else:
                record = TenantItem.from_raw_data(raw)
        start_key = answer.get("LastEvaluatedKey")
        if not start_key:
            break
    if record is None:
        raise NotFoundError(f"tenant {tenant_id} not found")
    return record, steps


def list_tenants(page: PageRequest, status: str | None = None) -> Page[TenantItem]:
    """One page of tenants (optionally of one status): one Query on GSI1."""
    from dotmac.management.models import TENANTS_INDEX_PK, TenantItem

    prefix = f"{TenantStatus(status).value}#" if status else None
    return query_page(TenantItem, TENANTS_INDEX_PK, page, sk_prefix=prefix, index="gsi1")


def customer_tenant_ids(*statuses: str) -> list[str]:
    """Every tenant in one of `statuses` except the platform itself: Queries on GSI1."""
    from dotmac.core.tenancy import PLATFORM_TENANT

    found: list[str] = []
    for status in statuses:
        cursor: str | None = None
        while True:
            page = list_tenants(PageRequest(limit=200, cursor=cursor), status)
            found.extend(t for t in map(tenant_id_of, page.items) if t != PLATFORM_TENANT)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return found


def partner_tenants(
    partner_id: str, page: PageRequest
) -> tuple[PartnerItem | None, Page[TenantItem]]:
    """One page of the tenants a partner referred, after the partner record on a first page
    (None if the index has no such partner): one Query on GSI2."""
    from dotmac.management.models import PartnerItem, TenantItem

    partition = platform_key("PARTNER", partner_id)
    return query_page_with_head(PartnerItem, TenantItem, partition, page, index="gsi2")


def create_tenant(
    tenant_id: str, name: str, plan: str, apps: set[str], *, mfa_required: bool = False
) -> Tenant:
    """Write an ACTIVE tenant record directly (the reserved platform tenant and test fixtures;
    customer tenants are made by the provisioning workflow)."""
    from pynamodb.exceptions import PutError

    from dotmac.core.model import ensure_bound
    from dotmac.management.models import TENANT_SK, TenantItem

    ensure_bound()
    now = datetime.now(UTC)
    item = TenantItem(
        tenant_pk(tenant_id),
        TENANT_SK,
        name=name,
        status=TenantStatus.ACTIVE.value,
        plan=plan,
        apps=set(apps) or None,
        mfa_required=mfa_required,
        licence_id=f"LIC-{now:%Y%m%d}-DIRECT",
        licence_expires_at=now + timedelta(days=365),
        created_at=now,
        updated_at=now,
        **index_keys(tenant_id, TenantStatus.ACTIVE.value, None),
    )
    try:
        item.save(condition=TenantItem.PK.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise ConflictError(f"tenant {tenant_id} already exists") from exc
        raise
    cached_tenants.forget(tenant_id)
    return to_tenant(item)


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
