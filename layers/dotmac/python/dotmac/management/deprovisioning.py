"""The steps of `statemachines/deprovision_tenant.asl.json`: export, purge, release, finish.

The export (every item and object of the tenant, as JSON Lines in S3) completes and is
checked before anything is deleted; the purge is checked by counting what is left. A
failure before the purge leaves the tenant's data untouched, DEPROVISIONING, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dotmac.core.tenancy import platform_key
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.core.workflows import StepFailedError, TransientStepError, error_text, guarded
from dotmac.management import metrics, tenant_data
from dotmac.management.models import SubdomainItem, TenantItem
from dotmac.management.provisioning import (
    SUBDOMAIN_SK,
    stage_transition,
    step_record,
    system_context,
)
from dotmac.management.repository import TenantStatus, cached_tenants, get_tenant_item

Step = Callable[[str, str, dict[str, Any]], None]


def _deprovisioning(tenant_id: str) -> TenantItem:
    item = get_tenant_item(tenant_id)
    if item.status != TenantStatus.DEPROVISIONING.value:
        raise StepFailedError(f"tenant {tenant_id} is {item.status}, not DEPROVISIONING")
    return item


def export(tenant_id: str, execution: str, event: dict[str, Any]) -> None:
    """Every item and object of the tenant to `exports/<tid>/<execution>/` (JSON Lines)."""
    item = _deprovisioning(tenant_id)
    result = tenant_data.export_tenant(tenant_id, execution)
    expected = tenant_data.count_tenant_items(tenant_id)
    if result.items != expected:
        raise TransientStepError(f"export has {result.items} items, the table {expected}")
    location = f"s3://{result.bucket}/{result.prefix}"
    item.update(actions=[TenantItem.export_location.set(location)])
    detail = f"{result.items} items, {result.objects} objects"
    step_record(tenant_id, "export", execution, detail=detail).save()


def purge(tenant_id: str, execution: str, event: dict[str, Any]) -> None:
    """Delete every item and object version of the tenant, then prove none is left."""
    item = _deprovisioning(tenant_id)
    if not item.export_location:
        raise StepFailedError("refusing to purge a tenant without a finished export")
    result = tenant_data.purge_tenant(tenant_id)
    left = tenant_data.count_tenant_items(tenant_id) + tenant_data.count_tenant_objects(tenant_id)
    if left:
        raise TransientStepError(f"{left} items or objects survived the purge")
    detail = f"{result.items} items, {result.object_versions} object versions"
    step_record(tenant_id, "purge", execution, detail=detail).save()


def release(tenant_id: str, execution: str, event: dict[str, Any]) -> None:
    """Give the subdomain back and close the tenant: DEPROVISIONED."""
    item = _deprovisioning(tenant_id)
    uow = UnitOfWork(system_context(execution))
    uow.delete(SubdomainItem(platform_key("SUBDOMAIN", tenant_id), SUBDOMAIN_SK))
    stage_transition(
        uow,
        item,
        TenantStatus.DEPROVISIONED,
        also=(
            TenantItem.apps.remove(),
            TenantItem.licence_id.remove(),
            TenantItem.licence_expires_at.remove(),
        ),
    )
    for app in sorted(item.apps or ()):
        metrics.stage_subscription(uow, app, -1)
    uow.put(step_record(tenant_id, "release", execution))
    uow.audit("platform.tenant.deprovision", "tenant", tenant_id)
    uow.commit()


def record_failure(tenant_id: str, execution: str, event: dict[str, Any]) -> None:
    """Keep the reason a deprovisioning stopped (the tenant stays DEPROVISIONING)."""
    reason = error_text(event)
    item = get_tenant_item(tenant_id)
    item.update(actions=[TenantItem.failure_reason.set(reason)])
    step_record(tenant_id, "deprovision", execution, "failed", reason).save()


STEPS: dict[str, Step] = {
    "export": export,
    "purge": purge,
    "release": release,
    "deprovision_failed": record_failure,
}


def run_step(event: dict[str, Any]) -> dict[str, Any]:
    """Lambda entry for the deprovisioning workflow."""
    name = str(event.get("step"))
    function = STEPS.get(name)
    if function is None:
        raise StepFailedError(f"unknown step {name!r}")
    tenant_id = str(event["tenant_id"])
    execution = str(event.get("execution", ""))
    try:
        return guarded(name, lambda: function(tenant_id, execution, event))
    finally:
        cached_tenants.forget(tenant_id)
