"""ISP services: a customer's subscription to a service plan, its state machine, numbering
and prorated plan changes.

Rules (business-rules.md, ISP and "Money and invoices"):
- States (`TRANSITIONS`): PENDING -> ACTIVE or CANCELLED; ACTIVE -> SUSPENDED, MAINTENANCE
  or CANCELLED; SUSPENDED -> ACTIVE or CANCELLED; MAINTENANCE -> ACTIVE (the end of the
  maintenance window; not in business-rules.md, which lists no way out of MAINTENANCE);
  CANCELLED is terminal. The actions (`ACTIONS`) name the edges: activate (PENDING ->
  ACTIVE), suspend, resume (SUSPENDED or MAINTENANCE -> ACTIVE), maintenance, cancel. Any
  other move is 409 INVALID_STATE. Every transition, the creation and every plan change is
  an item recording from, to, who (`ctx.user_id`), why (the request's `reason`) and when.
- Numbers: the plan's service-type prefix (INT, PHN, TV, BDL) + the UTC creation date +
  6 random hex characters, e.g. `INT-20261124-a1b2c3`. The number is the service's id and its
  key, so it is unique by a conditional write (a collision draws a new number).
- A service is created PENDING for a NEW or ACTIVE customer (else 409 CUSTOMER_NOT_ACTIVE)
  and records the plan's name, speeds, price and cycle; the first activation sets
  `started_on`, the anchor of its billing cycles.
- Billing cycles (`cycle_bounds`) start on the customer's billing day (1-28, so every month
  has it) and last the plan's 1, 3 or 12 months, counted from the cycle holding `started_on`.
- A plan change (`prorate_change`) at `effective` (default today, UTC; it must fall in the
  current cycle, on or after the day the current plan took effect) credits the old price for
  the days of [effective, cycle end) and charges the new price for the days of
  [effective, end of the new plan's cycle holding `effective`) — days / days in the cycle,
  Decimal, HALF_UP to the minor unit (`billing.pricing.prorate`). Apply leaves the money
  on the service for its next invoice (`subscriber_billing.plan_change_billing`): a
  prepaid service, invoiced to its cycle's end, gets those credit and charge amounts; a
  service not invoiced past the change (postpaid) gets the old plan's days up to it and is
  billed at the new price from it. A PENDING service has not been billed: nothing to
  credit or charge. The new plan must have the same service type and
  currency. Preview computes it and changes nothing (the quote is audited); apply writes it with
  the same numbers.
- Cancelling releases the IPAM addresses assigned to `service:<number>`
  (`ipam.release_for_service`, after the cancellation commits; safe to run again).
- Activation runs only through the workflow (`dotmac.isp.provisioning`). After a suspend,
  resume or cancel commits, the network adapter is pushed the block, unblock or removal
  (`adapter.push_transition`; the order and the handling of a failed push are in
  `dotmac.isp.adapter`). `status_cause` records the kind of actor behind the current
  status (the `cause` of the transition, e.g. "dunning"; none for a person).

All keys below are inside the tenant's space (`T#<tid>#...`; items in `dotmac.isp.models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create | TransactGetItems, | the customer `ISP_CUSTOMER#<id>` / `ROOT` and the plan |
| | TransactWriteItems | `ISP_PLAN` / `<id>`; then the service `ISP_SERVICE#<number>` |
| | | / `ROOT` if absent, its `LOG#` item, plan `services + 1` if its |
| | | `version` is unchanged, the customer still NEW or ACTIVE, audit |
| get (+ newest transitions) | Query | `ISP_SERVICE#<number>`, descending, 1 + HISTORY_LIMIT |
| list | Query | `ISP_SERVICES`, SK `<created>#<number>` (GSI2) |
| list a customer's | Query | `ISP_CUSTOMER_SERVICES#<customer>`, SK `<created>#<number>` |
| | | (GSI1) |
| transition | GetItem, TransactWriteItems | `ROOT` if `version` unchanged, `LOG#`, (cancel: plan |
| | (+ the get's Query) | `services - 1`), (into or out of ACTIVE: `ISP_DASHBOARD` / |
| | | `MRR#<currency>` ADD), audit |
| | (+ suspend, resume, cancel: | |
| | the push, `dotmac.isp.adapter`) | |
| plan-change preview | GetItem, TransactGetItems, | the service; its customer (billing day) and |
| | PutItem | the new plan; the quote's audit record (nothing else) |
| plan change | as the preview, then | service if `version` unchanged, old plan `services - 1`, |
| | TransactWriteItems | new plan `services + 1` if its `version` is unchanged, `LOG#`, |
| | | (ACTIVE: `ISP_DASHBOARD` / `MRR#<currency>` ADD), audit |
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from dotmac.core.errors import ConflictError, NotFoundError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, query_page, transact_get
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import customers
from dotmac.isp.customers import (
    ROOT,
    Reason,
    RecordRepository,
    creation_entry,
    invalid_state,
    new_transition,
    stage_status_change,
)
from dotmac.isp.models import CustomerItem, PlanItem, ServiceItem, TransitionItem
from dotmac.isp.plans import CYCLE_MONTHS, PLAN, money_view

if TYPE_CHECKING:
    from dotmac.billing.money import Money

SERVICE, SERVICES, CUSTOMER_SERVICES = "ISP_SERVICE", "ISP_SERVICES", "ISP_CUSTOMER_SERVICES"

PENDING, ACTIVE, SUSPENDED = "PENDING", "ACTIVE", "SUSPENDED"
MAINTENANCE, CANCELLED = "MAINTENANCE", "CANCELLED"
STATUSES = (PENDING, ACTIVE, SUSPENDED, MAINTENANCE, CANCELLED)
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({ACTIVE, CANCELLED}),
    ACTIVE: frozenset({SUSPENDED, MAINTENANCE, CANCELLED}),
    SUSPENDED: frozenset({ACTIVE, CANCELLED}),
    MAINTENANCE: frozenset({ACTIVE}),
    CANCELLED: frozenset(),
}
# action -> (states it may start from, state it leads to); every edge is in TRANSITIONS.
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({PENDING}), ACTIVE),
    "suspend": (frozenset({ACTIVE}), SUSPENDED),
    "resume": (frozenset({SUSPENDED, MAINTENANCE}), ACTIVE),
    "maintenance": (frozenset({ACTIVE}), MAINTENANCE),
    "cancel": (frozenset({PENDING, ACTIVE, SUSPENDED}), CANCELLED),
}
PREFIXES = {"internet": "INT", "phone": "PHN", "tv": "TV", "bundle": "BDL"}
NUMBER_PATTERN = r"^(INT|PHN|TV|BDL)-[0-9]{8}-[0-9a-f]{6}$"
FIRST_SERVICE_ACTIVE = "first service activated"
PLAN_CHANGEABLE = frozenset({PENDING, ACTIVE, SUSPENDED, MAINTENANCE})


# --- pure rules ------------------------------------------------------------------------


def can_transition(source: str, target: str) -> bool:
    return target in TRANSITIONS.get(source, frozenset())


def next_status(status: str, action: str) -> str:
    """The state `action` leads to from `status`; 409 INVALID_STATE when it may not."""
    sources, target = ACTIONS[action]
    if status not in sources:
        raise invalid_state("service", status, action)
    return target


def service_number(service_type: str, on: date, token: str | None = None) -> str:
    """`<prefix>-<yyyymmdd>-<6 hex>`, e.g. INT-20261124-a1b2c3."""
    suffix = secrets.token_hex(3) if token is None else token
    if not re.fullmatch(r"[0-9a-f]{6}", suffix):
        raise ValueError("the suffix is 6 lower-case hex characters")
    return f"{PREFIXES[service_type]}-{on:%Y%m%d}-{suffix}"


def _month_index(on: date, billing_day: int) -> int:
    """Months since year 0 of the monthly cycle holding `on` (it starts on `billing_day`)."""
    index = on.year * 12 + on.month - 1
    return index if on.day >= billing_day else index - 1


def _first_of_index(index: int, billing_day: int) -> date:
    return date(index // 12, index % 12 + 1, billing_day)


def cycle_bounds(
    on: date, billing_day: int, months: int = 1, anchor: date | None = None
) -> tuple[date, date]:
    """The billing cycle [start, end) holding `on` (end exclusive): cycles start on
    `billing_day` (1-28) and last `months`, counted from the cycle holding `anchor`."""
    if not 1 <= billing_day <= 28:
        raise ValueError(f"billing day must be 1-28, got {billing_day}")
    if months not in (1, 3, 12):
        raise ValueError(f"a cycle is 1, 3 or 12 months, got {months}")
    index = _month_index(on, billing_day)
    base = index if anchor is None else _month_index(anchor, billing_day)
    start = base + (index - base) // months * months
    return _first_of_index(start, billing_day), _first_of_index(start + months, billing_day)


@dataclass(frozen=True)
class Proration:
    """A plan change's money: credit for the old plan's unused days, charge for the new's."""

    effective: date
    credit: Money
    charge: Money
    cycle: tuple[date, date] | None = None  # the old plan's current cycle
    new_cycle: tuple[date, date] | None = None  # the new plan's cycle holding `effective`

    @property
    def net(self) -> Money:
        """What the customer owes for the change (negative: a credit)."""
        return self.charge - self.credit

    def view(self) -> dict[str, Any]:
        def days(bounds: tuple[date, date] | None) -> dict[str, Any] | None:
            if bounds is None:
                return None
            start, end = bounds
            return {
                "start": start.isoformat(),
                "end": end.isoformat(),  # exclusive
                "days": (end - start).days,
                "remaining_days": (end - self.effective).days,
            }

        return {
            "effective": self.effective.isoformat(),
            "cycle": days(self.cycle),
            "new_cycle": days(self.new_cycle),
            "credit": self.credit.to_json(),
            "charge": self.charge.to_json(),
            "net": self.net.to_json(),
        }


def prorate_change(
    *,
    old_price: Money,
    old_months: int,
    new_price: Money,
    new_months: int,
    billing_day: int,
    effective: date,
    anchor: date,
) -> Proration:
    """Credit the old plan for [effective, end of its cycle) and charge the new plan for
    [effective, end of its cycle holding `effective`), by days (see the module rules)."""
    from dotmac.billing.pricing import prorate

    start, end = cycle_bounds(effective, billing_day, old_months, anchor)
    new_start, new_end = cycle_bounds(effective, billing_day, new_months, anchor)
    credit = prorate(old_price, effective, end, start, end)
    charge = prorate(new_price, effective, new_end, new_start, new_end)
    return Proration(effective, credit, charge, (start, end), (new_start, new_end))


# --- request bodies ------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Id
    plan_id: Id
    reason: Reason | None = None


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: Id
    effective: date | None = None
    reason: Reason | None = None


# --- views ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def service_summary(item: ServiceItem) -> dict[str, Any]:
    return {
        "number": item.number,
        "customer_id": item.customer_id,
        "service_type": item.service_type,
        "status": item.status,
        "plan_id": item.plan_id,
        "plan_name": item.plan_name,
        "download_mbps": None if item.download_mbps is None else int(item.download_mbps),
        "upload_mbps": None if item.upload_mbps is None else int(item.upload_mbps),
        "price": money_view(item.price, item.currency),
        "billing_cycle": item.billing_cycle,
        "started_on": item.started_on,
        "plan_since": item.plan_since,
        "cancelled_at": _iso(item.cancelled_at),
        "status_cause": item.status_cause,
        "network_error": item.network_error,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def service_view(item: ServiceItem, history: list[TransitionItem]) -> dict[str, Any]:
    return {
        **service_summary(item),
        "history": [customers.transition_view(t) for t in history],
    }


# --- data access ---------------------------------------------------------------------------


class ServiceRepository(RecordRepository[ServiceItem]):
    """Services of one tenant; every key is built from the context."""

    model = ServiceItem
    kind = SERVICE
    noun = "service"
    id_pattern = NUMBER_PATTERN

    def services(self, page: PageRequest, customer_id: str | None = None) -> Page[ServiceItem]:
        if customer_id is None:
            return query_page(ServiceItem, self.key(SERVICES), page, index="gsi2")
        return query_page(ServiceItem, self.key(CUSTOMER_SERVICES, customer_id), page, index="gsi1")

    def customer_and_plan(
        self, customer_id: str, plan_id: str
    ) -> tuple[CustomerItem | None, PlanItem | None]:
        """The customer and a plan in one strongly consistent call (TransactGetItems)."""
        return transact_get(
            (CustomerItem, self.key(customers.CUSTOMER, customer_id), ROOT),
            (PlanItem, self.key(PLAN), plan_id),
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _money(amount: str, currency: str) -> Money:
    from dotmac.billing.money import Money

    return Money(amount, currency)


# --- use cases -----------------------------------------------------------------------------


def create_service(
    ctx: TenantContext, body: ServiceCreate
) -> tuple[ServiceItem, list[TransitionItem]]:
    """A PENDING service of a NEW or ACTIVE customer on a plan, at the plan's current price."""
    from dotmac.core.retry import until_won

    repo = ServiceRepository(ctx)
    done: list[tuple[ServiceItem, list[TransitionItem]]] = []

    def attempt() -> None:
        customer, plan = repo.customer_and_plan(body.customer_id, body.plan_id)
        if customer is None:
            raise customers.invalid("customer_id", "no such customer")
        if plan is None:
            raise customers.invalid("plan_id", "no such service plan")
        if customer.status not in (customers.NEW, customers.ACTIVE):
            raise ConflictError(
                f"a {customer.status} customer cannot get new services",
                code="CUSTOMER_NOT_ACTIVE",
            )
        now = _now()
        number = service_number(plan.service_type, now.date())
        partition = repo.partition(number)
        order = f"{now.isoformat(timespec='microseconds')}#{number}"
        item = ServiceItem(
            partition,
            ROOT,
            GSI1PK=ctx.key(CUSTOMER_SERVICES, body.customer_id),
            GSI1SK=order,
            GSI2PK=ctx.key(SERVICES),
            GSI2SK=order,
            number=number,
            customer_id=body.customer_id,
            service_type=plan.service_type,
            plan_id=body.plan_id,
            plan_name=plan.name,
            download_mbps=plan.download_mbps,
            upload_mbps=plan.upload_mbps,
            price=plan.price,
            currency=plan.currency,
            billing_cycle=plan.billing_cycle,
            status=PENDING,
            version=1,
            created_at=now,
            created_by=ctx.user_id,
            updated_at=now,
        )
        log = creation_entry(
            ctx,
            partition,
            PENDING,
            now,
            reason=body.reason or "created",
        )
        uow = UnitOfWork(ctx)
        uow.put(item, condition=ServiceItem.PK.does_not_exist())
        uow.put(log)
        uow.update(
            PlanItem(ctx.key(PLAN), body.plan_id),
            [PlanItem.services.add(1)],
            condition=PlanItem.version == int(plan.version),
        )
        uow.check(
            CustomerItem,
            customer.PK,
            ROOT,
            condition=CustomerItem.status.is_in(customers.NEW, customers.ACTIVE),
        )
        uow.audit("isp.service.create", "service", number, after=service_summary(item))
        uow.commit(conflict="the customer or the plan changed meanwhile; retry")
        done[:] = [(item, [log])]

    until_won(attempt)
    return done[0]


def get_service(
    ctx: TenantContext, number: str, *, consistent: bool = False
) -> tuple[ServiceItem, list[TransitionItem]]:
    return ServiceRepository(ctx).with_history(number, consistent=consistent)


def list_services(
    ctx: TenantContext, page: PageRequest, customer_id: str | None = None
) -> Page[ServiceItem]:
    if customer_id is not None and not re.fullmatch(customers.ID_PATTERN, customer_id):
        raise customers.invalid("customer", "not a customer id")
    return ServiceRepository(ctx).services(page, customer_id)


def transition(
    ctx: TenantContext,
    number: str,
    action: str,
    body: customers.TransitionRequest,
    *,
    cause: str | None = None,
) -> tuple[ServiceItem, list[TransitionItem]]:
    """Move a service along `ACTIONS[action]`, recording who and why (`cause`: the kind of
    actor, e.g. "dunning"; None for a person) and then pushing the change to the network; a
    cancellation also frees the plan (its `services` counter) and then releases the
    service's IP addresses."""
    from dotmac.core.retry import until_won
    from dotmac.isp import adapter, dashboard

    repo = ServiceRepository(ctx)
    partition = repo.partition(repo.check_id(number))

    def attempt() -> None:
        item = repo.record(number, consistent=True)
        target = next_status(item.status, action)
        now = _now()
        actions: list[Any] = [
            ServiceItem.status.set(target),
            ServiceItem.status_cause.remove()
            if cause is None
            else ServiceItem.status_cause.set(cause),
            ServiceItem.updated_at.set(now),
            ServiceItem.version.add(1),
        ]
        if target == ACTIVE and item.started_on is None:
            actions += [
                ServiceItem.started_on.set(now.date().isoformat()),
                ServiceItem.plan_since.set(now.date().isoformat()),
            ]
        uow = UnitOfWork(ctx)
        if target == ACTIVE and item.started_on is None:
            _stage_first_activation(uow, ctx, item.customer_id)
        if target == CANCELLED:
            actions.append(ServiceItem.cancelled_at.set(now))
            uow.update(
                PlanItem(ctx.key(PLAN), item.plan_id),
                [PlanItem.services.add(-1)],
                condition=PlanItem.PK.exists(),
            )
        uow.update(
            ServiceItem(partition, ROOT),
            actions,
            condition=ServiceItem.version == int(item.version),
        )
        stage_status_change(
            uow,
            partition,
            resource_type="service",
            resource_id=number,
            version=int(item.version) + 1,
            action=action,
            from_status=item.status,
            to_status=target,
            reason=body.reason,
            at=now,
        )
        dashboard.stage_mrr(uow, ctx, item, status=target)
        uow.commit(conflict="the service changed meanwhile; retry")

    until_won(attempt)
    found = repo.with_history(number, consistent=True)
    if not adapter.push_transition(ctx, found[0], action):
        found = repo.with_history(number, consistent=True)  # with the push failure recorded
    if ACTIONS[action][1] == CANCELLED:
        _release_addresses(ctx, number)
    return found


def _stage_first_activation(uow: UnitOfWork, ctx: TenantContext, customer_id: str) -> None:
    """A NEW customer becomes ACTIVE with his first active service (same transaction)."""
    customer = customers.CustomerRepository(ctx).customer(customer_id, consistent=True)
    if customer.status == customers.NEW:
        customers.stage_transition(uow, ctx, customer, "activate", FIRST_SERVICE_ACTIVE)


def _release_addresses(ctx: TenantContext, number: str) -> None:
    """Free the cancelled service's IP addresses (their own transaction and audit record).
    A failure is logged, not raised: the cancellation stands, and the release is safe to
    run again (`ipam.release_for_service`)."""
    from dotmac.isp import ipam

    try:
        ipam.release_for_service(ctx, number)
    except Exception:
        from dotmac.core.observability import get_logger

        get_logger().exception("addresses of a cancelled service not released", service=number)


def _quote(
    ctx: TenantContext, repo: ServiceRepository, number: str, body: PlanChange
) -> tuple[ServiceItem, PlanItem, Proration]:
    """Read the service, its customer and the new plan; price the change (writes nothing)."""
    service = repo.record(number, consistent=True)
    if service.status not in PLAN_CHANGEABLE:
        raise invalid_state("service", service.status, "change plan")
    customer, plan = repo.customer_and_plan(service.customer_id, body.plan_id)
    if plan is None:
        raise customers.invalid("plan_id", "no such service plan")
    if customer is None:  # pragma: no cover - customers are never deleted
        raise NotFoundError(f"the customer of service {number} is gone")
    if service.plan_id == plan.SK:
        raise customers.invalid("plan_id", "the service is already on this plan")
    if plan.service_type != service.service_type:
        raise customers.invalid("plan_id", f"not a {service.service_type} plan")
    if plan.currency != service.currency:
        raise customers.invalid(
            "plan_id", f"priced in {plan.currency}, the service in {service.currency}"
        )
    today = _now().date()
    effective = body.effective or today
    old_price = _money(service.price, service.currency)
    new_price = _money(plan.price, plan.currency)
    if service.started_on is None:  # PENDING: not billed yet
        if effective != today:
            raise customers.invalid("effective", "a pending service changes plan today")
        zero = old_price * 0
        return service, plan, Proration(effective, zero, zero)
    billing_day = int(customer.billing_day)
    anchor = date.fromisoformat(service.started_on)
    start, end = cycle_bounds(today, billing_day, CYCLE_MONTHS[service.billing_cycle], anchor)
    earliest = max(start, date.fromisoformat(service.plan_since or service.started_on))
    if not earliest <= effective < end:
        last = end - timedelta(days=1)
        raise customers.invalid("effective", f"must be in the current cycle, {earliest} to {last}")
    proration = prorate_change(
        old_price=old_price,
        old_months=CYCLE_MONTHS[service.billing_cycle],
        new_price=new_price,
        new_months=CYCLE_MONTHS[plan.billing_cycle],
        billing_day=billing_day,
        effective=effective,
        anchor=anchor,
    )
    return service, plan, proration


def _change_view(service: ServiceItem, plan: PlanItem, proration: Proration) -> dict[str, Any]:
    return {
        "service": service.number,
        "from_plan": {
            "id": service.plan_id,
            "name": service.plan_name,
            "price": money_view(service.price, service.currency),
            "billing_cycle": service.billing_cycle,
        },
        "to_plan": {
            "id": plan.SK,
            "name": plan.name,
            "price": money_view(plan.price, plan.currency),
            "billing_cycle": plan.billing_cycle,
        },
        **proration.view(),
    }


def preview_plan_change(ctx: TenantContext, number: str, body: PlanChange) -> dict[str, Any]:
    """What a plan change would credit and charge. Changes nothing; the quote given is
    recorded in the audit trail (`isp.service.plan_quote`: who was quoted what, when)."""
    from dotmac.core import audit_trail

    repo = ServiceRepository(ctx)
    repo.check_id(number)
    quote = _change_view(*_quote(ctx, repo, number, body))
    audit_trail.record(
        ctx,
        "isp.service.plan_quote",
        "service",
        number,
        after={"plan_id": body.plan_id, "net": quote["net"], "effective": quote["effective"]},
    )
    return quote


def _billing_actions(service: ServiceItem, plan: PlanItem, proration: Proration) -> list[Any]:
    """The change's effect on the service's billing (`subscriber_billing.plan_change_billing`):
    pending charges and credit for its next invoice, and the day it is billed through."""
    from dotmac.isp.subscriber_billing import plan_change_billing

    billing = plan_change_billing(service, plan.name, proration)
    if billing is None:
        return []
    credit = _money(service.pending_credit or "0", service.currency) + billing.credit
    return [
        ServiceItem.pending_lines.set([*(service.pending_lines or []), *billing.lines]),
        ServiceItem.pending_credit.set(str(credit.amount)),
        ServiceItem.billed_through.set(billing.billed_through.isoformat()),
    ]


def change_plan(
    ctx: TenantContext, number: str, body: PlanChange
) -> tuple[ServiceItem, list[TransitionItem], dict[str, Any]]:
    """Move the service to another plan at the prorated amounts the preview shows, recording
    the change (with the amounts) as a transition."""
    from dotmac.core.retry import until_won
    from dotmac.isp import dashboard

    repo = ServiceRepository(ctx)
    partition = repo.partition(repo.check_id(number))
    quoted: list[dict[str, Any]] = []

    def attempt() -> None:
        service, plan, proration = _quote(ctx, repo, number, body)
        change = _change_view(service, plan, proration)
        now = _now()
        since = None if service.started_on is None else proration.effective.isoformat()
        uow = UnitOfWork(ctx)
        uow.update(
            ServiceItem(partition, ROOT),
            [
                ServiceItem.plan_id.set(plan.SK),
                ServiceItem.plan_name.set(plan.name),
                ServiceItem.price.set(plan.price),
                ServiceItem.billing_cycle.set(plan.billing_cycle),
                ServiceItem.download_mbps.remove()
                if plan.download_mbps is None
                else ServiceItem.download_mbps.set(plan.download_mbps),
                ServiceItem.upload_mbps.remove()
                if plan.upload_mbps is None
                else ServiceItem.upload_mbps.set(plan.upload_mbps),
                ServiceItem.plan_since.remove()
                if since is None
                else ServiceItem.plan_since.set(since),
                ServiceItem.updated_at.set(now),
                ServiceItem.version.add(1),
                *_billing_actions(service, plan, proration),
            ],
            condition=ServiceItem.version == int(service.version),
        )
        uow.update(
            PlanItem(ctx.key(PLAN), service.plan_id),
            [PlanItem.services.add(-1)],
            condition=PlanItem.PK.exists(),
        )
        uow.update(
            PlanItem(ctx.key(PLAN), plan.SK),
            [PlanItem.services.add(1)],
            condition=PlanItem.version == int(plan.version),
        )
        dashboard.stage_mrr(uow, ctx, service, plan=plan)
        uow.put(
            new_transition(
                ctx,
                partition,
                version=int(service.version) + 1,
                action="plan_change",
                from_status=service.status,
                to_status=service.status,
                reason=body.reason or "plan change",
                at=now,
                details=change,
            )
        )
        uow.audit(
            "isp.service.plan_change",
            "service",
            number,
            before={"plan_id": service.plan_id, "price": service.price},
            after={"plan_id": plan.SK, "price": plan.price, "net": change["net"]},
        )
        uow.commit(conflict="the service or the plan changed meanwhile; retry")
        quoted[:] = [change]

    until_won(attempt)
    item, history = repo.with_history(number, consistent=True)
    return item, history, quoted[0]
