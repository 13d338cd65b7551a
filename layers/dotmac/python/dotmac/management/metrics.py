"""Maintained platform aggregates, so `GET /api/v1/platform/metrics` needs no Scan.

| aggregate | PK | SK | attributes | moved by |
|---|---|---|---|---|
| tenants per state | `METRIC#tenants` | `STATE#<state>` | `value` | `stage_tenant_state`, in the state change's transaction |
| subscriptions per app | `METRIC#subscriptions` | `APP#<app>` | `value` | `stage_subscription`, in the subscription's transaction |
| provisioning outcomes | `METRIC#provisioning` | `SUMMARY` | `value` (attempts), `succeeded`, `failed`, `duration_ms` | `record_provisioning`, one UpdateItem |

Every counter moves by an atomic ADD, so concurrent writers never lose a count. Their keys
are all known (every state, every app of the catalog, the summary), so `platform_metrics`
reads them with a page's usage counters in one BatchGetItem instead of a Query per family.
"""  # noqa: E501

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dotmac.core.pagination import PageRequest
from dotmac.core.tenancy import platform_key, tenant_key

if TYPE_CHECKING:
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management.models import TenantItem

TENANTS_FAMILY = "tenants"
SUBSCRIPTIONS_FAMILY = "subscriptions"
PROVISIONING_FAMILY = "provisioning"
STATE_PREFIX = "STATE#"
APP_PREFIX = "APP#"
SUMMARY_SK = "SUMMARY"
API_CALLS_LIMIT = "api_calls_per_hour"
API_CALLS_PREFIX = "api_calls#"
BATCH_GET_MAX_KEYS = 100  # DynamoDB's limit per BatchGetItem
UNPROCESSED_RETRIES = 5
PROVISIONING_COUNTERS = ("value", "succeeded", "failed", "duration_ms")


def metric_pk(family: str) -> str:
    """`METRIC#<family>`."""
    return platform_key("METRIC", family)


def _metric_update(uow: UnitOfWork, family: str, sort_key: str, delta: int) -> None:
    from dotmac.management.models import MetricItem

    item = MetricItem(metric_pk(family), sort_key)
    uow.update(item, actions=[MetricItem.value.add(delta), MetricItem.kind.set(MetricItem.entity)])


def stage_tenant_state(uow: UnitOfWork, old: str | None, new: str | None) -> None:
    """Stage -1 on `old`'s and +1 on `new`'s tenant-state counter into `uow` (None = no state).

    The counters then move in the same transaction as the state change itself; staging the
    same state twice, or nothing at all, stages nothing.
    """
    from dotmac.management.repository import TenantStatus

    if old == new:
        return
    if old is not None:
        _metric_update(uow, TENANTS_FAMILY, STATE_PREFIX + TenantStatus(old).value, -1)
    if new is not None:
        _metric_update(uow, TENANTS_FAMILY, STATE_PREFIX + TenantStatus(new).value, 1)


def stage_subscription(uow: UnitOfWork, app: str, delta: int) -> None:
    """Stage an ADD of `delta` (+1 subscribe, -1 unsubscribe) on `app`'s subscription counter."""
    if not app or "#" in app:
        raise ValueError(f"invalid app key {app!r}")
    if delta == 0:
        return
    _metric_update(uow, SUBSCRIPTIONS_FAMILY, APP_PREFIX + app, delta)


def record_provisioning(succeeded: bool, seconds: float) -> None:
    """Count one provisioning outcome and its duration: one UpdateItem, plus EMF metrics.

    ADDs 1 to `value` (attempts) and to `succeeded` or `failed`, and the duration in whole
    milliseconds to `duration_ms`, on `METRIC#provisioning`/`SUMMARY`; then emits
    `ProvisioningSucceeded` or `ProvisioningFailed` (Count) and `ProvisioningDuration`
    (Milliseconds) and flushes them.
    """
    from pynamodb.expressions.operand import Path

    from dotmac.core.model import ensure_bound
    from dotmac.core.observability import get_metrics
    from dotmac.management.models import MetricItem

    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    duration_ms = round(seconds * 1000)
    outcome = "succeeded" if succeeded else "failed"
    ensure_bound()
    MetricItem._get_connection().update_item(
        metric_pk(PROVISIONING_FAMILY),
        SUMMARY_SK,
        actions=[
            Path("value").add({"N": "1"}),
            Path(outcome).add({"N": "1"}),
            Path("duration_ms").add({"N": str(duration_ms)}),
            MetricItem.kind.set(MetricItem.entity),
        ],
    )
    metrics = get_metrics()
    name = "ProvisioningSucceeded" if succeeded else "ProvisioningFailed"
    metrics.add_metric(name=name, unit="Count", value=1)
    metrics.add_metric(name="ProvisioningDuration", unit="Milliseconds", value=duration_ms)
    metrics.flush_metrics()


def api_calls_key(now: datetime) -> str:
    """`api_calls#<YYYYMMDDHH>`: the usage counter of the UTC hour containing `now`."""
    return API_CALLS_PREFIX + now.astimezone(UTC).strftime("%Y%m%d%H")


def _batch_get(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw items for `keys`: one BatchGetItem per 100 keys (plus retries of unprocessed keys)."""
    from dotmac.management.models import UsageItem

    connection: Any = UsageItem._get_connection()
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX_KEYS):
        pending = keys[start : start + BATCH_GET_MAX_KEYS]
        for _ in range(UNPROCESSED_RETRIES + 1):
            answer = connection.batch_get_item(pending, consistent_read=True)
            table = connection.table_name
            found.extend(answer.get("Responses", {}).get(table, []))
            pending = answer.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if not pending:
                break
        else:
            raise RuntimeError("DynamoDB left keys unprocessed after retries")
    return found


def _number(raw: dict[str, Any] | None, attribute: str) -> int:
    value = (raw or {}).get(attribute, {}).get("N")
    return int(value) if value is not None else 0


def _tenant_usage(
    item: TenantItem, counters: dict[tuple[str, str], dict[str, Any]], hour_key: str
) -> dict[str, Any]:
    from dotmac.management.catalog import PLANS, STOCK_LIMITS
    from dotmac.management.repository import tenant_id_of

    tenant_id = tenant_id_of(item)
    pk = tenant_key(tenant_id, "USAGE")
    plan = PLANS.get(item.plan)
    usage: dict[str, Any] = {}
    for metric, sort_key in (*((m, m) for m in STOCK_LIMITS), (API_CALLS_LIMIT, hour_key)):
        raw = counters.get((pk, sort_key))
        used = _number(raw, "count")
        limit = plan.limit(metric) if plan else None
        exceeded_at = _number(raw, "exceeded_at") or None
        usage[metric] = {
            "used": used,
            "limit": limit,
            "over_limit": limit is not None and limit != -1 and used > limit,
            "exceeded_at": exceeded_at,
        }
    usage[API_CALLS_LIMIT]["hour"] = hour_key.removeprefix(API_CALLS_PREFIX)
    return {
        "tenant_id": tenant_id,
        "name": item.name,
        "status": item.status,
        "plan": item.plan,
        "usage": usage,
    }


def platform_metrics(page: PageRequest, *, now: datetime | None = None) -> dict[str, Any]:
    """Tenants by state, subscriptions per app, provisioning figures and one page of usage.

    DynamoDB calls: 1 Query (one page of tenants on GSI1) + ceil((k + 5 * n) / 100)
    BatchGetItem for a page of n tenants: the k platform counters (every state, every app,
    the provisioning summary) and 5 usage counters per tenant. That is **2 calls** for a
    page of up to 17 tenants, 4 for the default 50, 12 for the maximum 200 (plus retries of
    unprocessed keys, which DynamoDB only asks for under throttling). Never a Scan. Two is
    the floor: the usage counters live in each tenant's own partition (`T#<tid>#USAGE`),
    and the tenants of a page are only known once it is read.
    Limits are the tenant's plan limits (-1 unlimited; None for a plan not in the catalog);
    `api_calls_per_hour` counts the current UTC hour.
    """
    from dotmac.core.model import ensure_bound
    from dotmac.management.catalog import APPS, STOCK_LIMITS
    from dotmac.management.repository import TenantStatus, list_tenants, tenant_id_of

    ensure_bound()
    instant = now or datetime.now(UTC)
    hour_key = api_calls_key(instant)
    tenants = list_tenants(page)

    states = {s.value: (metric_pk(TENANTS_FAMILY), STATE_PREFIX + s.value) for s in TenantStatus}
    apps = {app: (metric_pk(SUBSCRIPTIONS_FAMILY), APP_PREFIX + app) for app in APPS}
    summary_key = (metric_pk(PROVISIONING_FAMILY), SUMMARY_SK)
    wanted = [*states.values(), *apps.values(), summary_key]
    for item in tenants.items:
        pk = tenant_key(tenant_id_of(item), "USAGE")
        wanted += [(pk, metric) for metric in STOCK_LIMITS] + [(pk, hour_key)]
    raw_items = _batch_get([{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in wanted])
    found = {(raw["PK"]["S"], raw["SK"]["S"]): raw for raw in raw_items}

    by_state = {state: _number(found.get(key), "value") for state, key in states.items()}
    by_app = {app: _number(found.get(key), "value") for app, key in apps.items()}
    summary = found.get(summary_key)
    attempts, succeeded, failed, duration_ms = (
        _number(summary, name) for name in PROVISIONING_COUNTERS
    )
    return {
        "tenants": {"by_state": by_state, "total": sum(by_state.values())},
        "subscriptions": {"by_app": by_app, "total": sum(by_app.values())},
        "provisioning": {
            "attempts": attempts,
            "succeeded": succeeded,
            "failed": failed,
            "success_rate": round(succeeded / attempts, 4) if attempts else None,
            "mean_duration_ms": round(duration_ms / attempts) if attempts else None,
        },
        "usage": [_tenant_usage(item, found, hour_key) for item in tenants.items],
        "next_cursor": tenants.next_cursor,
        "as_of": instant.astimezone(UTC).isoformat(timespec="seconds"),
    }
