"""ISP service activation as a Step Functions workflow
(`statemachines/activate_isp_service.asl.json`; every step runs in the
`isp-activation-steps` Lambda, `run_step`).

Rules:
- Starting (`POST /services/{number}/activation {prefix_id, reason?}`): the service must be
  PENDING (409 INVALID_STATE) and its customer NEW or ACTIVE (409 CUSTOMER_NOT_ACTIVE); the
  prefix must exist (400). A service has one activation record: it is written RUNNING on
  condition that there is none or only a FAILED one (a RUNNING one: 409
  ACTIVATION_RUNNING; after a SUCCEEDED or INCOMPLETE one the service is no longer PENDING).
  The execution is named `<number>-<16 hex>`, random, or derived from the Idempotency-Key:
  the same key again answers with the same activation, whatever its status, and starts
  nothing (with another prefix or reason: 422 IDEMPOTENCY_KEY_REUSED). An execution that
  cannot start leaves the record FAILED (503).
- The steps act as the user who started the activation (the transition and the audit
  records name them), with the execution name as request id. Each is idempotent (Step
  Functions retries `TransientStepError` with back-off) and appends itself to the record:
  1. `validate`: the service still PENDING, its customer NEW or ACTIVE (the checks above);
  2. `allocate_ip`: one address from the prefix, assigned to `service:<number>`, with the
     IPAM Idempotency-Key `activation:<execution>`, so a retried step gets the same address
     back instead of a second one;
  3. `configure`: the network adapter's `activate` with the address and the plan's rate
     (`dotmac.isp.adapter`);
  4. `activate`: `services.transition(..., "activate")`, PENDING -> ACTIVE with the
     request's reason (a retry that finds this execution's transition skips it);
  5. `invoice`: `subscriber_billing.invoice_activation`, the prorated first invoice (None
     for a postpaid customer, invoiced at the end of the cycle); the record becomes
     SUCCEEDED with the addresses and the invoice number.
- A step that fails for good goes to `compensate`. Until this execution made the service
  ACTIVE, it undoes everything: the adapter's `deactivate`, the addresses released
  (`ipam.release_for_service`, which finds them on an index: an address allocated a moment
  before may be missing from it, and is released when the service is cancelled), the
  service stays PENDING and the record FAILED with the error, so a new activation may
  start. Once the service is ACTIVE nothing is undone (a live service keeps its address and
  configuration): the record is INCOMPLETE with the error (the first invoice is missing).
- If the compensation itself keeps failing, `abandon` marks the record FAILED with both
  errors, so the service is not held by a run that is over.

All keys below are inside the tenant's space (`T#<tid>#...`; items in
`dotmac.isp.provisioning_models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| start | GetItem x3, | the service `ISP_SERVICE#<number>` / `ROOT` (consistent), its customer, |
| | TransactWriteItems, | the prefix; `ISP_SERVICE_NET#<number>` / `ACTIVATION` if absent |
| | StartExecution | or FAILED, audit (+ with an Idempotency-Key, a GetItem of it first) |
| get the activation | GetItem | `ISP_SERVICE_NET#<number>` / `ACTIVATION` |
| a step | GetItem, its work, | the record (consistent); the step appended (`list_append`) if |
| | UpdateItem | `execution` is this run's |
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from dotmac.core import audit_trail, workflows
from dotmac.core.errors import (
    ConflictError,
    DependencyUnavailableError,
    FieldError,
    NotFoundError,
    UnprocessableError,
    ValidationError,
)
from dotmac.core.repository import TenantRepository
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.core.workflows import StepFailedError, error_text, guarded
from dotmac.isp import customers, services
from dotmac.isp.adapter import NETWORK, network_adapter
from dotmac.isp.customers import Reason
from dotmac.isp.models import ServiceItem, TransitionItem
from dotmac.isp.provisioning_models import ActivationItem, StepRecord

MACHINE = "activate_isp_service"
ACTIVATION = "ACTIVATION"
RUNNING, SUCCEEDED, FAILED, INCOMPLETE = "RUNNING", "SUCCEEDED", "FAILED", "INCOMPLETE"
DEFAULT_REASON = "activated"


class ActivationStart(BaseModel):
    """`POST /services/{number}/activation`."""

    model_config = ConfigDict(extra="forbid")

    prefix_id: services.Id
    reason: Reason | None = None


class ActivationRequest(BaseModel):
    """What the workflow was asked to do (the execution input's `request`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str
    number: str
    prefix_id: str
    reason: str
    started_by: str


def _now() -> datetime:
    return datetime.now(UTC)


def step_context(request: ActivationRequest, execution: str) -> TenantContext:
    """The workflow acting for the user who started it (request id: the execution)."""
    return TenantContext(
        request.tenant_id,
        request.started_by,
        permissions=frozenset({"isp:*:*"}),
        apps=frozenset({"isp"}),
        request_id=execution,
    )


def execution_name(ctx: TenantContext, number: str, idempotency_key: str | None) -> str:
    """`<number>-<16 hex>`: from the Idempotency-Key (scoped to the tenant and the service)
    when there is one, else random."""
    if idempotency_key is None:
        return f"{number}-{uuid.uuid4().hex[:16]}"
    seed = f"{ctx.tenant_id}\n{number}\n{idempotency_key}".encode()
    return f"{number}-{hashlib.sha256(seed).hexdigest()[:16]}"


# --- views and data access -------------------------------------------------------------------


def activation_view(item: ActivationItem) -> dict[str, Any]:
    return {
        "service": item.number,
        "execution": item.execution,
        "status": item.status,
        "prefix_id": item.prefix_id,
        "reason": item.reason,
        "started_by": item.started_by,
        "started_at": item.started_at.isoformat(),
        "finished_at": None if item.finished_at is None else item.finished_at.isoformat(),
        "addresses": [str(a) for a in item.addresses or ()],
        "invoice": item.invoice,
        "error": item.error,
        "steps": [
            {"step": s.step, "outcome": s.outcome, "at": s.at.isoformat(), "detail": s.detail}
            for s in item.steps or ()
        ],
    }


class ActivationRepository(TenantRepository):
    """The activation records of one tenant's services."""

    def blank(self, number: str) -> ActivationItem:
        """The record's key alone (for updates)."""
        return ActivationItem(self.key(NETWORK, number), ACTIVATION)

    def activation(self, number: str, *, consistent: bool = False) -> ActivationItem | None:
        try:
            return ActivationItem.get(
                self.key(NETWORK, number), ACTIVATION, consistent_read=consistent
            )
        except ActivationItem.DoesNotExist:
            return None


def get_activation(ctx: TenantContext, number: str) -> ActivationItem:
    """A service's activation record (404 if the service was never sent to activation)."""
    services.ServiceRepository(ctx).check_id(number)
    found = ActivationRepository(ctx).activation(number)
    if found is None:
        raise NotFoundError(f"no activation of service {number}")
    return found


def _activatable(ctx: TenantContext, number: str) -> ServiceItem:
    """The service, if it is PENDING and its customer NEW or ACTIVE (409 otherwise)."""
    service = services.ServiceRepository(ctx).record(number, consistent=True)
    if service.status != services.PENDING:
        raise customers.invalid_state("service", service.status, "activate")
    customer = customers.CustomerRepository(ctx).customer(service.customer_id, consistent=True)
    if customer.status not in (customers.NEW, customers.ACTIVE):
        raise ConflictError(
            f"a {customer.status} customer's service cannot be activated",
            code="CUSTOMER_NOT_ACTIVE",
        )
    return service


# --- starting --------------------------------------------------------------------------------


def start(
    ctx: TenantContext, number: str, body: ActivationStart, idempotency_key: str | None
) -> tuple[ActivationItem, bool]:
    """Record the activation RUNNING and start its workflow (see the module rules); returns
    the record and whether this call started it."""
    from dotmac.isp.ipam import IpamRepository

    repo = ActivationRepository(ctx)
    services.ServiceRepository(ctx).check_id(number)
    name = execution_name(ctx, number, idempotency_key)
    reason = body.reason or DEFAULT_REASON
    if idempotency_key is not None:
        earlier = repo.activation(number, consistent=True)
        if earlier is not None and earlier.execution == name:
            return _replay(ctx, earlier, body.prefix_id, reason), False
    _activatable(ctx, number)
    try:
        IpamRepository(ctx).prefix(body.prefix_id)
    except NotFoundError:
        raise ValidationError(
            "invalid prefix_id", details=[FieldError("prefix_id", "no such prefix")]
        ) from None
    item = ActivationItem(
        repo.key(NETWORK, number),
        ACTIVATION,
        number=number,
        execution=name,
        status=RUNNING,
        prefix_id=body.prefix_id,
        reason=reason,
        started_by=ctx.user_id,
        started_at=_now(),
        steps=[],
    )
    uow = UnitOfWork(ctx)
    uow.put(item, condition=ActivationItem.PK.does_not_exist() | (ActivationItem.status == FAILED))
    uow.audit(
        "isp.service.activation_start",
        "service",
        number,
        after={"execution": name, "prefix_id": body.prefix_id, "reason": reason},
    )
    try:
        uow.commit()
    except ConflictError:
        current = repo.activation(number, consistent=True)
        if current is not None and current.execution == name:  # the same key, racing itself
            return _replay(ctx, current, body.prefix_id, reason), False
        status = RUNNING if current is None else current.status
        raise ConflictError(
            f"an activation of {number} is {status}", code="ACTIVATION_RUNNING"
        ) from None
    request = ActivationRequest(
        tenant_id=ctx.tenant_id,
        number=number,
        prefix_id=body.prefix_id,
        reason=reason,
        started_by=ctx.user_id,
    )
    try:
        workflows.start(MACHINE, name, {"request": request.model_dump()})
    except Exception as exc:
        _finish(
            ctx, number, name, FAILED, error="the activation workflow did not start", step="start"
        )
        raise DependencyUnavailableError("the activation workflow could not be started") from exc
    return item, True


def _replay(
    ctx: TenantContext, item: ActivationItem, prefix_id: str, reason: str
) -> ActivationItem:
    """The activation an Idempotency-Key started (422 if the key came with another request)."""
    if (item.prefix_id, item.reason) != (prefix_id, reason):
        raise UnprocessableError(
            "this Idempotency-Key was used for a different request",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    audit_trail.record(ctx, "isp.service.activation_replay", "service", item.number)
    return item


# --- the steps -------------------------------------------------------------------------------

Step = Callable[[TenantContext, ActivationRequest, str, dict[str, Any]], dict[str, Any] | None]


def _owned(ctx: TenantContext, request: ActivationRequest, execution: str) -> ActivationItem:
    """This run's record; StepFailedError if another run holds the service's record."""
    item = ActivationRepository(ctx).activation(request.number, consistent=True)
    if item is None or item.execution != execution:
        raise StepFailedError(f"the activation of {request.number} belongs to another run")
    return item


def _done(item: ActivationItem, step: str) -> bool:
    return any(s.step == step and s.outcome == "ok" for s in item.steps or ())


def _note(
    ctx: TenantContext,
    number: str,
    execution: str,
    step: str,
    *,
    outcome: str = "ok",
    detail: str | None = None,
    also: Sequence[Any] = (),
) -> None:
    """Append a step to this run's record, with the `also` update actions."""
    record = StepRecord(step=step, outcome=outcome, at=_now(), detail=detail)
    steps = ActivationItem.steps
    ActivationRepository(ctx).blank(number).update(
        actions=[steps.set((steps | []).append([record])), *also],
        condition=ActivationItem.execution == execution,
    )


def _finish(
    ctx: TenantContext, number: str, execution: str, status: str, *, error: str, step: str
) -> None:
    """End this run's record FAILED (undone) or INCOMPLETE with the error (audited)."""
    outcome = "compensated" if status == FAILED else "failed"
    record = StepRecord(step=step, outcome=outcome, at=_now(), detail=error)
    steps = ActivationItem.steps
    uow = UnitOfWork(ctx)
    uow.update(
        ActivationRepository(ctx).blank(number),
        [
            ActivationItem.status.set(status),
            ActivationItem.finished_at.set(_now()),
            ActivationItem.error.set(error),
            steps.set((steps | []).append([record])),
        ],
        condition=(ActivationItem.execution == execution) & (ActivationItem.status == RUNNING),
    )
    uow.audit(
        f"isp.service.activation_{status.lower()}",
        "service",
        number,
        before={"status": RUNNING},
        after={"status": status, "error": error},
    )
    uow.commit()


def _activated_by(history: Sequence[TransitionItem], execution: str) -> bool:
    """Whether this run's `activate` transition is in the service's history."""
    return any(t.action == "activate" and t.request_id == execution for t in history)


def validate(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """Re-check the service and its customer (the request may be a while old)."""
    if not _done(_owned(ctx, request, execution), "validate"):
        _activatable(ctx, request.number)
        _note(ctx, request.number, execution, "validate")


def allocate_ip(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """One address from the prefix for `service:<number>` (a retry gets the same one)."""
    from dotmac.isp import ipam

    if _done(_owned(ctx, request, execution), "allocate_ip"):
        return
    allocation = ipam.allocate(
        ctx,
        request.prefix_id,
        ipam.AllocationRequest(
            count=1,
            assigned_to=f"service:{request.number}",
            description=f"activation of {request.number}",
        ),
        idempotency_key=f"activation:{execution}",
    )
    addresses: list[Any] = [str(view["address"]) for view in allocation.addresses]
    _note(
        ctx,
        request.number,
        execution,
        "allocate_ip",
        detail=", ".join(addresses),
        also=(ActivationItem.addresses.set(addresses),),
    )


def configure(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """Push the service's address and rate through the network adapter."""
    record = _owned(ctx, request, execution)
    if _done(record, "configure"):
        return
    service = services.ServiceRepository(ctx).record(request.number, consistent=True)
    addresses = [str(a) for a in record.addresses or ()]
    sent = network_adapter().activate(ctx, service, addresses)
    _note(ctx, request.number, execution, "configure", detail=f"{len(sent)} commands")


def activate(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """PENDING -> ACTIVE, recorded as the user who started the activation, with its reason."""
    if _done(_owned(ctx, request, execution), "activate"):
        return
    _, history = services.get_service(ctx, request.number, consistent=True)
    if not _activated_by(history, execution):
        reason = customers.TransitionRequest(reason=request.reason)
        services.transition(ctx, request.number, "activate", reason)
    _note(ctx, request.number, execution, "activate")


def invoice(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """The first (prorated) invoice through the billing engine; the run SUCCEEDED."""
    from dotmac.isp import subscriber_billing

    if _owned(ctx, request, execution).status != RUNNING:
        return
    issued = subscriber_billing.invoice_activation(ctx, request.number)
    _note(
        ctx,
        request.number,
        execution,
        "invoice",
        detail=issued or "nothing billed now (postpaid: at the end of the cycle)",
        also=(
            ActivationItem.status.set(SUCCEEDED),
            ActivationItem.finished_at.set(_now()),
            ActivationItem.invoice.remove()
            if issued is None
            else ActivationItem.invoice.set(issued),
        ),
    )


def compensate(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> dict[str, Any]:
    """Undo a failed run that did not make the service ACTIVE (FAILED), or record why one
    that did is INCOMPLETE; the outcome steers the state machine's last Choice."""
    from dotmac.isp import ipam

    record = ActivationRepository(ctx).activation(request.number, consistent=True)
    if record is None or record.execution != execution:
        return {"outcome": FAILED}  # the record is another run's: nothing of it is ours
    if record.status != RUNNING:
        return {"outcome": record.status}  # a retry after the record was finished
    reason = error_text(event)
    service, history = services.get_service(ctx, request.number, consistent=True)
    if _activated_by(history, execution):
        _finish(ctx, request.number, execution, INCOMPLETE, error=reason, step="compensate")
        return {"outcome": INCOMPLETE}
    network_adapter().deactivate(ctx, service)
    ipam.release_for_service(ctx, request.number)
    _finish(ctx, request.number, execution, FAILED, error=reason, step="compensate")
    return {"outcome": FAILED}


def abandon(
    ctx: TenantContext, request: ActivationRequest, execution: str, event: dict[str, Any]
) -> None:
    """The compensation failed too: end the record FAILED with both errors."""
    record = ActivationRepository(ctx).activation(request.number, consistent=True)
    if record is None or record.execution != execution or record.status != RUNNING:
        return
    cleanup = error_text({"error": event.get("cleanup_error")})
    reason = f"{error_text(event)}; the clean-up failed too: {cleanup}"[:1000]
    _finish(ctx, request.number, execution, FAILED, error=reason, step="abandon")


STEPS: dict[str, Step] = {
    "validate": validate,
    "allocate_ip": allocate_ip,
    "configure": configure,
    "activate": activate,
    "invoice": invoice,
    "compensate": compensate,
    "abandon": abandon,
}


def run_step(event: dict[str, Any]) -> dict[str, Any]:
    """Lambda entry for the activation workflow: run the step named in the event."""
    name = str(event.get("step"))
    function = STEPS.get(name)
    if function is None:
        raise StepFailedError(f"unknown step {name!r}")
    request = ActivationRequest.model_validate(event["request"])
    execution = str(event.get("execution", ""))
    ctx = step_context(request, execution)
    return guarded(name, lambda: function(ctx, request, execution, event))
