"""A tenant's app subscriptions and plan: subscribe, unsubscribe, change plan, list.

Each change updates the subscription item, the tenant record's `apps`/`plan`, the change
log billing prorates from, and the platform aggregates, in one transaction with its audit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dotmac.core import audit_trail
from dotmac.core.errors import ConflictError, FieldError, NotFoundError
from dotmac.core.model import TableItem, ensure_bound
from dotmac.core.tenancy import TenantContext, tenant_key
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.management import catalog, metrics
from dotmac.management.models import (
    LicenceItem,
    SubscriptionEventItem,
    SubscriptionItem,
    TenantItem,
    UsageItem,
)
from dotmac.management.repository import cached_tenants, get_tenant_item

PARTITION, EVENTS = "SUBSCRIPTION", "SUBSCRIPTION_EVENT"


def _event(tenant_id: str, app: str, action: str, plan: str, previous: str | None = None) -> Any:
    at = datetime.now(UTC)
    return SubscriptionEventItem(
        tenant_key(tenant_id, EVENTS),
        f"{at.isoformat(timespec='microseconds')}#{app}#{action}",
        app=app,
        action=action,
        plan=plan,
        previous_plan=previous,
        at=at,
    )


def subscription_view(item: SubscriptionItem) -> dict[str, Any]:
    return {"app": item.app, "status": item.status, "started_at": item.started_at.isoformat()}


def list_subscriptions(ctx: TenantContext) -> list[SubscriptionItem]:
    """The tenant's subscriptions: one Query."""
    ensure_bound()
    return list(SubscriptionItem.query(ctx.key(PARTITION), consistent_read=True))


def subscribe(
    ctx: TenantContext, app: str, *, plan: str | None = None, extra: tuple[TableItem, ...] = ()
) -> bool:
    """Subscribe the tenant to `app` (False if it already is); `extra` items join the write."""
    catalog.check_apps([app])
    for _ in range(5):  # the Map subscribes apps in parallel: retry lost version races
        tenant = get_tenant_item(ctx.tenant_id)
        if app in (tenant.apps or ()):
            return False
        uow = UnitOfWork(ctx)
        started = datetime.now(UTC)
        uow.put(
            SubscriptionItem(
                ctx.key(PARTITION), f"APP#{app}", app=app, status="ACTIVE", started_at=started
            )
        )
        uow.put(_event(ctx.tenant_id, app, "subscribed", plan or tenant.plan))
        uow.update(tenant, actions=[TenantItem.apps.add({app})])
        metrics.stage_subscription(uow, app, +1)
        for item in extra:
            uow.put(item)
        uow.audit("tenant.subscription.create", "subscription", app)
        try:
            uow.commit()
        except ConflictError:
            continue
        cached_tenants.forget(ctx.tenant_id)
        return True
    raise ConflictError(f"the subscriptions changed concurrently; retry subscribing to {app}")


def unsubscribe(ctx: TenantContext, app: str) -> None:
    """End the tenant's subscription to `app`; its users lose the app's permissions at once."""
    catalog.check_apps([app])
    tenant = get_tenant_item(ctx.tenant_id)
    if app not in (tenant.apps or ()):
        raise NotFoundError(f"not subscribed to {app}")
    uow = UnitOfWork(ctx)
    uow.delete(SubscriptionItem(ctx.key(PARTITION), f"APP#{app}"))
    uow.put(_event(ctx.tenant_id, app, "unsubscribed", tenant.plan))
    uow.update(tenant, actions=[TenantItem.apps.delete({app})])
    metrics.stage_subscription(uow, app, -1)
    uow.audit("tenant.subscription.delete", "subscription", app)
    uow.commit()
    cached_tenants.forget(ctx.tenant_id)


def change_plan(ctx: TenantContext, plan_key: str) -> TenantItem:
    """Move the tenant to another plan; a downgrade below current usage is refused (409)."""
    new_plan = catalog.plan(plan_key)
    tenant = get_tenant_item(ctx.tenant_id)
    if tenant.plan == new_plan.key:
        audit_trail.record(ctx, "tenant.plan.keep", "tenant", ctx.tenant_id)
        return tenant
    ensure_bound()
    usage = {i.SK: int(i.used or 0) for i in UsageItem.query(ctx.key("USAGE"))}
    over = [
        FieldError("plan", f"{metric}: {usage[metric]} in use, {new_plan.name} allows {limit}")
        for metric in catalog.STOCK_LIMITS
        if (limit := new_plan.limit(metric)) != catalog.UNLIMITED and usage.get(metric, 0) > limit
    ]
    if over:
        raise ConflictError(
            f"usage is above the limits of {new_plan.name}", details=over, code="PLAN_DOWNGRADE"
        )
    previous = tenant.plan
    uow = UnitOfWork(ctx)
    uow.update(tenant, actions=[TenantItem.plan.set(new_plan.key)])
    if tenant.licence_id:
        licence = LicenceItem(ctx.key("LICENCE"), tenant.licence_id)
        uow.update(licence, actions=[LicenceItem.plan.set(new_plan.key)])
    uow.put(_event(ctx.tenant_id, "*", "plan_changed", new_plan.key, previous))
    uow.audit("tenant.plan.update", "tenant", ctx.tenant_id, before={"plan": previous})
    uow.commit()
    cached_tenants.forget(ctx.tenant_id)
    return get_tenant_item(ctx.tenant_id)
