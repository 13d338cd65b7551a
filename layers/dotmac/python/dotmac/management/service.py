"""Management-plane use cases: provision (by operators or sign-up), show, list, suspend,
reactivate, change plan and deprovision tenants."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from dotmac.core import audit_trail, workflows
from dotmac.core.errors import ConflictError, DotmacError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.management import catalog, metrics
from dotmac.management.models import TENANT_SK, LifecycleStepItem, TenantItem
from dotmac.management.provisioning import ProvisioningRequest, stage_transition, step_record
from dotmac.management.repository import (
    TenantStatus,
    cached_tenants,
    find_tenant_item,
    get_tenant_item,
    index_keys,
    tenant_pk,
    tenant_with_steps,
)
from dotmac.management.repository import list_tenants as list_tenant_items
from dotmac.management.schemas import SignupRequest, TenantRequest

PROVISION_MACHINE = "provision_tenant"
DEPROVISION_MACHINE = "deprovision_tenant"
# A finished or failed tenant's subdomain can be asked for again.
REUSABLE = (TenantStatus.FAILED.value, TenantStatus.DEPROVISIONED.value)
TRANSITIONS = {
    "suspend": ((TenantStatus.ACTIVE,), TenantStatus.SUSPENDED),
    "reactivate": ((TenantStatus.SUSPENDED,), TenantStatus.ACTIVE),
    "deprovision": ((TenantStatus.ACTIVE, TenantStatus.SUSPENDED), TenantStatus.DEPROVISIONING),
}


def request_key(idempotency_key: str | None) -> str:
    """The digest a request is known by (a fresh one when the client sent no key)."""
    return hashlib.sha256((idempotency_key or uuid.uuid4().hex).encode()).hexdigest()


def execution_name(tenant_id: str, key: str) -> str:
    return f"{tenant_id}-{key[:16]}"


def request_provisioning(
    ctx: TenantContext, body: TenantRequest, idempotency_key: str | None
) -> tuple[TenantItem, bool]:
    """Record the request (REQUESTED) and start the provisioning workflow.

    Returns the tenant record and whether this call started it: the same Idempotency-Key
    again finds the first request's record and starts nothing. The subdomain becomes the
    tenant id; a subdomain in use by another request is a 409.
    """
    from dotmac.identity import passwords

    catalog.plan(body.plan)
    apps = sorted(catalog.check_apps(body.apps))
    key = request_key(idempotency_key)
    tenant_id = body.subdomain
    existing = find_tenant_item(tenant_id)
    if existing is not None and existing.request_key == key:
        audit_trail.record(ctx, "platform.tenant.replay", "tenant", tenant_id)
        return existing, False
    password_hash = None
    if isinstance(body, SignupRequest):
        passwords.check_policy(body.password)
        password_hash = passwords.hash_password(body.password)
    now = datetime.now(UTC)
    name = execution_name(tenant_id, key)
    item = TenantItem(
        tenant_pk(tenant_id),
        TENANT_SK,
        name=body.name,
        status=TenantStatus.REQUESTED.value,
        plan=body.plan,
        requested_apps=set(apps) or None,
        mfa_required=body.mfa_required,
        admin_email=body.admin_email,
        admin_name=body.admin_name,
        partner_id=body.partner_id,
        request_key=key,
        execution_arn=name,
        created_at=now,
        updated_at=now,
        **index_keys(tenant_id, TenantStatus.REQUESTED.value, body.partner_id),
    )
    uow = UnitOfWork(ctx)
    free = TenantItem.PK.does_not_exist() | TenantItem.status.is_in(*REUSABLE)
    if existing is not None:
        item.version = existing.version  # replaces a FAILED or DEPROVISIONED record
    uow.put(item, condition=free)
    metrics.stage_tenant_state(uow, existing.status if existing else None, item.status)
    uow.audit("platform.tenant.request", "tenant", tenant_id, after={"plan": body.plan})
    try:
        uow.commit()
    except ConflictError:
        again = find_tenant_item(tenant_id)
        if again is not None and again.request_key == key:  # the same request, racing itself
            audit_trail.record(ctx, "platform.tenant.replay", "tenant", tenant_id)
            return again, False
        raise ConflictError(f"subdomain {tenant_id} is taken", code="SUBDOMAIN_TAKEN") from None
    request = ProvisioningRequest(
        tenant_id=tenant_id,
        name=body.name,
        plan=body.plan,
        apps=apps,
        admin_email=body.admin_email,
        admin_name=body.admin_name,
        admin_password_hash=password_hash,
        partner_id=body.partner_id,
        mfa_required=body.mfa_required,
        request_key=key,
        requested_at=time.time(),
    )
    _start(ctx, item, PROVISION_MACHINE, name, {"request": request.model_dump()})
    return get_tenant_item(tenant_id), True


def _start(
    ctx: TenantContext, item: TenantItem, machine: str, name: str, payload: dict[str, Any]
) -> None:
    """Start a workflow; if it cannot start, the tenant is marked FAILED, not left waiting."""
    try:
        arn = workflows.start(machine, name, payload)
    except Exception as exc:
        tenant_id = item.PK.split("#", 1)[1]
        fresh = get_tenant_item(tenant_id)
        uow = UnitOfWork(ctx)
        reason = f"the {machine} workflow did not start"
        stage_transition(
            uow, fresh, TenantStatus.FAILED, also=(TenantItem.failure_reason.set(reason),)
        )
        uow.audit("platform.tenant.fail", "tenant", tenant_id)
        uow.commit()
        raise DotmacError("the workflow could not be started") from exc
    item.update(actions=[TenantItem.execution_arn.set(arn)])


def _current_steps(item: TenantItem, steps: list[LifecycleStepItem]) -> list[LifecycleStepItem]:
    """The steps of the tenant's latest workflow run, oldest first."""
    current = (item.execution_arn or "").rsplit(":", 1)[-1]
    return sorted((s for s in steps if s.execution == current), key=lambda s: s.at)


def step_view(step: LifecycleStepItem) -> dict[str, Any]:
    return {"step": step.step, "outcome": step.outcome, "at": step.at, "detail": step.detail}


def tenant_view(item: TenantItem, steps: list[LifecycleStepItem] | None = None) -> dict[str, Any]:
    """The API's view of a tenant record (and its current run's steps, when given)."""
    view: dict[str, Any] = {
        "name": item.name,
        "status": item.status,
        "plan": item.plan,
        "apps": sorted(item.apps or ()),
        "requested_apps": sorted(item.requested_apps or ()),
        "admin_email": item.admin_email,
        "partner_id": item.partner_id,
        "mfa_required": bool(item.mfa_required),
        "licence_id": item.licence_id,
        "licence_expires_at": (
            item.licence_expires_at.isoformat() if item.licence_expires_at else None
        ),
        "failure_reason": item.failure_reason,
        "status_reason": item.status_reason,
        "export_location": item.export_location,
        "created_at": item.created_at.isoformat(),
        "provisioned_at": item.provisioned_at.isoformat() if item.provisioned_at else None,
    }
    if steps is not None:
        view["steps"] = [step_view(s) for s in _current_steps(item, steps)]
    return view


def tenant_detail(tenant_id: str) -> dict[str, Any]:
    """A tenant with its latest run's step history: one Query."""
    item, steps = tenant_with_steps(tenant_id)
    return tenant_view(item, steps)


def list_tenants(page: PageRequest, status: str | None) -> Page[TenantItem]:
    """One page of tenants, optionally of one status."""
    if status is not None and status not in TenantStatus.__members__:
        from dotmac.core.errors import FieldError, ValidationError

        raise ValidationError(
            "unknown status", details=[FieldError("status", ", ".join(TenantStatus))]
        )
    return list_tenant_items(page, status)


def change_status(
    ctx: TenantContext,
    tenant_id: str,
    transition: str,
    reason: str = "",
    *,
    execution: str | None = None,
) -> TenantItem:
    """Move a tenant along a lifecycle transition (409 from the wrong state); `execution`
    names the workflow run the transition starts."""
    sources, _ = TRANSITIONS[transition]
    item = get_tenant_item(tenant_id)
    run = execution or item.execution_arn or ""
    if item.status not in {s.value for s in sources}:
        raise ConflictError(
            f"cannot {transition} a tenant that is {item.status}", code="INVALID_STATE"
        )
    uow = UnitOfWork(ctx)
    stage_change(uow, item, transition, reason, execution=run)
    uow.audit(f"platform.tenant.{transition}", "tenant", tenant_id, before={"status": item.status})
    uow.commit(conflict="the tenant changed meanwhile; retry")
    cached_tenants.forget(tenant_id)
    return get_tenant_item(tenant_id)


def stage_change(
    uow: UnitOfWork, item: TenantItem, transition: str, reason: str, *, execution: str = ""
) -> None:
    """Stage a lifecycle transition (status, listing key, aggregates, step record) into
    `uow`, conditional on the tenant still being in the state read."""
    _, target = TRANSITIONS[transition]
    tenant_id = item.PK.split("#", 1)[1]
    stage_transition(
        uow,
        item,
        target,
        also=(
            TenantItem.status_reason.set(reason or transition),
            TenantItem.execution_arn.set(execution),
        ),
        condition=TenantItem.status == item.status,
    )
    uow.put(step_record(tenant_id, transition, execution.rsplit(":", 1)[-1], detail=reason or None))


def suspend(ctx: TenantContext, tenant_id: str, reason: str) -> TenantItem:
    """ACTIVE -> SUSPENDED: the tenant's users are refused with 403 TENANT_SUSPENDED."""
    return change_status(ctx, tenant_id, "suspend", reason)


def reactivate(ctx: TenantContext, tenant_id: str, reason: str = "") -> TenantItem:
    """SUSPENDED -> ACTIVE."""
    return change_status(ctx, tenant_id, "reactivate", reason)


def request_deprovision(ctx: TenantContext, tenant_id: str) -> TenantItem:
    """-> DEPROVISIONING, then the workflow exports everything to S3 and purges it."""
    name = f"{tenant_id}-bye-{uuid.uuid4().hex[:12]}"
    item = change_status(ctx, tenant_id, "deprovision", execution=name)
    _start(ctx, item, DEPROVISION_MACHINE, name, {"tenant_id": tenant_id})
    return get_tenant_item(tenant_id)


def acting_in(ctx: TenantContext, tenant_id: str) -> TenantContext:
    """An operator's context inside a tenant (its audit trail names the operator)."""
    return TenantContext(
        tenant_id,
        ctx.user_id,
        roles=ctx.roles,
        permissions=frozenset({"tenant:*:*"}),
        request_id=ctx.request_id,
    )
