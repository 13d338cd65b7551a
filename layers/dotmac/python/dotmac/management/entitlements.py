"""What a tenant may use: subscription, licence, plan features and limits, usage counters.

Every app asks here. The tenant record comes from the one per-container cache
(`cached_tenants`, at most one GetItem per tenant per warm container per 5 minutes); limits
and features come from the catalog in code. Usage counters are items in the tenant's own
partition, shared by every instance and changed atomically. Enforcement fails closed: an
unknown tenant, an expired licence or a counter that cannot be read refuses the write.

Stock limits (customers, users, devices, service plans) are counted in the same
transaction as the item they count. Going over a limit opens a 24 h grace period
(`exceeded_at`); after it, further growth is refused with 403 PLAN_LIMIT_EXCEEDED until
usage is back under the limit. API calls are counted per UTC hour, in leases of 1% of the
quota (at least 10) per container, so a busy container writes once per lease; over the
hourly quota, mutations are refused once the grace period has run out (reads keep working
so a tenant can still see its data).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dotmac.core.errors import ForbiddenError
from dotmac.core.tenancy import TenantContext
from dotmac.management.catalog import GRACE_SECONDS, PLANS, STOCK_LIMITS, UNLIMITED, Plan
from dotmac.management.repository import Tenant, TenantStatus, cached_tenants

if TYPE_CHECKING:
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management.models import UsageItem

API_CALLS = "api_calls"
MIN_API_CALL_LEASE = 10
USAGE_PARTITION = "USAGE"


def plan_limit_exceeded(metric: str, limit: int) -> ForbiddenError:
    return ForbiddenError(
        f"the plan allows {limit} {metric.replace('_', ' ')}; the grace period has ended",
        code="PLAN_LIMIT_EXCEEDED",
    )


@dataclass(frozen=True)
class Entitlements:
    """A tenant's plan, apps and licence, as one value."""

    tenant: Tenant
    plan: Plan

    @property
    def licence_valid(self) -> bool:
        expires = self.tenant.licence_expires_at
        return expires is not None and expires > datetime.now(UTC)

    def limit(self, metric: str) -> int:
        return self.plan.limit(metric)

    def feature_enabled(self, feature: str) -> bool:
        return self.plan.feature_enabled(feature)


def entitlements(tenant_id: str) -> Entitlements:
    """The tenant's entitlements from the cached record; 403 when it has none (fail closed)."""
    tenant = cached_tenants.get(tenant_id)
    if tenant is None or tenant.plan not in PLANS:
        raise ForbiddenError("this tenant has no valid subscription", code="LICENCE_INVALID")
    return Entitlements(tenant, PLANS[tenant.plan])


def require_writable(ctx: TenantContext) -> Entitlements:
    """Entitlements of an ACTIVE tenant with a valid licence, else 403 (fail closed).

    A PROVISIONING tenant is being built by the workflow, before its licence is issued.
    """
    granted = entitlements(ctx.tenant_id)
    if granted.tenant.status is TenantStatus.PROVISIONING:
        return granted
    if granted.tenant.status is not TenantStatus.ACTIVE:
        raise ForbiddenError("this tenant is suspended", code="TENANT_SUSPENDED")
    if not granted.licence_valid:
        raise ForbiddenError("the tenant's licence has expired", code="LICENCE_EXPIRED")
    return granted


def require_feature(ctx: TenantContext, feature: str) -> None:
    """403 FEATURE_DISABLED unless the tenant's plan includes `feature`."""
    if not entitlements(ctx.tenant_id).feature_enabled(feature):
        raise ForbiddenError(
            f"the {feature} feature is not part of this plan", code="FEATURE_DISABLED"
        )


def _counter(ctx: TenantContext, name: str) -> UsageItem:
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import UsageItem

    ensure_bound()
    return UsageItem(ctx.key(USAGE_PARTITION), name)


def _read(item: UsageItem) -> tuple[int, int | None]:
    from dotmac.management.models import UsageItem

    try:
        found = UsageItem.get(item.PK, item.SK, consistent_read=True)
    except UsageItem.DoesNotExist:
        return 0, None
    exceeded = None if found.exceeded_at is None else int(found.exceeded_at)
    return int(found.used or 0), exceeded


def stage_increment(uow: UnitOfWork, ctx: TenantContext, metric: str, by: int = 1) -> None:
    """Count `by` more of a stock metric in `uow`'s transaction, within limit and grace.

    One consistent GetItem decides; the staged update is conditional on what was read, so
    two writers racing past the limit cannot both get in (the loser's commit is a 409).
    """
    from dotmac.management.models import UsageItem

    if metric not in STOCK_LIMITS:
        raise ValueError(f"{metric} is not a stock limit")
    limit = require_writable(ctx).limit(metric)
    item = _counter(ctx, metric)
    grow = [UsageItem.used.add(by), UsageItem.kind.set(UsageItem.entity)]
    if limit == UNLIMITED:
        uow.update(item, actions=grow)
        return
    count, exceeded_at = _read(item)
    now = int(time.time())
    if count + by <= limit:
        within: Any = UsageItem.used.does_not_exist() | (UsageItem.used <= limit - by)
        uow.update(item, actions=grow, condition=within)
    elif exceeded_at is None:
        uow.update(
            item,
            actions=[*grow, UsageItem.exceeded_at.set(now)],
            condition=UsageItem.exceeded_at.does_not_exist(),
        )
    elif now - exceeded_at < GRACE_SECONDS:
        uow.update(item, actions=grow, condition=UsageItem.exceeded_at == exceeded_at)
    else:
        raise plan_limit_exceeded(metric, limit)


def stage_decrement(uow: UnitOfWork, ctx: TenantContext, metric: str, by: int = 1) -> None:
    """Count `by` fewer of a stock metric; back within the limit, the grace clock resets."""
    from dotmac.management.models import UsageItem

    granted = entitlements(ctx.tenant_id)
    item = _counter(ctx, metric)
    count, exceeded_at = _read(item)
    actions: list[Any] = [UsageItem.used.add(-by), UsageItem.kind.set(UsageItem.entity)]
    limit = granted.limit(metric)
    if exceeded_at is not None and (limit == UNLIMITED or count - by <= limit):
        actions.append(UsageItem.exceeded_at.remove())
    uow.update(item, actions=actions)


def hour_of(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%Y%m%d%H")


class ApiCallMeter:
    """Counts a tenant's API calls per UTC hour in leases (one write per lease per container)."""

    def __init__(self, minimum_lease: int = MIN_API_CALL_LEASE) -> None:
        self.minimum_lease = minimum_lease
        self._left: dict[tuple[str, str], int] = {}
        self._over: dict[tuple[str, str], bool] = {}
        self._lock = threading.Lock()

    def count(self, ctx: TenantContext, *, mutation: bool, now: float | None = None) -> None:
        """Count one call; over the hourly quota after the grace period, refuse a mutation."""
        instant = time.time() if now is None else now
        key = (ctx.tenant_id, hour_of(instant))
        granted = entitlements(ctx.tenant_id)
        limit = granted.limit("api_calls_per_hour")
        lease = max(self.minimum_lease, limit // 100)
        with self._lock:
            if self._left.get(key, 0) <= 0:
                total = self._lease(ctx, key[1], instant, lease)
                self._left = {k: v for k, v in self._left.items() if k[1] == key[1]}
                self._left[key] = lease
                self._over[key] = limit != UNLIMITED and total > limit
            self._left[key] -= 1
            over = self._over.get(key, False)
        if over and mutation:
            self._enforce(ctx, limit, instant)

    @staticmethod
    def _lease(ctx: TenantContext, hour: str, instant: float, lease: int) -> int:
        from dotmac.management.models import UsageItem

        item = _counter(ctx, f"{API_CALLS}#{hour}")
        item.update(
            actions=[
                UsageItem.used.add(lease),
                UsageItem.kind.set(UsageItem.entity),
                # Hourly counters expire two days after their hour.
                UsageItem.expires_at.set(int(instant) + 2 * 24 * 3600),
            ]
        )
        return int(item.used)

    @staticmethod
    def _enforce(ctx: TenantContext, limit: int, instant: float) -> None:
        from pynamodb.exceptions import UpdateError

        from dotmac.management.models import UsageItem

        grace = _counter(ctx, API_CALLS)
        try:
            # The first time over starts the grace clock; it lapses after a quiet week.
            grace.update(
                actions=[
                    UsageItem.exceeded_at.set(int(instant)),
                    UsageItem.kind.set(UsageItem.entity),
                    UsageItem.expires_at.set(int(instant) + 7 * 24 * 3600),
                ],
                condition=UsageItem.exceeded_at.does_not_exist(),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            _, started = _read(grace)
            if started is not None and instant - started >= GRACE_SECONDS:
                raise plan_limit_exceeded("API calls per hour", limit) from None

    def reset(self) -> None:
        """Drop every lease (tests switch emulators between cases)."""
        with self._lock:
            self._left.clear()
            self._over.clear()


api_calls = ApiCallMeter()


def usage_report(ctx: TenantContext) -> dict[str, Any]:
    """Usage against limits: one Query of the tenant's counters (plus the cached record)."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import UsageItem

    ensure_bound()
    granted = entitlements(ctx.tenant_id)
    counters = {
        item.SK: item for item in UsageItem.query(ctx.key(USAGE_PARTITION), consistent_read=True)
    }
    now = time.time()
    metrics: dict[str, Any] = {}
    for metric in (*STOCK_LIMITS, API_CALLS):
        key = f"{API_CALLS}#{hour_of(now)}" if metric == API_CALLS else metric
        limit = granted.limit("api_calls_per_hour" if metric == API_CALLS else metric)
        found = counters.get(key)
        grace_item = counters.get(metric)
        exceeded = None if grace_item is None else grace_item.exceeded_at
        used = int(found.used) if found is not None and found.used else 0
        metrics[metric] = {
            "used": used,
            "limit": limit,
            "over_limit": limit != UNLIMITED and used > limit,
            "grace_ends_at": (
                None
                if exceeded is None
                else datetime.fromtimestamp(int(exceeded) + GRACE_SECONDS, UTC).isoformat()
            ),
        }
    return {
        "plan": granted.plan.key,
        "licence_id": granted.tenant.licence_id,
        "licence_valid_until": (
            None
            if granted.tenant.licence_expires_at is None
            else granted.tenant.licence_expires_at.isoformat()
        ),
        "features_off": sorted(granted.plan.features_off),
        "usage": metrics,
    }
