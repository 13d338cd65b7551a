"""ISP admin dashboard: customers by state, monthly recurring revenue, receivables, open
tickets by SLA status and address utilisation, read from aggregates that move in the same
transactions as the changes they count (never from scans or list reads).

Figures (per tenant):
- `customers`: customers per state (NEW, ACTIVE, BLOCKED, INACTIVE) and their total. Moved
  by the creation (`customers.create_customer`) and every transition
  (`customers.stage_transition`, which subscriber billing's dunning uses too).
- `mrr`: per currency, the monthly recurring revenue of the ACTIVE services and how many
  they are. A service's share is its price per month (`monthly`: monthly as is, quarterly
  / 3, annual / 12, HALF_UP to the minor unit); PENDING, SUSPENDED, MAINTENANCE and
  CANCELLED services earn none. Moved by service transitions into and out of ACTIVE and by
  plan changes of an ACTIVE service (`stage_mrr`, from `services`).
- `receivables`: per currency, what subscribers owe (`outstanding`: invoiced minus paid and
  credited) and the part of it past its due date (`overdue`). Moved by subscriber billing
  (`stage_receivable`).
- `tickets`: the open tickets (OPEN, IN_PROGRESS), `on_track` (no breach recorded) or
  `breached` (a first-response or resolution breach flag set, by the sweep or by a write
  that found the breach; a flag is never removed). Moved in `tickets` by the creation,
  every write that records a breach, resolve, close and reopen. A ticket whose deadline
  passed is on track until its breach is recorded, as in the `?sla=` lists.
- `ip_addresses`: per family (4, 6), the leaf prefixes (those addresses are allocated from),
  their usable addresses, the addresses allocated from them (`assigned`), `free`,
  `utilisation` % and how many leaves are at or over their alert threshold. Moved in `ipam`
  by allocations and releases, by prefix creation and deletion (a prefix is a leaf until it
  gets a child prefix) and by alert-threshold changes. The counter conditions of those
  writes (`ipam.guard_for`, the threshold read) prove whether a prefix crossed its
  threshold, so each crossing is counted once however many writers race.

How: every figure is an `ADD` on one of a few small items of the tenant's `ISP_DASHBOARD`
partition (`dotmac.isp.dashboard_models`), staged in the `UnitOfWork` of the change it
counts: it commits or fails with that change, so it cannot drift from what it counts. The
items are split by area (customers, tickets, MRR and receivables per currency, addresses
per family) so unrelated writes do not contend for one item (on DynamoDB, one of two
transactions touching the same item at once is cancelled, and retries). A transaction may
not touch one item twice: stage each aggregate at most once per unit of work (one customer
transition, one ticket change, one receivables move per currency).

All keys below are inside the tenant's space (`T#<tid>#...`):

| pattern | calls | key condition / what is written |
|---|---|---|
| dashboard | Query | `ISP_DASHBOARD` (every aggregate; a handful of items) |
| kept up to date | none of its own: an update | `ISP_DASHBOARD` / `CUSTOMERS`, `TICKETS`, |
| | in the writer's TransactWriteItems | `MRR#<currency>`, `RECEIVABLES#<currency>` or |
| | | `IPAM#<family>` (ADD) |
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from dotmac.core.model import TableItem, ensure_bound
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp.dashboard_models import (
    AddressTotalsItem,
    CustomerCountsItem,
    MrrItem,
    ReceivablesItem,
    TicketCountsItem,
)

if TYPE_CHECKING:
    from dotmac.billing.money import Money
    from dotmac.isp.models import PlanItem, ServiceItem
    from dotmac.isp.ticket_models import TicketItem

DASHBOARD = "ISP_DASHBOARD"
CUSTOMERS, TICKETS, MRR, RECEIVABLES, IPAM = "CUSTOMERS", "TICKETS", "MRR", "RECEIVABLES", "IPAM"
MODELS: dict[str, type[TableItem]] = {
    CUSTOMERS: CustomerCountsItem,
    TICKETS: TicketCountsItem,
    MRR: MrrItem,
    RECEIVABLES: ReceivablesItem,
    IPAM: AddressTotalsItem,
}
ON_TRACK, BREACHED = "on_track", "breached"
FAMILIES = (4, 6)


# --- staging ---------------------------------------------------------------------------


def _stage(uow: UnitOfWork, item: TableItem, deltas: Sequence[tuple[Any, int]]) -> None:
    """ADD the non-zero (attribute, delta) pairs to `item` in `uow`'s transaction (the first
    ADD creates it)."""
    actions = [attribute.add(by) for attribute, by in deltas if by]
    if actions:
        uow.update(item, [*actions, TableItem.kind.set(item.entity)])


def _move(uow: UnitOfWork, item: TableItem, before: str | None, after: str | None) -> None:
    """Count one thing leaving the counter named `before` of `item` and joining `after`
    (None: none of them)."""
    if before != after:
        model = type(item)
        steps = ((before, -1), (after, 1))
        _stage(uow, item, [(getattr(model, name), by) for name, by in steps if name is not None])


def stage_customer(uow: UnitOfWork, ctx: TenantContext, before: str | None, after: str) -> None:
    """Count a customer moving from state `before` (None: a new customer) to `after`."""
    item = CustomerCountsItem(ctx.key(DASHBOARD), CUSTOMERS)
    _move(uow, item, None if before is None else before.lower(), after.lower())


def ticket_sla(item: TicketItem) -> str | None:
    """`breached` for an open ticket with a breach flag, else `on_track`; None once it is
    resolved or closed."""
    from dotmac.isp.tickets import ACTIVE_STATUSES

    if item.status not in ACTIVE_STATUSES:
        return None
    flagged = item.first_response_breached_at or item.resolution_breached_at
    return BREACHED if flagged is not None else ON_TRACK


def stage_ticket(
    uow: UnitOfWork, ctx: TenantContext, before: str | None, after: str | None
) -> None:
    """Count a ticket moving between `ticket_sla` answers (None: not open)."""
    _move(uow, TicketCountsItem(ctx.key(DASHBOARD), TICKETS), before, after)


def monthly(price: str, currency: str, billing_cycle: str) -> Money:
    """A recurring price per month: monthly as is, quarterly / 3, annual / 12, rounded
    HALF_UP to the currency's minor unit."""
    from dotmac.billing.money import Money
    from dotmac.isp.plans import CYCLE_MONTHS

    return Money(price, currency) * Fraction(1, CYCLE_MONTHS[billing_cycle])


def _minor(amount: Money) -> int:
    return int(amount.amount.scaleb(amount.places))


def stage_mrr(
    uow: UnitOfWork,
    ctx: TenantContext,
    service: ServiceItem,
    *,
    status: str | None = None,
    plan: PlanItem | None = None,
) -> None:
    """Count in MRR `service` moving to `status` and/or onto `plan` (default: unchanged):
    while ACTIVE it adds `monthly` of its price to its currency's MRR."""
    from dotmac.isp.services import ACTIVE

    moves: dict[str, list[int]] = {}  # currency -> [minor units, services]
    after = (status or service.status, service if plan is None else plan)
    for sign, (state, priced) in ((-1, (service.status, service)), (1, after)):
        if state == ACTIVE:
            share = monthly(priced.price, priced.currency, priced.billing_cycle)
            move = moves.setdefault(priced.currency, [0, 0])
            move[0] += sign * _minor(share)
            move[1] += sign
    for currency, (minor, services) in moves.items():
        item = MrrItem(ctx.key(DASHBOARD), f"{MRR}#{currency}")
        _stage(uow, item, [(MrrItem.minor, minor), (MrrItem.services, services)])


def stage_receivable(
    uow: UnitOfWork, ctx: TenantContext, *, outstanding: Money, overdue: Money
) -> None:
    """Move what subscribers owe in one currency by `outstanding` (an invoice issued: +, a
    payment or credit: -) and its part past due by `overdue` (an invoice falling overdue: +,
    an overdue amount paid or credited: -)."""
    from dotmac.billing.money import CurrencyMismatchError

    if outstanding.currency != overdue.currency:
        raise CurrencyMismatchError(
            f"outstanding in {outstanding.currency}, overdue in {overdue.currency}"
        )
    item = ReceivablesItem(ctx.key(DASHBOARD), f"{RECEIVABLES}#{outstanding.currency}")
    deltas = [(ReceivablesItem.outstanding, _minor(outstanding))]
    _stage(uow, item, [*deltas, (ReceivablesItem.overdue, _minor(overdue))])


def stage_addresses(
    uow: UnitOfWork,
    ctx: TenantContext,
    family: int,
    *,
    prefixes: int = 0,
    usable: int = 0,
    assigned: int = 0,
    over_threshold: int = 0,
) -> None:
    """Move the address totals of `family` (4 or 6): leaf prefixes, their usable addresses,
    the allocated ones and the leaves at or over their alert threshold."""
    item = AddressTotalsItem(ctx.key(DASHBOARD), f"{IPAM}#{family}")
    _stage(
        uow,
        item,
        [
            (AddressTotalsItem.prefixes, prefixes),
            (AddressTotalsItem.usable, usable),
            (AddressTotalsItem.assigned, assigned),
            (AddressTotalsItem.over_threshold, over_threshold),
        ],
    )


# --- reading ---------------------------------------------------------------------------


def aggregates(ctx: TenantContext) -> list[TableItem]:
    """Every aggregate of the tenant: one Query of its `ISP_DASHBOARD` partition."""
    ensure_bound()
    connection: Any = CustomerCountsItem._get_connection()
    answer = connection.query(ctx.key(DASHBOARD))
    return [
        MODELS[raw["SK"]["S"].split("#", 1)[0]].from_raw_data(raw)
        for raw in answer.get("Items", [])
    ]


def _money(minor: Any, currency: str) -> dict[str, str]:
    from dotmac.billing.money import Money, minor_units

    amount = Decimal(int(minor or 0)).scaleb(-minor_units(currency))
    return Money(amount, currency).to_json()


def dashboard_view(items: Sequence[TableItem]) -> dict[str, Any]:
    """The figures (see the module rules); a currency whose figures are all zero is left
    out, both families are always shown."""
    from dotmac.isp.customers import STATUSES
    from dotmac.isp.ipam import utilisation

    def count(item: TableItem, name: str) -> int:
        return int(getattr(item, name) or 0)

    by_status = dict.fromkeys(STATUSES, 0)
    sla = dict.fromkeys((ON_TRACK, BREACHED), 0)
    mrr: list[dict[str, Any]] = []
    receivables: list[dict[str, Any]] = []
    names = ("prefixes", "usable", "assigned", "over_threshold")
    totals = {family: dict.fromkeys(names, 0) for family in FAMILIES}
    for item in items:
        key = str(item.SK).partition("#")[2]
        if isinstance(item, CustomerCountsItem):
            by_status = {status: count(item, status.lower()) for status in STATUSES}
        elif isinstance(item, TicketCountsItem):
            sla = {name: count(item, name) for name in sla}
        elif isinstance(item, MrrItem) and (item.minor or item.services):
            mrr.append({**_money(item.minor, key), "active_services": count(item, "services")})
        elif isinstance(item, ReceivablesItem) and (item.outstanding or item.overdue):
            receivables.append(
                {
                    "currency": key,
                    "outstanding": _money(item.outstanding, key),
                    "overdue": _money(item.overdue, key),
                }
            )
        elif isinstance(item, AddressTotalsItem):
            totals[int(key)] = {name: count(item, name) for name in names}
    return {
        "customers": {"total": sum(by_status.values()), "by_status": by_status},
        "mrr": mrr,
        "receivables": receivables,
        "tickets": {"open": sum(sla.values()), **sla},
        "ip_addresses": [
            {
                "family": family,
                **figures,
                "free": figures["usable"] - figures["assigned"],
                "utilisation": utilisation(figures["assigned"], figures["usable"]),
            }
            for family, figures in totals.items()
        ],
    }


def get_dashboard(ctx: TenantContext) -> dict[str, Any]:
    """The tenant's dashboard (one DynamoDB call)."""
    return dashboard_view(aggregates(ctx))
