"""Dunning: what happens to an invoice the longer it stays unpaid after its due date.

A ladder (per account, or DEFAULT_LADDER) lists steps `{"after_days", "action"}` in order:
`remind` (a notification), `late_fee` (a late-fee invoice, flat or a share of the overdue
balance) and the side's escalations (`suspend`: the platform suspends the tenant, an ISP
blocks the subscriber; an ISP's `deactivate` stops billing him). Each invoice remembers how
many steps it has taken, and each step commits with that count in one transaction, so
running the ladder twice takes no step twice. The first pass that sees an invoice open past
its due date flags it overdue (in its own transaction, with the side's receivables). A
payment that clears the balance lifts a suspension (the Settlement's part).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from dotmac.billing import ledger
from dotmac.billing.money import Money
from dotmac.core.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from dotmac.billing.models import BillingAccountItem, InvoiceItem

DEFAULT_LADDER: tuple[dict[str, Any], ...] = (
    {"after_days": 1, "action": "remind"},
    {"after_days": 7, "action": "remind"},
    {"after_days": 14, "action": "late_fee"},
    {"after_days": 30, "action": "suspend"},
)
DEFAULT_LATE_FEE: dict[str, str] = {"kind": "flat", "amount": "25.00"}


def ladder_of(account: BillingAccountItem) -> list[dict[str, Any]]:
    """The account's ladder, or the default one."""
    return [dict(step) for step in (account.dunning or DEFAULT_LADDER)]


def late_fee_of(account: BillingAccountItem) -> dict[str, str]:
    """The account's late fee setting, or the default one."""
    return dict(account.late_fee or DEFAULT_LATE_FEE)


def late_fee(setting: dict[str, str], overdue: Money) -> Money:
    """The fee on an `overdue` balance: flat, or its share (HALF_UP)."""
    if setting["kind"] == "flat":
        return Money(setting["amount"], overdue.currency)
    return overdue * Decimal(setting["rate"])


def due_steps(
    ladder: Sequence[dict[str, Any]], taken: int, days_overdue: int
) -> list[tuple[int, str]]:
    """The steps (index, action) not taken yet whose day has come, in order."""
    return [
        (index, str(step["action"]))
        for index, step in enumerate(ladder)
        if index >= taken and int(step["after_days"]) <= days_overdue
    ]


class Escalation(Protocol):
    """What the side using the ledger does for the ladder's side-specific steps."""

    def remind(
        self, book: ledger.Book, account: BillingAccountItem, invoice: InvoiceItem, step: int
    ) -> None:
        """Send a reminder (idempotent per invoice and step)."""

    def stage_escalate(
        self,
        uow: UnitOfWork,
        book: ledger.Book,
        account: BillingAccountItem,
        invoice: InvoiceItem,
        action: str,
    ) -> None:
        """Stage the side's `action` (e.g. suspend) into `uow` (the account is saved after)."""


@dataclass(frozen=True)
class Taken:
    """A step the ladder took."""

    invoice: str
    step: int
    action: str
    fee_invoice: str | None = None


def reminder_id(book: ledger.Book, invoice: str, step: int) -> str:
    """The notification id of a reminder: the same for the same invoice and step."""
    digest = hashlib.sha256(f"{book.key('INVOICE')}#{invoice}#{step}".encode()).hexdigest()
    return f"dunning-{digest[:40]}"


def dun(
    book: ledger.Book,
    as_of: date,
    escalation: Escalation,
    settlement: ledger.Settlement,
) -> list[Taken]:
    """Take every step that is due on `as_of` for the book's open invoices."""
    from dotmac.core.retry import until_won

    taken: list[Taken] = []

    def attempt() -> list[Taken]:
        account = ledger.load_account(book)
        ladder = ladder_of(account)
        for invoice in ledger.open_invoices(book, account):
            overdue = (as_of - date.fromisoformat(invoice.due_on)).days
            if overdue <= 0:
                continue
            if not invoice.overdue:
                uow = UnitOfWork(book.ctx)
                ledger.stage_overdue(uow, book, invoice, settlement)
                uow.audit(
                    "billing.invoice.overdue",
                    "invoice",
                    invoice.SK,
                    after={"balance": invoice.balance, "as_of": as_of.isoformat()},
                )
                uow.commit(conflict="the invoice changed meanwhile; retry")
            for index, action in due_steps(ladder, int(invoice.dunning_step), overdue):
                taken.append(
                    _take(
                        book,
                        account,
                        invoice,
                        index=index,
                        action=action,
                        as_of=as_of,
                        escalation=escalation,
                        settlement=settlement,
                    )
                )
        return taken

    return until_won(attempt)


def _take(
    book: ledger.Book,
    account: BillingAccountItem,
    invoice: InvoiceItem,
    *,
    index: int,
    action: str,
    as_of: date,
    escalation: Escalation,
    settlement: ledger.Settlement,
) -> Taken:
    """One step, committed with the invoice's step count (a retry re-reads and skips it)."""
    uow = UnitOfWork(book.ctx)
    invoice.dunning_step = index + 1
    uow.put(invoice)
    fee_number = None
    if action == "remind":
        escalation.remind(book, account, invoice, index)  # deduplicated by its id
    elif action == "late_fee" and invoice.category != "LATE_FEE":  # no fees on fees
        fee = late_fee(late_fee_of(account), ledger.money(invoice.balance, invoice.currency))
        if not fee.is_zero():
            fee_number = _stage_fee(
                uow, book, account, invoice, fee=fee, as_of=as_of, settlement=settlement
            )
    elif action != "late_fee":
        escalation.stage_escalate(uow, book, account, invoice, action)
        uow.put(account)
    uow.audit(
        f"billing.dunning.{action}",
        "invoice",
        invoice.SK,
        after={"step": index + 1, "fee_invoice": fee_number, "as_of": as_of.isoformat()},
    )
    uow.commit(conflict="the account changed meanwhile; retry")
    return Taken(invoice.SK, index + 1, action, fee_number)


def _stage_fee(
    uow: UnitOfWork,
    book: ledger.Book,
    account: BillingAccountItem,
    overdue: InvoiceItem,
    *,
    fee: Money,
    as_of: date,
    settlement: ledger.Settlement,
) -> str:
    from dotmac.billing import numbering
    from dotmac.billing.invoicing import new_invoice
    from dotmac.billing.pricing import InvoiceLine, InvoiceTotals

    number = numbering.stage_next_number(uow, book.ctx, book.series, as_of.year)
    line = InvoiceLine(f"Late fee on {overdue.SK}", Decimal(1), fee)
    invoice = new_invoice(
        book,
        number,
        period=overdue.period,
        category="LATE_FEE",
        lines=[line],
        totals=InvoiceTotals(fee, Money.zero(fee.currency), [], fee),
        issued_on=as_of,
        due_on=as_of + timedelta(days=int(account.payment_terms_days)),
        fee_for=overdue.SK,
    )
    ledger.stage_post(uow, book, account, invoice, settlement)
    return number
