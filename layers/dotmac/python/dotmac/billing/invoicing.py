"""The platform's invoices to its tenants: one per (tenant, period), exactly once.

A tenant's invoice has a line per app it subscribed to during the period, at its plan's
price, prorated by the days each subscription was active under each plan (from the
subscription change log). The invoice, its per-period guard, its gapless number and the
run's bookkeeping commit in one transaction, so however often a job is delivered, or a
worker dies mid-batch, a period is invoiced once and counted once.
"""

from __future__ import annotations

import calendar
import contextlib
import re
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from dotmac.billing import ledger, numbering
from dotmac.billing.ledger import Book
from dotmac.billing.money import Money
from dotmac.billing.pricing import InvoiceLine, InvoiceTotals, TaxRate, price_invoice, prorate
from dotmac.core.errors import ConflictError, FieldError, ValidationError
from dotmac.core.retry import until_won
from dotmac.core.tenancy import TenantContext, platform_key
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.management import catalog

PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
WORKER = "billing"


def period_bounds(period: str) -> tuple[date, date]:
    """`YYYY-MM` as [first day, first day of the next month)."""
    match = PERIOD.fullmatch(period)
    # 0000-01 and 9999-12 have the shape, but no `date` (or no next month) in the calendar.
    if not match or not 1 <= int(match[1]) < MAXYEAR:
        raise ValidationError("invalid period", details=[FieldError("period", "YYYY-MM")])
    year, month = int(match[1]), int(match[2])
    start = date(year, month, 1)
    return start, start + timedelta(days=calendar.monthrange(year, month)[1])


@dataclass(frozen=True)
class Segment:
    """An app billed under one plan for [start, end)."""

    app: str
    plan: str
    start: date
    end: date


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def segments(events: list[Any], current_plan: str, start: date, end: date) -> list[Segment]:
    """Which app was subscribed under which plan, when, within [start, end) — from the
    subscription change log (oldest first)."""
    changes = [e for e in events if e.action == "plan_changed" and start <= _day(e.at) < end]
    later_change = next(
        (e for e in events if e.action == "plan_changed" and _day(e.at) >= end), None
    )
    plan_at_end = later_change.previous_plan if later_change else current_plan
    # Plan intervals inside the period, walking back from the plan at its end.
    bounds = [start, *(_day(e.at) for e in changes), end]
    plans = [*(e.previous_plan for e in changes), plan_at_end]
    plan_spans = [(plans[i], bounds[i], bounds[i + 1]) for i in range(len(plans))]

    active: dict[str, date] = {}
    app_spans: list[tuple[str, date, date]] = []
    for event in events:
        day = _day(event.at)
        if event.action == "subscribed" and event.app not in active and day < end:
            active[event.app] = max(day, start)
        elif event.action == "unsubscribed" and event.app in active:
            began = active.pop(event.app)
            if day > start:
                app_spans.append((event.app, began, min(day, end)))
    app_spans.extend((app, began, end) for app, began in active.items())

    found = []
    for app, a_start, a_end in app_spans:
        for plan, p_start, p_end in plan_spans:
            s, e = max(a_start, p_start), min(a_end, p_end)
            if s < e and plan:
                found.append(Segment(app, plan, s, e))
    return sorted(found, key=lambda seg: (seg.app, seg.start))


def lines_for(found: list[Segment], start: date, end: date) -> list[InvoiceLine]:
    """One line per (app, plan) segment at the plan's monthly price, prorated by days."""
    lines = []
    for seg in found:
        plan = catalog.PLANS[seg.plan]
        price = Money(plan.monthly_price_per_app, plan.currency)
        days = (seg.end - seg.start).days
        lines.append(
            InvoiceLine(
                description=(
                    f"{catalog.APPS[seg.app].name} — {plan.name}, {seg.start:%d %b} to "
                    f"{seg.end - timedelta(days=1):%d %b} ({days}/{(end - start).days} days)"
                ),
                quantity=Decimal(1),
                unit_price=prorate(price, seg.start, seg.end, start, end),
            )
        )
    return lines


def _money_text(money: Money) -> str:
    return str(money.amount)


def invoice_view(item: Any) -> dict[str, Any]:
    """The API's view of an invoice."""
    return {
        "number": item.SK,
        "period": item.period,
        "category": item.category,
        "status": item.status,
        "currency": item.currency,
        "issued_on": item.issued_on,
        "due_on": item.due_on,
        "subtotal": item.subtotal,
        "discount_total": item.discount_total,
        "tax_total": item.tax_total,
        "total": item.total,
        "balance": item.balance,
        "paid": item.paid,
        "credited": item.credited,
        "overdue": bool(item.overdue),
        "fee_for": item.fee_for,
        "lines": item.lines,
        "tax_lines": item.tax_lines,
    }


@dataclass(frozen=True)
class Issued:
    """What invoicing a tenant for a period did."""

    number: str | None  # None: nothing to bill
    created: bool


def _first_reads(book: Book, period: str, year: int) -> tuple[Any, str | None, Any, int]:
    """The tenant, the number of its invoice for `period` if one was issued, its account and
    the last number of its invoice sequence for `year`: one TransactGetItems (consistent).
    NotFoundError if there is no such tenant."""
    from dotmac.billing.models import (
        ACCOUNT_SK,
        BillingAccountItem,
        InvoicePeriodItem,
        SequenceItem,
    )
    from dotmac.core.errors import NotFoundError
    from dotmac.core.repository import transact_get
    from dotmac.management.models import TENANT_SK, TenantItem
    from dotmac.management.repository import tenant_pk

    ctx = book.ctx
    tenant, issued, account, sequence = transact_get(
        (TenantItem, tenant_pk(ctx.tenant_id), TENANT_SK),
        (InvoicePeriodItem, ctx.key("INVOICE_PERIOD"), period),
        (BillingAccountItem, book.key("BILLING"), ACCOUNT_SK),
        (SequenceItem, ctx.key(numbering.PARTITION), numbering.sequence_key("INV", year)),
    )
    if tenant is None:
        raise NotFoundError(f"tenant {ctx.tenant_id} not found")
    number = str(issued.invoice_number) if isinstance(issued, InvoicePeriodItem) else None
    account = ledger.account_or_new(
        book, account if isinstance(account, BillingAccountItem) else None
    )
    last = numbering.last_number(sequence if isinstance(sequence, SequenceItem) else None)
    return tenant, number, account, last


def _existing(ctx: TenantContext, period: str) -> str | None:
    from dotmac.billing.models import InvoicePeriodItem

    try:
        return str(
            InvoicePeriodItem.get(
                ctx.key("INVOICE_PERIOD"), period, consistent_read=True
            ).invoice_number
        )
    except InvoicePeriodItem.DoesNotExist:
        return None


def price_for_account(account: Any, lines: list[InvoiceLine], currency: str) -> InvoiceTotals:
    """The lines' totals under the account's tax settings."""
    rates = [
        TaxRate(str(r["name"]), Decimal(str(r["rate"])), bool(r.get("compound", False)))
        for r in (account.tax_rates or [])
    ]
    return price_invoice(lines, rates, inclusive=bool(account.tax_inclusive), currency=currency)


def new_invoice(
    book: Book,
    number: str,
    *,
    period: str,
    category: str,
    lines: list[InvoiceLine],
    totals: InvoiceTotals,
    issued_on: date,
    due_on: date,
    run_id: str | None = None,
    fee_for: str | None = None,
) -> Any:
    """An unsaved invoice item (ledger.stage_post stages it with its effect on the account)."""
    from dotmac.billing.models import InvoiceItem

    return InvoiceItem(
        book.key("INVOICE"),
        number,
        period=period,
        category=category,
        status="OPEN" if not totals.total.is_zero() else "PAID",
        currency=totals.total.currency,
        issued_on=issued_on.isoformat(),
        due_on=due_on.isoformat(),
        subtotal=_money_text(totals.subtotal),
        discount_total=_money_text(totals.discount_total),
        tax_total=_money_text(totals.tax_total),
        total=_money_text(totals.total),
        balance=_money_text(totals.total),
        lines=[
            {
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_price": _money_text(line.unit_price),
                "amount": _money_text(line.amount),
            }
            for line in lines
        ],
        tax_lines=[{"name": n, "amount": _money_text(m)} for n, m in totals.tax_lines],
        run_id=run_id,
        fee_for=fee_for,
        created_at=datetime.now(UTC),
    )


def stage_job_done(uow: UnitOfWork, run_id: str, tenant_id: str, number: str | None) -> None:
    """Stage PENDING -> DONE for the tenant's job and count it on the run (once)."""
    from dotmac.billing.models import BillingJobItem, BillingRunItem

    pk = platform_key("BILLRUN", run_id)
    uow.update(
        BillingJobItem(pk, f"JOB#{tenant_id}"),
        actions=[
            BillingJobItem.status.set("DONE"),
            BillingJobItem.invoice_number.set(number or "-"),
        ],
        condition=BillingJobItem.status == "PENDING",
    )
    uow.update(
        BillingRunItem(pk, "META"),
        actions=[BillingRunItem.done.add(1)],
    )


def _close_empty_job(ctx: TenantContext, run_id: str, period: str) -> None:
    """Mark the tenant's job done without an invoice (once: a redelivery finds it closed)."""
    uow = UnitOfWork(ctx)
    stage_job_done(uow, run_id, ctx.tenant_id, None)
    uow.audit("billing.invoice.skip", "tenant", ctx.tenant_id, after={"period": period})
    with contextlib.suppress(ConflictError):
        uow.commit()


def invoice_tenant(tenant_id: str, period: str, *, run_id: str | None = None) -> Issued:
    """Issue the tenant's invoice for `period` unless it exists (then change nothing)."""
    from dotmac.billing.models import InvoicePeriodItem
    from dotmac.billing.tenant_billing import TenantSettlement
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import SubscriptionEventItem

    ensure_bound()
    start, end = period_bounds(period)
    ctx = TenantContext(tenant_id, WORKER, request_id=f"billing-{run_id or period}")
    book = Book(ctx)
    tenant, number, first_account, first_last = _first_reads(book, period, start.year)
    if number is not None:
        ensure_documents(ctx, number, tenant.name)
        return Issued(number, created=False)
    events = sorted(
        SubscriptionEventItem.query(ctx.key("SUBSCRIPTION_EVENT"), consistent_read=True),
        key=lambda e: e.SK,
    )
    plan = catalog.PLANS[tenant.plan]
    lines = lines_for(segments(events, tenant.plan, start, end), start, end)
    if not lines:  # subscribed to nothing during the period: nothing to invoice
        if run_id is not None:
            _close_empty_job(ctx, run_id, period)
        return Issued(None, created=False)
    settlement = TenantSettlement(ctx)
    created: list[Any] = []
    tries = 0

    def attempt() -> Issued:
        nonlocal tries
        tries += 1  # the first try uses the first reads; a retry reads again
        if tries > 1 and (found := _existing(ctx, period)) is not None:
            return Issued(found, created=False)
        account = first_account if tries == 1 else ledger.load_account(book)
        issued_on = datetime.now(UTC).date()
        uow = UnitOfWork(ctx)
        last = first_last if tries == 1 else None
        number = numbering.stage_next_number(uow, ctx, "INV", start.year, last)
        uow.put(
            InvoicePeriodItem(ctx.key("INVOICE_PERIOD"), period, invoice_number=number),
            condition=InvoicePeriodItem.PK.does_not_exist(),
        )
        invoice = new_invoice(
            book,
            number,
            period=period,
            category="SUBSCRIPTION",
            lines=lines,
            totals=price_for_account(account, lines, plan.currency),
            issued_on=issued_on,
            due_on=issued_on + timedelta(days=int(account.payment_terms_days)),
            run_id=run_id,
        )
        ledger.stage_post(uow, book, account, invoice, settlement)
        if run_id is not None:
            stage_job_done(uow, run_id, tenant_id, number)
        uow.audit("billing.invoice.create", "invoice", number, after={"total": invoice.total})
        uow.commit()
        created.append(invoice)
        return Issued(number, created=True)

    try:
        issued = until_won(attempt)
    except ConflictError:
        if (found := _existing(ctx, period)) is None:
            raise
        issued = Issued(found, created=False)
    if issued.created:  # its documents cannot be there yet: no need to look
        from dotmac.billing import documents

        documents.store(document_of(created[-1], tenant.name))
    elif issued.number is not None:
        ensure_documents(ctx, issued.number, tenant.name)
    return issued


def document_of(item: Any, tenant_name: str) -> Any:
    """The printable form of a stored invoice."""
    from dotmac.billing.documents import DocumentLine, InvoiceDocument

    def money(text: str) -> Money:
        return Money(text, item.currency)

    return InvoiceDocument(
        tenant_id=item.PK.split("#")[1],
        tenant_name=tenant_name,
        invoice_number=item.SK,
        period=item.period,
        issued_on=date.fromisoformat(item.issued_on),
        due_on=date.fromisoformat(item.due_on),
        currency=item.currency,
        lines=tuple(
            DocumentLine(
                line["description"],
                Decimal(line["quantity"]),
                money(line["unit_price"]),
                money(line["amount"]),
            )
            for line in item.lines
        ),
        subtotal=money(item.subtotal),
        discount_total=money(item.discount_total),
        tax_lines=tuple((t["name"], money(t["amount"])) for t in item.tax_lines),
        total=money(item.total),
    )


def ensure_documents(ctx: TenantContext, number: str, tenant_name: str) -> None:
    """Store the invoice's JSON and PDF unless they are there (a redelivered job after a
    crash between the commit and the upload finishes the upload)."""
    from dotmac.billing import documents

    if not documents.stored(ctx.tenant_id, number):
        documents.store(document_of(get_invoice(ctx, number), tenant_name))


def list_invoices(ctx: TenantContext, page: Any) -> Any:
    """One page of the tenant's invoices, newest number first: one Query."""
    from dotmac.billing.models import InvoiceItem
    from dotmac.core.repository import query_page

    return query_page(InvoiceItem, ctx.key("INVOICE"), page, newest_first=True)


def get_invoice(ctx: TenantContext, number: str) -> Any:
    """One invoice of the caller's tenant (404 otherwise): one GetItem."""
    return ledger.get_invoice(Book(ctx), number)
