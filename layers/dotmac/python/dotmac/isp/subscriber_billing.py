"""ISP subscriber billing: each customer has his own account on the billing engine
(`dotmac.billing.ledger`, a `Book` scoped to the customer): invoices for his services,
payments applied oldest first, credit, credit notes and the dunning ladder, which blocks him
and suspends his services through the network adapter, and lifts both when a payment
clears his balance.

Rules (business-rules.md, ISP and "Money and invoices"):
- A service is billed from the day it was first activated (`started_on`); each service
  remembers the day it is invoiced up to (`billed_through`, exclusive), moved in the
  invoice's transaction on condition that nobody moved it (or changed the service)
  meanwhile, so no day is ever invoiced twice, whatever retries or parallel runs do.
- Cycles start on the customer's billing day (1-28) and last the plan's 1, 3 or 12 months
  (`services.cycle_bounds`, anchored on `started_on`). A prepaid customer is invoiced on the
  cycle's first day for the cycle ahead (up to its end); a postpaid one for the cycles that
  ended (up to the current cycle's start). A partial cycle (the first one, or up to a
  cancellation) is prorated by days (`billing.pricing.prorate`); a run that was missed
  catches up, one line per cycle.
- Activation (the provisioning workflow's last step, `invoice_activation`) invoices a
  prepaid customer's new service at once, prorated from the start date to the cycle's end;
  a postpaid customer's first (prorated) invoice comes at the end of the cycle.
- Services ACTIVE, SUSPENDED or in MAINTENANCE are billed; a cancelled one up to the day of
  its cancellation. An INACTIVE customer is not billed (the ladder's last step).
- Invoices are numbered `ISP-<year>-<6 digits>` from the tenant's own gapless sequence and
  fall due `payment_terms_days` (default 30) after issue. Only services in the account's
  currency are billed on it (the first invoice sets it).
- Dunning (`billing.dunning`, the ladder per customer account, default remind +1 and +7,
  late fee +14, `suspend` +30; an ISP may add `deactivate`): `suspend` moves an ACTIVE
  customer to BLOCKED and suspends his ACTIVE services (cause `dunning`, so the adapter
  blocks them); `deactivate` moves a BLOCKED customer to INACTIVE (billing stops). The
  payment or credit note that clears the balance moves him back to ACTIVE in the same
  transaction, then resumes the services dunning suspended (the adapter unblocks them).
  Service suspensions run after the customer's transaction, each in its own: every later
  dunning pass re-applies them (`enforce_services`), so a crash in between heals.
- Receivables: every change of the open invoices' balances, and of those overdue, moves the
  dashboard's `outstanding` and `overdue` figures in the same transaction.

All keys are inside the tenant's space (`T#<tid>#...`); `<book>` is `ISP_SUB#<customer>`:

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| bill a customer | GetItem, Query, BatchGetItem, | customer `ROOT`; his services |
| | GetItem x2, TransactWriteItems | (`ISP_CUSTOMER_SERVICES#<id>`, GSI1) read again consistently; |
| | | account `<book>#BILLING` / `ACCOUNT`, sequence `BILLING` / |
| | | `SEQ#ISP#<year>`; writes invoice `<book>#INVOICE` / `<number>`, |
| | | account, each service's `billed_through`, receivables, audit |
| invoices / payments of a customer | Query | `<book>#INVOICE` / `<book>#PAYMENT`, newest first |
| one invoice / payment | GetItem | `<book>#INVOICE` / `<number>`, `<book>#PAYMENT` / `<id>` |
| account | TransactGetItems | the customer's `ROOT` and `<book>#BILLING` / `ACCOUNT` |
| pay | as `ledger.pay` (+ the customer's GetItem when it clears a block) | |
| customers due on a day | Query x3 | `ISP_CUSTOMER_STATUS#NEW` / `#ACTIVE` / `#BLOCKED` (GSI1), |
| | | filter `billing_day` |
| customers owing money | Query | `ISP_RECEIVABLES` (GSI1; an account is in it while it has |
| | | open invoices) |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dotmac.billing import dunning, ledger
from dotmac.billing.ledger import Book
from dotmac.billing.money import Money
from dotmac.core.errors import NotFoundError
from dotmac.core.pagination import PageRequest
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import customers
from dotmac.isp.customers import ACTIVE, BLOCKED, INACTIVE, NEW, ROOT
from dotmac.isp.models import CustomerItem, ServiceItem

if TYPE_CHECKING:
    from dotmac.billing.models import BillingAccountItem, InvoiceItem, PaymentItem
    from dotmac.billing.pricing import InvoiceLine
    from dotmac.billing.schemas import CreditNoteRequest, PaymentRequest

logger = logging.getLogger(__name__)

SCOPE = "ISP_SUB"
SERIES = "ISP"
RECEIVABLES = "ISP_RECEIVABLES"
BILLED_STATES = frozenset({"ACTIVE", "SUSPENDED", "MAINTENANCE", "CANCELLED"})
DUNNING = "dunning"  # the cause recorded on what dunning blocked or suspended
BLOCK_REASON = "dunning: invoice overdue"
DEACTIVATION_REASON = "dunning: unpaid past the ladder's last step"
REACTIVATION_REASON = "payment cleared the balance"
WORKER = "isp-billing"
JOB = "isp_billing"  # the kind of its jobs on the billing-jobs queue
SERVICES_PAGE = 100


def book(ctx: TenantContext, customer_id: str) -> Book:
    """The customer's ledger."""
    return Book(ctx, (SCOPE, customer_id), series=SERIES, receivables=RECEIVABLES)


# --- pure rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class Charge:
    """One cycle's part of a service's bill: [start, end) of the cycle [cycle_start, cycle_end)."""

    start: date
    end: date
    cycle_start: date
    cycle_end: date
    amount: Money


def billed_until(mode: str, as_of: date, billing_day: int, months: int, anchor: date) -> date:
    """The day (exclusive) a service is invoiced up to on `as_of`: the current cycle's end
    when prepaid, its start when postpaid."""
    from dotmac.isp.services import cycle_bounds

    start, end = cycle_bounds(as_of, billing_day, months, anchor)
    return end if mode == "prepaid" else start


def charges(
    *,
    price: Money,
    months: int,
    billing_day: int,
    anchor: date,
    since: date,
    until: date,
) -> list[Charge]:
    """The cycle-by-cycle charges for [since, until), each prorated by days."""
    from dotmac.billing.pricing import prorate
    from dotmac.isp.services import cycle_bounds

    found: list[Charge] = []
    cursor = since
    while cursor < until:
        cycle_start, cycle_end = cycle_bounds(cursor, billing_day, months, anchor)
        end = min(cycle_end, until)
        amount = prorate(price, cursor, end, cycle_start, cycle_end)
        found.append(Charge(cursor, end, cycle_start, cycle_end, amount))
        cursor = end
    return found


def _months(service: ServiceItem) -> int:
    from dotmac.isp.plans import CYCLE_MONTHS

    return CYCLE_MONTHS[service.billing_cycle]


def service_charges(
    service: ServiceItem, customer: CustomerItem, as_of: date
) -> tuple[list[Charge], date | None]:
    """What `service` owes on `as_of` that was not invoiced yet, and the day it is then
    invoiced up to (None: nothing to bill)."""
    if service.status not in BILLED_STATES or service.started_on is None:
        return [], None
    anchor = date.fromisoformat(service.started_on)
    since = date.fromisoformat(service.billed_through or service.started_on)
    until = billed_until(
        customer.billing_mode, as_of, int(customer.billing_day), _months(service), anchor
    )
    if service.cancelled_at is not None:
        until = min(until, service.cancelled_at.date())
    if until <= since:
        return [], None
    price = Money(service.price, service.currency)
    found = charges(
        price=price,
        months=_months(service),
        billing_day=int(customer.billing_day),
        anchor=anchor,
        since=since,
        until=until,
    )
    return found, until


def _describe(plan_name: str, number: str, charge: Charge, note: str = "") -> str:
    last = charge.end - timedelta(days=1)
    partial = (charge.start, charge.end) != (charge.cycle_start, charge.cycle_end)
    return f"{plan_name} {number}, {charge.start} to {last}{' (prorated)' if partial else ''}{note}"


@dataclass(frozen=True)
class PlanChangeBilling:
    """What a plan change leaves for the service's next invoice."""

    lines: list[dict[str, str]]  # charges {"description", "amount"}
    credit: Money  # taken off the service's next charges
    billed_through: date


def plan_change_billing(
    service: ServiceItem, new_plan_name: str, proration: Any
) -> PlanChangeBilling | None:
    """The billing side of moving an active service to another plan at
    `proration.effective` (None for a service never activated):
    - not invoiced past the change (postpaid, or before a prepaid cycle was invoiced): the
      old plan's days up to the change become a pending charge, and the service is billed
      from the change on at the new price;
    - invoiced past it (prepaid): the preview's credit for the old plan's unused days and
      charge for the new plan's days to the end of its cycle, which it is then billed
      through."""
    if service.started_on is None or proration.cycle is None:
        return None
    effective = proration.effective
    billed = date.fromisoformat(service.billed_through or service.started_on)
    if billed <= effective:
        owed = charges(
            price=Money(service.price, service.currency),
            months=_months(service),
            billing_day=proration.cycle[0].day,
            anchor=date.fromisoformat(service.started_on),
            since=billed,
            until=effective,
        )
        lines = [
            _pending(_describe(service.plan_name, service.number, c, " before the plan change"), c)
            for c in owed
        ]
        return PlanChangeBilling(lines, Money.zero(service.currency), effective)
    start, end = proration.new_cycle
    charge = Charge(effective, end, start, end, proration.charge)
    line = _pending(
        _describe(new_plan_name, service.number, charge, " after the plan change"), charge
    )
    return PlanChangeBilling([line], proration.credit, end)


def _pending(description: str, charge: Charge) -> dict[str, str]:
    return {"description": description, "amount": str(charge.amount.amount)}


def _service_lines(service: ServiceItem, owed: list[Charge]) -> tuple[list[InvoiceLine], Money]:
    """The service's invoice lines (pending plan-change charges, then its cycles), its
    pending credit taken off them in order as discounts, and the credit left over."""
    from dotmac.billing.pricing import Discount, InvoiceLine

    currency = service.currency
    amounts = [
        (str(p["description"]), Money(p["amount"], currency)) for p in service.pending_lines or []
    ]
    amounts += [(_describe(service.plan_name, service.number, c), c.amount) for c in owed]
    credit = Money(service.pending_credit or "0", currency)
    lines = []
    for description, amount in amounts:
        off = credit if credit < amount else amount
        credit -= off
        discount = None if off.is_zero() else Discount("fixed", off)
        lines.append(InvoiceLine(description, Decimal(1), amount, discount))
    return lines, credit


# --- reading -----------------------------------------------------------------------------


def _customer(ctx: TenantContext, customer_id: str) -> CustomerItem:
    return customers.CustomerRepository(ctx).customer(customer_id, consistent=True)


def _services(ctx: TenantContext, customer_id: str) -> list[ServiceItem]:
    """The customer's services, read again consistently (the index may lag)."""
    from dotmac.isp.services import ServiceRepository

    repo = ServiceRepository(ctx)
    numbers: list[str] = []
    cursor: str | None = None
    while True:
        page = repo.services(PageRequest(limit=SERVICES_PAGE, cursor=cursor), customer_id)
        numbers += [s.number for s in page.items if s.status in BILLED_STATES]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return _consistent(repo, numbers)


def _consistent(repo: Any, numbers: list[str]) -> list[ServiceItem]:
    if not numbers:
        return []
    keys = [(repo.partition(n), ROOT) for n in numbers]
    found = {s.number: s for s in ServiceItem.batch_get(keys, consistent_read=True)}
    return [found[n] for n in numbers if n in found]


# --- invoicing ---------------------------------------------------------------------------


def bill(
    ctx: TenantContext, customer_id: str, as_of: date, *, only: str | None = None
) -> str | None:
    """Invoice what the customer's services (or just service `only`) owe on `as_of` and was
    not invoiced yet; returns the invoice number, None when nothing is owed."""
    from dotmac.core.retry import until_won

    def attempt() -> str | None:
        customer = _customer(ctx, customer_id)
        if customer.status == INACTIVE:
            return None
        if only is None:
            found = _services(ctx, customer_id)
        else:
            from dotmac.isp.services import ServiceRepository

            found = _consistent(ServiceRepository(ctx), [only])
        return _invoice(ctx, customer, found, as_of)

    return until_won(attempt)


def _invoice(
    ctx: TenantContext, customer: CustomerItem, found: list[ServiceItem], as_of: date
) -> str | None:
    from dotmac.billing import numbering
    from dotmac.billing.invoicing import new_invoice, price_for_account

    target = book(ctx, customers.customer_id(customer))
    account = ledger.load_account(target)
    if account.version is None and found:  # a new account takes its first service's currency
        account.currency = found[0].currency
    uow = UnitOfWork(ctx)
    lines, spans = [], []
    for service in found:
        if service.currency != account.currency:
            continue
        owed, until = service_charges(service, customer, as_of)
        if until is None and not service.pending_lines:
            continue
        billed, left = _service_lines(service, owed)
        lines += billed
        if until is not None:
            spans += [owed[0].start, until]
        actions: list[Any] = [
            ServiceItem.pending_lines.remove(),
            ServiceItem.pending_credit.remove()
            if left.is_zero()
            else ServiceItem.pending_credit.set(str(left.amount)),
        ]
        if until is not None:
            actions.append(ServiceItem.billed_through.set(until.isoformat()))
        unbilled = (
            ServiceItem.billed_through.does_not_exist()
            if service.billed_through is None
            else ServiceItem.billed_through == service.billed_through
        )
        uow.update(
            ServiceItem(service.PK, ROOT),
            actions,
            condition=(ServiceItem.version == int(service.version)) & unbilled,
        )
    if not lines:
        return None
    totals = price_for_account(account, lines, str(account.currency))
    number = numbering.stage_next_number(uow, ctx, SERIES, as_of.year)
    invoice = new_invoice(
        target,
        number,
        period=f"{min(spans).isoformat()}/{max(spans).isoformat()}" if spans else as_of.isoformat(),
        category="SUBSCRIPTION",
        lines=lines,
        totals=totals,
        issued_on=as_of,
        due_on=as_of + timedelta(days=int(account.payment_terms_days)),
    )
    ledger.stage_post(uow, target, account, invoice, SubscriberSettlement(ctx))
    uow.audit(
        "isp.invoice.create",
        "invoice",
        number,
        after={
            "customer": customers.customer_id(customer),
            "total": invoice.total,
            "period": invoice.period,
        },
    )
    uow.commit(conflict="the customer's services changed meanwhile; retry")
    return number


def invoice_activation(ctx: TenantContext, number: str) -> str | None:
    """The first invoice of a just-activated service (prepaid: now, prorated to the cycle's
    end; postpaid: None, it comes at the cycle's end). Safe to call again."""
    from dotmac.isp.services import ServiceRepository

    service = ServiceRepository(ctx).record(number, consistent=True)
    if service.started_on is None:
        return None
    return bill(ctx, service.customer_id, date.fromisoformat(service.started_on), only=number)


# --- settlement and escalation -----------------------------------------------------------


@dataclass
class SubscriberSettlement(ledger.NoSettlement):
    """Receivables move the dashboard; a cleared balance reactivates a customer dunning
    blocked (his services are resumed after the commit: `enforce_services`)."""

    ctx: TenantContext
    reactivated: bool = False

    def customer(self, book_: Book) -> CustomerItem:
        """The book's customer as he is now (read again each time: a retried transaction
        must not act on the state an earlier attempt saw)."""
        return _customer(self.ctx, book_.scope[-1])

    def stage_receivables(self, uow: UnitOfWork, book: Book, owed: Money, overdue: Money) -> None:
        from dotmac.isp import dashboard

        dashboard.stage_receivable(uow, self.ctx, outstanding=owed, overdue=overdue)

    def stage_cleared(self, uow: UnitOfWork, book: Book, account: BillingAccountItem) -> None:
        if not account.dunning_suspended:
            return
        account.dunning_suspended = False
        customer = self.customer(book)
        if customer.status in (BLOCKED, INACTIVE):
            customers.stage_transition(uow, self.ctx, customer, "activate", REACTIVATION_REASON)
            self.reactivated = True


@dataclass
class SubscriberEscalation:
    """Reminders go to the customer's e-mail; `suspend` blocks him, `deactivate` ends
    billing him."""

    settlement: SubscriberSettlement
    blocked: bool = False
    sent: list[str] = field(default_factory=list)

    def remind(
        self, book: Book, account: BillingAccountItem, invoice: InvoiceItem, step: int
    ) -> None:
        from dotmac.core import crypto, queues

        customer = self.settlement.customer(book)
        notification = dunning.reminder_id(book, invoice.SK, step)
        queues.send(
            "notifications",
            {
                "id": notification,
                "tenant_id": book.ctx.tenant_id,
                "channel": "email",
                "recipient": crypto.decrypt(book.ctx.tenant_id, customer.email_enc),
                "template": "isp.billing.reminder",
                "data": {
                    "customer": customers.customer_id(customer),
                    "invoice": invoice.SK,
                    "balance": invoice.balance,
                    "currency": invoice.currency,
                    "due_on": invoice.due_on,
                    "reminder": step + 1,
                },
            },
        )
        self.sent.append(notification)

    def stage_escalate(
        self,
        uow: UnitOfWork,
        book: Book,
        account: BillingAccountItem,
        invoice: InvoiceItem,
        action: str,
    ) -> None:
        customer = self.settlement.customer(book)
        if action == "suspend" and customer.status == ACTIVE:
            customers.stage_transition(uow, book.ctx, customer, "block", BLOCK_REASON)
            account.dunning_suspended = True
            self.blocked = True
        elif action == "deactivate" and customer.status == BLOCKED and account.dunning_suspended:
            customers.stage_transition(uow, book.ctx, customer, "deactivate", DEACTIVATION_REASON)


def enforce_services(ctx: TenantContext, customer_id: str) -> list[str]:
    """Make the customer's services match what dunning did to him: suspend the ACTIVE ones
    of a customer it blocked, resume those it suspended once he is ACTIVE again. Returns
    the numbers it moved; safe to run any time."""
    from dotmac.isp import services

    customer = _customer(ctx, customer_id)
    account = ledger.load_account(book(ctx, customer_id))
    blocked = bool(account.dunning_suspended) and customer.status in (BLOCKED, INACTIVE)
    moved = []
    for service in _services(ctx, customer_id):
        if blocked and service.status == "ACTIVE":
            request = customers.TransitionRequest(reason=BLOCK_REASON)
            services.transition(ctx, service.number, "suspend", request, cause=DUNNING)
        elif (
            customer.status == ACTIVE
            and service.status == "SUSPENDED"
            and service.status_cause == DUNNING
        ):
            request = customers.TransitionRequest(reason=REACTIVATION_REASON)
            services.transition(ctx, service.number, "resume", request)
        else:
            continue
        moved.append(service.number)
    return moved


# --- what the API and the jobs call --------------------------------------------------------


def account(ctx: TenantContext, customer_id: str) -> BillingAccountItem:
    """The customer's account (404 if there is no such customer): one TransactGetItems."""
    partition = customers.CustomerRepository(ctx).partition(
        customers.check_customer_id(customer_id)
    )
    target = book(ctx, customer_id)
    customer, found = ledger.owner_and_account(target, CustomerItem, partition, ROOT)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} not found")
    return found


def pay(
    ctx: TenantContext, customer_id: str, request: PaymentRequest, key: str
) -> tuple[PaymentItem, bool]:
    """A payment on the customer's account (see ledger.pay); one that clears a dunning
    block reactivates him and his services."""
    _customer(ctx, customer_id)
    settlement = SubscriberSettlement(ctx)
    result = ledger.pay(book(ctx, customer_id), request, key, settlement)
    if settlement.reactivated:
        enforce_services(ctx, customer_id)
    return result


def credit(
    ctx: TenantContext,
    customer_id: str,
    number: str,
    request: CreditNoteRequest,
    key: str | None,
) -> Any:
    """A credit note on one of the customer's invoices (see ledger.credit_note)."""
    _customer(ctx, customer_id)
    settlement = SubscriberSettlement(ctx)
    result = ledger.credit_note(book(ctx, customer_id), number, request, key, settlement)
    if settlement.reactivated:
        enforce_services(ctx, customer_id)
    return result


def dun(ctx: TenantContext, customer_id: str, as_of: date) -> list[dunning.Taken]:
    """Run the customer's ladder as of `as_of`, then bring his services in line."""
    settlement = SubscriberSettlement(ctx)
    escalation = SubscriberEscalation(settlement)
    taken = dunning.dun(book(ctx, customer_id), as_of, escalation, settlement)
    enforce_services(ctx, customer_id)
    return taken


def get_invoice(ctx: TenantContext, customer_id: str, number: str) -> InvoiceItem:
    """One of the customer's invoices (404 otherwise): one GetItem."""
    return ledger.get_invoice(book(ctx, customer_id), number)


def list_invoices(ctx: TenantContext, customer_id: str, page: PageRequest) -> Any:
    """One page of the customer's invoices, newest first: one Query (404 for no customer)."""
    from dotmac.billing.models import InvoiceItem
    from dotmac.core.repository import page_under, query_page

    found = query_page(InvoiceItem, book(ctx, customer_id).key("INVOICE"), page, newest_first=True)
    return page_under(lambda: _customer(ctx, customer_id), found, page)


def list_payments(ctx: TenantContext, customer_id: str, page: PageRequest) -> Any:
    """One page of the customer's payments, newest first: one Query (404 for no customer)."""
    from dotmac.core.repository import page_under

    found = ledger.list_payments(book(ctx, customer_id), page)
    return page_under(lambda: _customer(ctx, customer_id), found, page)


def customers_due(ctx: TenantContext, on: date) -> list[str]:
    """The customers (but INACTIVE ones) whose billing day is `on`'s day."""
    return [
        customers.customer_id(item)
        for status in (NEW, ACTIVE, BLOCKED)
        for item in _all(
            lambda page, status=status: customers.CustomerRepository(ctx).customers(
                page, status, billing_day=on.day
            )
        )
    ]


def customers_owing(ctx: TenantContext) -> list[str]:
    """The customers whose accounts have open invoices: Queries on GSI1."""
    from dotmac.billing.models import BillingAccountItem
    from dotmac.core.repository import query_page

    return [
        str(item.GSI1SK)
        for item in _all(
            lambda page: query_page(BillingAccountItem, ctx.key(RECEIVABLES), page, index="gsi1")
        )
    ]


def _all(read: Any) -> list[Any]:
    found: list[Any] = []
    cursor: str | None = None
    while True:
        page = read(PageRequest(limit=SERVICES_PAGE, cursor=cursor))
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


@dataclass(frozen=True)
class DayResult:
    """What a tenant's daily subscriber billing did."""

    invoices: list[str]
    dunning_steps: int
    failed: list[str]


def run_day(tenant_id: str, as_of: date) -> DayResult:
    """A tenant's daily subscriber billing: invoice the customers whose billing day it is,
    then run the ladder of every customer who owes money. Every part is idempotent; a
    customer that fails is logged and the job fails after the others (to be redelivered)."""
    ctx = TenantContext(tenant_id, WORKER, request_id=f"{WORKER}-{as_of.isoformat()}")
    invoices, steps, failed = [], 0, []
    for customer_id in customers_due(ctx, as_of):
        try:
            if (number := bill(ctx, customer_id, as_of)) is not None:
                invoices.append(number)
        except Exception:
            logger.exception("billing customer %s failed", customer_id)
            failed.append(customer_id)
    for customer_id in customers_owing(ctx):
        try:
            steps += len(dun(ctx, customer_id, as_of))
        except Exception:
            logger.exception("dunning customer %s failed", customer_id)
            failed.append(customer_id)
    return DayResult(invoices, steps, failed)


def start_day(ctx: TenantContext, as_of: date | None) -> dict[str, Any]:
    """Queue the caller's tenant's daily subscriber billing as of `as_of` (default today)."""
    from dotmac.billing.runs import enqueue
    from dotmac.core import audit_trail

    day = (as_of or today()).isoformat()
    enqueue([{"kind": JOB, "tenant_id": ctx.tenant_id, "as_of": day}])
    audit_trail.record(ctx, "isp.billing_day.start", "billing_day", day)
    return {"as_of": day, "status": "QUEUED"}


def start_scheduled(as_of: date) -> int:
    """Queue the daily subscriber billing of every ACTIVE tenant; returns how many."""
    from dotmac.billing.runs import enqueue
    from dotmac.management.repository import customer_tenant_ids

    tenants = customer_tenant_ids("ACTIVE")
    enqueue([{"kind": JOB, "tenant_id": t, "as_of": as_of.isoformat()} for t in tenants])
    return len(tenants)


def run_job(body: dict[str, Any]) -> None:
    """The billing-jobs worker's `isp_billing` job; raises when a customer failed."""
    result = run_day(body["tenant_id"], date.fromisoformat(body["as_of"]))
    if result.failed:
        raise RuntimeError(f"subscriber billing failed for {len(result.failed)} customers")


def today() -> date:
    return datetime.now(UTC).date()
