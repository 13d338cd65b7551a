"""The steps of the tenant lifecycle workflows (`statemachines/*.asl.json`).

Step Functions calls one Lambda (`lifecycle-steps`) with `{"step", "request", "execution"}`;
`run_step` dispatches to the function registered under that name. Every step is idempotent
(Step Functions retries it on transient errors) and records itself in the tenant's step
history. A transient failure is raised as `TransientStepError`, which the state machines
retry with backoff; anything else goes straight to the Catch, whose `compensate` step
removes everything the run made and marks the tenant FAILED with the reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from dotmac.core import aws
from dotmac.core.errors import ConflictError
from dotmac.core.settings import get_settings
from dotmac.core.tenancy import PLATFORM_TENANT, TenantContext, platform_key, tenant_key
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.core.workflows import StepFailedError, error_text, guarded
from dotmac.management import catalog, metrics
from dotmac.management.models import (
    LicenceItem,
    LifecycleStepItem,
    SubdomainItem,
    TenantItem,
)
from dotmac.management.repository import (
    TenantStatus,
    cached_tenants,
    find_tenant_item,
    get_tenant_item,
    index_keys,
    tenant_pk,
)

WORKER = "provisioning"
# Tenant partitions the provisioning steps write; compensation empties exactly these.
PROVISIONED_PARTITIONS = (
    "USER",
    "EMAIL",
    "ROLE",
    "RT",
    "AUDIT",
    "SUBSCRIPTION",
    "SUBSCRIPTION_EVENT",
    "LICENCE",
    "USAGE",
    "BILLING",
)
SUBDOMAIN_SK = "META"


class ProvisioningRequest(BaseModel):
    """What the workflow was asked to build (the execution input's `request`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    name: str
    plan: str
    apps: list[str]
    admin_email: str
    admin_name: str
    admin_password_hash: str | None = None
    partner_id: str | None = None
    mfa_required: bool = False
    request_key: str
    requested_at: float


Step = Callable[[ProvisioningRequest, str, dict[str, Any]], dict[str, Any] | None]
STEPS: dict[str, Step] = {}


def step(name: str) -> Callable[[Step], Step]:
    def register(function: Step) -> Step:
        STEPS[name] = function
        return function

    return register


def system_context(execution: str) -> TenantContext:
    """The platform acting on its own (audit records name the workflow execution)."""
    return TenantContext(
        PLATFORM_TENANT, WORKER, permissions=frozenset({"platform:*:*"}), request_id=execution
    )


def tenant_system_context(tenant_id: str, execution: str) -> TenantContext:
    """The workflow acting inside the new tenant (its admin and first records)."""
    return TenantContext(
        tenant_id,
        WORKER,
        permissions=frozenset({"identity:*:*", "tenant:*:*"}),
        tenant_status=TenantStatus.PROVISIONING.value,
        request_id=execution,
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def stage_transition(
    uow: UnitOfWork,
    item: TenantItem,
    target: TenantStatus,
    *,
    also: tuple[Any, ...] = (),
    condition: Any = None,
) -> None:
    """Stage a tenant's move to `target` (status, its GSI1 listing key, the state
    aggregates) plus the `also` update actions, all in `uow`'s transaction."""
    tenant_id = item.PK.split("#", 1)[1]
    listing = index_keys(tenant_id, target.value, None)["GSI1SK"]
    uow.update(
        item,
        actions=[
            TenantItem.status.set(target.value),
            TenantItem.GSI1SK.set(listing),
            TenantItem.updated_at.set(now_utc()),
            *also,
        ],
        condition=condition,
    )
    metrics.stage_tenant_state(uow, item.status, target.value)


def step_record(
    tenant_id: str, name: str, execution: str, outcome: str = "ok", detail: str | None = None
) -> LifecycleStepItem:
    at = now_utc().isoformat(timespec="microseconds")
    suffix = f"#{detail}" if detail and outcome == "ok" else ""
    return LifecycleStepItem(
        tenant_pk(tenant_id),
        f"STEP#{at}#{name}{suffix}",
        step=name,
        outcome=outcome,
        at=at,
        detail=detail,
        execution=execution,
    )


def _record(uow: UnitOfWork, request: ProvisioningRequest, name: str, execution: str) -> None:
    uow.put(step_record(request.tenant_id, name, execution))


def _owned(request: ProvisioningRequest) -> TenantItem:
    """The tenant record this run works on; StepFailedError if another request holds it."""
    item = get_tenant_item(request.tenant_id)
    if item.request_key != request.request_key:
        raise StepFailedError(f"tenant {request.tenant_id} belongs to another request")
    return item


def run_step(event: dict[str, Any]) -> dict[str, Any]:
    """Lambda entry for the provisioning workflow: run the step named in the event."""
    name = str(event.get("step"))
    function = STEPS.get(name)
    if function is None:
        raise StepFailedError(f"unknown step {name!r}")
    request = ProvisioningRequest.model_validate(event["request"])
    execution = str(event.get("execution", ""))
    cached_tenants.forget(request.tenant_id)
    try:
        return guarded(name, lambda: function(request, execution, event))
    finally:
        cached_tenants.forget(request.tenant_id)


# --- provisioning -----------------------------------------------------------------------


@step("validate")
def validate(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """Re-check the request against the rules (the API checked them too, maybe long ago)."""
    from dotmac.management.schemas import check_subdomain

    check_subdomain(request.tenant_id)
    catalog.plan(request.plan)
    catalog.check_apps(request.apps)
    if request.partner_id:
        from dotmac.management.partners import get_partner

        get_partner(request.partner_id)
    _owned(request)
    step_record(request.tenant_id, "validate", execution).save()


@step("reserve_subdomain")
def reserve_subdomain(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """Claim the subdomain with a conditional write (a retry of this run finds it its own)."""
    _owned(request)
    reservation = SubdomainItem(
        platform_key("SUBDOMAIN", request.tenant_id),
        SUBDOMAIN_SK,
        tenant_id=request.tenant_id,
        reserved_at=now_utc(),
    )
    uow = UnitOfWork(system_context(execution))
    uow.put(
        reservation,
        condition=SubdomainItem.PK.does_not_exist()
        | (SubdomainItem.tenant_id == request.tenant_id),
    )
    _record(uow, request, "reserve_subdomain", execution)
    uow.audit("platform.subdomain.reserve", "subdomain", request.tenant_id)
    try:
        uow.commit()
    except ConflictError as exc:
        raise StepFailedError(f"subdomain {request.tenant_id} is taken") from exc


def _advance(
    request: ProvisioningRequest,
    execution: str,
    step_name: str,
    source: TenantStatus,
    target: TenantStatus,
    *,
    action: str,
    also: tuple[Any, ...] = (),
) -> bool:
    """Move this run's tenant from `source` to `target` with the step's record and audit;
    False when a retry finds it already moved."""
    item = _owned(request)
    if item.status == target.value:
        return False
    uow = UnitOfWork(system_context(execution))
    stage_transition(uow, item, target, also=also, condition=TenantItem.status == source.value)
    _record(uow, request, step_name, execution)
    uow.audit(action, "tenant", request.tenant_id)
    uow.commit()
    return True


@step("create_tenant")
def create_tenant(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """REQUESTED -> PROVISIONING, with the tenant's details."""
    _advance(
        request,
        execution,
        "create_tenant",
        TenantStatus.REQUESTED,
        TenantStatus.PROVISIONING,
        action="platform.tenant.provision",
    )


@step("create_admin")
def create_admin(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """The tenant's first user, with the tenant_admin role."""
    from dotmac.identity import service as identity
    from dotmac.identity.repository import UserRepository
    from dotmac.identity.schemas import UserCreate

    _owned(request)
    ctx = tenant_system_context(request.tenant_id, execution)
    if UserRepository(ctx).find_by_email(request.admin_email) is None:
        identity.create_user(
            ctx,
            UserCreate(email=request.admin_email, name=request.admin_name, roles=["tenant_admin"]),
            # Without a chosen password the account stays unusable until `welcome` issues a
            # temporary one (so no password ever sits in the execution history).
            password_hash=request.admin_password_hash or f"!unset-{uuid.uuid4().hex}",
        )
    step_record(request.tenant_id, "create_admin", execution).save()


@step("subscribe_app")
def subscribe_app(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """One iteration of the Map: subscribe the tenant to one app."""
    app = str(event["app"])
    catalog.check_apps([app])
    _owned(request)
    from dotmac.management import subscriptions

    subscriptions.subscribe(
        tenant_system_context(request.tenant_id, execution),
        app,
        plan=request.plan,
        extra=(step_record(request.tenant_id, "subscribe_apps", execution, detail=app),),
    )


@step("issue_licence")
def issue_licence(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """A 365-day licence `LIC-YYYYMMDD-<hex>` for the plan and apps."""
    item = _owned(request)
    if item.licence_id:
        return
    issued = now_utc()
    licence_id = f"LIC-{issued:%Y%m%d}-{uuid.uuid4().hex[:12].upper()}"
    valid_until = issued + timedelta(days=catalog.LICENCE_DAYS)
    uow = UnitOfWork(system_context(execution))
    uow.put(
        LicenceItem(
            tenant_key(request.tenant_id, "LICENCE"),
            licence_id,
            plan=request.plan,
            apps=set(request.apps) or None,
            issued_at=issued,
            valid_until=valid_until,
        )
    )
    uow.update(
        item,
        actions=[
            TenantItem.licence_id.set(licence_id),
            TenantItem.licence_expires_at.set(valid_until),
        ],
        condition=TenantItem.licence_id.does_not_exist(),
    )
    _record(uow, request, "issue_licence", execution)
    uow.audit("platform.licence.issue", "licence", licence_id)
    uow.commit()


@step("create_storage")
def create_storage(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """The tenant's S3 prefix (a profile object) and its KMS encryption context."""
    import json

    from dotmac.core import crypto
    from dotmac.management.tenant_data import tenant_object_prefix

    _owned(request)
    profile = {
        "tenant_id": request.tenant_id,
        "name": request.name,
        "created_at": now_utc().isoformat(),
        # Proves KMS answers for this tenant's encryption context before anyone needs it.
        "kms_check": crypto.encrypt(request.tenant_id, request.tenant_id),
    }
    aws.client("s3").put_object(
        Bucket=get_settings().bucket,
        Key=f"{tenant_object_prefix(request.tenant_id)}profile.json",
        Body=json.dumps(profile).encode(),
        ContentType="application/json",
    )
    step_record(request.tenant_id, "create_storage", execution).save()


@step("open_billing_account")
def open_billing_account(
    request: ProvisioningRequest, execution: str, event: dict[str, Any]
) -> None:
    """The billing account the tenant's invoices will be drawn on."""
    from dotmac.billing.models import ACCOUNT_SK, BillingAccountItem

    _owned(request)
    account = BillingAccountItem(
        tenant_key(request.tenant_id, "BILLING"),
        ACCOUNT_SK,
        currency=catalog.plan(request.plan).currency,
        billing_email=request.admin_email,
        opened_at=now_utc(),
    )
    uow = UnitOfWork(system_context(execution))
    uow.put(account, condition=BillingAccountItem.PK.does_not_exist())
    _record(uow, request, "open_billing_account", execution)
    uow.audit("platform.billing_account.open", "tenant", request.tenant_id)
    try:
        uow.commit()
    except ConflictError:
        return  # a retry: the account is already open


@step("activate")
def activate(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """PROVISIONING -> ACTIVE; counts the run as a success."""
    if _advance(
        request,
        execution,
        "activate",
        TenantStatus.PROVISIONING,
        TenantStatus.ACTIVE,
        action="platform.tenant.activate",
        also=(TenantItem.provisioned_at.set(now_utc()),),
    ):
        metrics.record_provisioning(True, time.time() - request.requested_at)


@step("welcome")
def welcome(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """Queue the welcome notification (with a temporary password if none was chosen)."""
    from dotmac.core import queues
    from dotmac.identity import service as identity

    _owned(request)
    data: dict[str, Any] = {"tenant": request.tenant_id, "name": request.name}
    if request.admin_password_hash is None:
        ctx = tenant_system_context(request.tenant_id, execution)
        data["temporary_password"] = identity.issue_temporary_password(ctx, request.admin_email)
    queues.send(
        "notifications",
        {
            "id": f"welcome-{request.request_key[:24]}",
            "tenant_id": request.tenant_id,
            "channel": "email",
            "recipient": request.admin_email,
            "template": "tenant.welcome",
            "data": data,
        },
    )
    step_record(request.tenant_id, "welcome", execution).save()


# --- compensation ------------------------------------------------------------------------


def _delete_partitions(tenant_id: str) -> list[str]:
    """Delete every item of the provisioned partitions; the apps that were subscribed."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.tenant_data import delete_items

    ensure_bound()
    connection: Any = TenantItem._get_connection()
    apps: list[str] = []
    keys: list[dict[str, Any]] = []
    for partition in PROVISIONED_PARTITIONS:
        start = None
        while True:
            answer = connection.query(
                tenant_key(tenant_id, partition), consistent_read=True, exclusive_start_key=start
            )
            for raw in answer.get("Items", []):
                keys.append({"PK": raw["PK"], "SK": raw["SK"]})
                if partition == "SUBSCRIPTION":
                    apps.append(raw["app"]["S"])
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
    delete_items(keys)
    return apps


@step("compensate")
def compensate(request: ProvisioningRequest, execution: str, event: dict[str, Any]) -> None:
    """Undo a failed run: remove its items, objects and reservation; mark the tenant FAILED."""
    reason = error_text(event)
    item = find_tenant_item(request.tenant_id)
    if item is None or item.request_key != request.request_key:
        return  # the record is another request's: nothing of it is ours to undo
    from dotmac.management.tenant_data import delete_objects, tenant_object_prefix

    apps = _delete_partitions(request.tenant_id)
    delete_objects(tenant_object_prefix(request.tenant_id))
    reservation = SubdomainItem(platform_key("SUBDOMAIN", request.tenant_id), SUBDOMAIN_SK)
    uow = UnitOfWork(system_context(execution))
    uow.delete(
        reservation,
        condition=SubdomainItem.PK.does_not_exist()
        | (SubdomainItem.tenant_id == request.tenant_id),
    )
    stage_transition(
        uow,
        item,
        TenantStatus.FAILED,
        also=(
            TenantItem.failure_reason.set(reason),
            TenantItem.apps.remove(),
            TenantItem.licence_id.remove(),
            TenantItem.licence_expires_at.remove(),
        ),
    )
    for app in apps:
        metrics.stage_subscription(uow, app, -1)
    uow.put(step_record(request.tenant_id, "compensate", execution, "compensated", reason))
    uow.audit("platform.tenant.fail", "tenant", request.tenant_id)
    uow.commit()
    metrics.record_provisioning(False, time.time() - request.requested_at)
