"""A billing account's ledger: invoices posted, payments applied to open invoices oldest
first (what is left becomes credit, which settles the next invoices), credit notes.

One engine serves both sides of the platform: a tenant's account with the platform (the
`Book` of the tenant itself) and, inside a tenant, the accounts of its own subscribers (a
`Book` with a scope). What happens when an invoice is paid or an account clears (partner
commissions, lifting a suspension) is the `Settlement` of the side that uses it.

Invariant (tested after random operation sequences):
    balance = invoiced - paid - credited = sum of open invoices' balances - credit
Every change saves the account item under its version, in the same transaction as the
invoices, payment or credit note it touches, so the changes to one account serialise; a
writer that lost the race re-reads and tries again.

| pattern | calls |
|---|---|
| post a new invoice | in the invoice's transaction: the account read + its versioned put |
| the account and its owner's record | TransactGetItems (`<book>#BILLING` / `ACCOUNT` + the owner) |
| pay | GetItem key + GetItem account + BatchGetItem open invoices + TransactWriteItems |
| credit note | GetItem key, account, invoice, sequence + TransactWriteItems |
| list payments / credit notes | Query `T#<tid>#PAYMENT` / `T#<tid>#CREDIT_NOTE` |
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dotmac.billing.money import Money
from dotmac.core import audit_trail
from dotmac.core.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    UnprocessableError,
    ValidationError,
)
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from dotmac.billing.models import (
        BillingAccountItem,
        CreditNoteItem,
        InvoiceItem,
        PaymentItem,
    )
    from dotmac.billing.schemas import AccountSettings, CreditNoteRequest, PaymentRequest
    from dotmac.core.model import TableItem

OwnerT = TypeVar("OwnerT", bound="TableItem")

# A payment settles at most this many invoices (the rest of it becomes credit, applied to
# the next invoices): each settled invoice and its commission are items of one transaction.
MAX_SETTLED_PER_PAYMENT = 40


@dataclass(frozen=True)
class Book:
    """Whose ledger: the tenant's own account (no scope) or one of its subscribers'.

    `series` is the prefix of the book's invoice numbers (its own gapless sequence in the
    tenant); with `receivables`, an account with open invoices is listed in that index
    partition (GSI1, `<receivables>` / the scope's last part) so a side can find every
    account that owes money with one Query.
    """

    ctx: TenantContext
    scope: tuple[str, ...] = ()
    series: str = "INV"
    receivables: str | None = None

    def key(self, kind: str) -> str:
        return self.ctx.key(*self.scope, kind)


class Settlement(Protocol):
    """What the side using a ledger does, in the same transaction, when money moves."""

    def stage_paid(self, uow: UnitOfWork, book: Book, invoice: InvoiceItem) -> None:
        """An invoice's balance just reached zero."""

    def stage_cleared(self, uow: UnitOfWork, book: Book, account: BillingAccountItem) -> None:
        """The account's balance is zero or in credit after a payment or credit note."""

    def stage_receivables(self, uow: UnitOfWork, book: Book, owed: Money, overdue: Money) -> None:
        """The open invoices' balances moved by `owed`, those of overdue ones by `overdue`."""


class NoSettlement:
    """Nothing beyond the ledger itself (the base of the sides' settlements)."""

    def stage_paid(self, uow: UnitOfWork, book: Book, invoice: InvoiceItem) -> None:
        return None

    def stage_cleared(self, uow: UnitOfWork, book: Book, account: BillingAccountItem) -> None:
        return None

    def stage_receivables(self, uow: UnitOfWork, book: Book, owed: Money, overdue: Money) -> None:
        return None


def money(text: str, currency: str) -> Money:
    return Money(text, currency)


def text(amount: Money) -> str:
    return str(amount.amount)


def _add(item: Any, field: str, amount: Money) -> None:
    setattr(item, field, text(money(getattr(item, field), amount.currency) + amount))


def load_account(book: Book) -> BillingAccountItem:
    """The account (consistent read), or a new unsaved one in USD if it has none yet."""
    from dotmac.billing.models import ACCOUNT_SK, BillingAccountItem
    from dotmac.core.model import ensure_bound

    ensure_bound()
    try:
        return BillingAccountItem.get(book.key("BILLING"), ACCOUNT_SK, consistent_read=True)
    except BillingAccountItem.DoesNotExist:
        return _new_account(book)


def owner_and_account(
    book: Book, owner: type[OwnerT], pk: str, sk: str
) -> tuple[OwnerT | None, BillingAccountItem]:
    """The record at `pk`/`sk` that owns the book (None if there is none) and the account, as
    `load_account` gives it: one TransactGetItems (strongly consistent)."""
    from dotmac.billing.models import ACCOUNT_SK, BillingAccountItem
    from dotmac.core.repository import transact_get

    found, account = transact_get(
        (owner, pk, sk), (BillingAccountItem, book.key("BILLING"), ACCOUNT_SK)
    )
    return found, account_or_new(book, account)


def account_or_new(book: Book, found: BillingAccountItem | None) -> BillingAccountItem:
    """`found` (the book's account as read), or a new unsaved one in USD when it has none."""
    return found or _new_account(book)


def _new_account(book: Book) -> BillingAccountItem:
    from dotmac.billing.models import ACCOUNT_SK, BillingAccountItem

    return BillingAccountItem(book.key("BILLING"), ACCOUNT_SK, opened_at=datetime.now(UTC))


def open_invoices(book: Book, account: BillingAccountItem) -> list[InvoiceItem]:
    """The account's open invoices, oldest first: one consistent BatchGetItem."""
    from dotmac.billing.models import InvoiceItem

    numbers = open_numbers(account)
    if not numbers:
        return []
    pk = book.key("INVOICE")
    found = {
        i.SK: i for i in InvoiceItem.batch_get([(pk, n) for n in numbers], consistent_read=True)
    }
    return [found[n] for n in numbers if n in found]


def _settle(invoice: InvoiceItem, amount: Money, field: str) -> None:
    """Take `amount` off the invoice's balance, as `field` ("paid" or "credited")."""
    _add(invoice, field, amount)
    balance = money(invoice.balance, amount.currency) - amount
    invoice.balance = text(balance)
    if balance.is_zero():
        invoice.status = "PAID"


def open_numbers(account: BillingAccountItem) -> list[str]:
    """The numbers of the account's open invoices, oldest first."""
    return [str(number) for number in account.open_invoices or []]


def _set_open(book: Book, account: BillingAccountItem, numbers: list[str]) -> None:
    account.open_invoices = numbers  # type: ignore[assignment]  # stored as a list of S
    if book.receivables is not None:
        owing = bool(numbers)
        account.GSI1PK = book.ctx.key(book.receivables) if owing else None
        account.GSI1SK = book.scope[-1] if owing else None


def _close(book: Book, account: BillingAccountItem, settled: Iterable[str]) -> None:
    done = set(settled)
    _set_open(book, account, [n for n in open_numbers(account) if n not in done])


def stage_overdue(
    uow: UnitOfWork, book: Book, invoice: InvoiceItem, settlement: Settlement
) -> None:
    """Stage flagging an open invoice as overdue (its balance counts as overdue from now)."""
    invoice.overdue = True
    uow.put(invoice)
    currency = invoice.currency
    settlement.stage_receivables(uow, book, Money.zero(currency), money(invoice.balance, currency))


def stage_post(
    uow: UnitOfWork,
    book: Book,
    account: BillingAccountItem,
    invoice: InvoiceItem,
    settlement: Settlement,
) -> None:
    """Stage a new invoice and its effect on the account: the account's credit settles it
    first; what is left stays open."""
    currency = account.currency
    total = money(invoice.total, currency)
    _add(account, "invoiced", total)
    _add(account, "balance", total)
    credit = money(account.credit, currency)
    applied = credit if credit < total else total
    if not applied.is_zero():
        _settle(invoice, applied, "paid")
        account.credit = text(credit - applied)
    if invoice.status == "OPEN":
        _set_open(book, account, [*open_numbers(account), str(invoice.SK)])
        settlement.stage_receivables(
            uow, book, money(invoice.balance, currency), Money.zero(currency)
        )
    elif not total.is_zero():
        settlement.stage_paid(uow, book, invoice)
    uow.put(invoice, condition=type(invoice).PK.does_not_exist())
    uow.put(account)


def _fingerprint(request: Any) -> str:
    body = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def _key_sk(kind: str, key: str) -> str:
    return f"IDEM#{kind}#{hashlib.sha256(key.encode()).hexdigest()}"


def claimed(book: Book, kind: str, key: str, request: Any) -> str | None:
    """What an earlier request with this Idempotency-Key produced (None if it is new);
    422 IDEMPOTENCY_KEY_REUSED if that request was a different one."""
    from dotmac.billing.models import IdempotencyKeyItem

    try:
        item = IdempotencyKeyItem.get(book.key("BILLING"), _key_sk(kind, key), consistent_read=True)
    except IdempotencyKeyItem.DoesNotExist:
        return None
    if item.request_hash != _fingerprint(request):
        raise UnprocessableError(
            "this Idempotency-Key was used for a different request",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    return str(item.produced)


def stage_claim(
    uow: UnitOfWork, book: Book, kind: str, key: str, *, request: Any, produced: str
) -> None:
    """Stage claiming the key for this request (fails the transaction if already claimed)."""
    from dotmac.billing.models import IdempotencyKeyItem

    uow.put(
        IdempotencyKeyItem(
            book.key("BILLING"),
            _key_sk(kind, key),
            produced=produced,
            request_hash=_fingerprint(request),
        ),
        condition=IdempotencyKeyItem.PK.does_not_exist(),
    )


def _amount(value: Decimal, currency: str, field: str = "amount") -> Money:
    """`value` in `currency`, refusing more decimals than the currency has (400)."""
    amount = Money(value, currency)
    if amount.amount != value:
        raise ValidationError(
            f"{value} has more decimals than {currency} allows",
            details=[FieldError(field, f"at most {amount.places} decimal places")],
        )
    return amount


def _currency(account: BillingAccountItem, requested: str | None) -> str:
    if requested is not None and requested != account.currency:
        raise ValidationError(
            f"this account is billed in {account.currency}",
            details=[FieldError("currency", f"must be {account.currency}")],
        )
    return str(account.currency)


def pay(
    book: Book, request: PaymentRequest, key: str, settlement: Settlement
) -> tuple[PaymentItem, bool]:
    """Apply a payment to the open invoices, oldest first; the rest becomes credit.

    Returns (payment, replayed): the same Idempotency-Key again, also in parallel, returns
    the first payment and changes nothing.
    """
    from dotmac.billing.models import PaymentItem
    from dotmac.core.retry import until_won

    def attempt() -> tuple[PaymentItem, bool]:
        if (produced := claimed(book, "PAY", key, request)) is not None:
            audit_trail.record(book.ctx, "billing.payment.replay", "payment", produced)
            return get_payment(book, produced), True
        account = load_account(book)
        currency = _currency(account, request.currency)
        amount = _amount(request.amount, currency)
        uow = UnitOfWork(book.ctx)
        remaining, allocations, settled = amount, [], []
        overdue = Money.zero(currency)
        for invoice in open_invoices(book, account)[:MAX_SETTLED_PER_PAYMENT]:
            if remaining.is_zero():
                break
            balance = money(invoice.balance, currency)
            applied = remaining if remaining < balance else balance
            _settle(invoice, applied, "paid")
            remaining -= applied
            if invoice.overdue:
                overdue += applied
            allocations.append({"invoice": invoice.SK, "amount": text(applied)})
            uow.put(invoice)
            if invoice.status == "PAID":
                settled.append(invoice.SK)
                settlement.stage_paid(uow, book, invoice)
        _close(book, account, settled)
        if remaining != amount:
            settlement.stage_receivables(uow, book, remaining - amount, -overdue)
        _add(account, "paid", amount)
        _add(account, "balance", -amount)
        _add(account, "credit", remaining)
        now = datetime.now(UTC)
        payment = PaymentItem(
            book.key("PAYMENT"),
            f"PAY-{now:%Y%m%d%H%M%S%f}-{secrets.token_hex(3)}",
            amount=text(amount),
            currency=currency,
            method=request.method,
            reference=request.reference,
            allocations=allocations,
            to_credit=text(remaining),
            received_at=now,
            received_by=book.ctx.user_id,
        )
        uow.put(payment, condition=PaymentItem.PK.does_not_exist())
        stage_claim(uow, book, "PAY", key, request=request, produced=payment.SK)
        if not money(account.balance, currency) > Money.zero(currency):
            settlement.stage_cleared(uow, book, account)
        uow.put(account)
        uow.audit("billing.payment.create", "payment", payment.SK, after=payment_view(payment))
        uow.commit(conflict="the account changed meanwhile; retry")
        return payment, False

    return until_won(attempt)


def credit_note(
    book: Book,
    number: str,
    request: CreditNoteRequest,
    key: str | None,
    settlement: Settlement,
) -> tuple[CreditNoteItem, bool]:
    """Issue a credit note against invoice `number`: never more than its balance (409)."""
    from dotmac.billing import numbering
    from dotmac.billing.models import CreditNoteItem
    from dotmac.core.retry import until_won

    def attempt() -> tuple[CreditNoteItem, bool]:
        if key is not None and (produced := claimed(book, "CN", key, request)) is not None:
            audit_trail.record(book.ctx, "billing.credit_note.replay", "credit_note", produced)
            return get_credit_note(book, produced), True
        account = load_account(book)
        invoice = get_invoice(book, number)
        amount = _amount(request.amount, invoice.currency)
        balance = money(invoice.balance, invoice.currency)
        if invoice.status != "OPEN" or amount > balance:
            raise ConflictError(
                f"a credit note cannot exceed the invoice's balance ({balance})",
                code="CREDIT_EXCEEDS_BALANCE",
            )
        now = datetime.now(UTC)
        uow = UnitOfWork(book.ctx)
        note_number = numbering.stage_next_number(uow, book.ctx, "CN", now.year)
        _settle(invoice, amount, "credited")
        uow.put(invoice)
        zero = Money.zero(amount.currency)
        settlement.stage_receivables(uow, book, -amount, -amount if invoice.overdue else zero)
        if invoice.status == "PAID":
            _close(book, account, [number])
            settlement.stage_paid(uow, book, invoice)
        _add(account, "credited", amount)
        _add(account, "balance", -amount)
        note = CreditNoteItem(
            book.key("CREDIT_NOTE"),
            note_number,
            invoice=number,
            amount=text(amount),
            currency=invoice.currency,
            reason=request.reason,
            issued_at=now,
            issued_by=book.ctx.user_id,
        )
        uow.put(note, condition=CreditNoteItem.PK.does_not_exist())
        if key is not None:
            stage_claim(uow, book, "CN", key, request=request, produced=note_number)
        if not money(account.balance, account.currency) > Money.zero(account.currency):
            settlement.stage_cleared(uow, book, account)
        uow.put(account)
        uow.audit(
            "billing.credit_note.create", "credit_note", note_number, after=credit_note_view(note)
        )
        uow.commit(conflict="the invoice changed meanwhile; retry")
        return note, False

    return until_won(attempt)


def configure(book: Book, settings: AccountSettings, account_id: str) -> BillingAccountItem:
    """Change an account's settings (the fields given); versioned, with an audit record."""
    from dotmac.core.retry import until_won

    changes = settings.model_dump(mode="json", exclude_unset=True)

    def attempt() -> BillingAccountItem:
        item = load_account(book)
        before = {name: _plain(getattr(item, name)) for name in changes}
        for name, value in changes.items():
            setattr(item, name, value)
        uow = UnitOfWork(book.ctx)
        uow.put(item)
        uow.audit(
            "billing.account.configure",
            "billing_account",
            account_id,
            before=before,
            after=changes,
        )
        uow.commit(conflict="the account changed meanwhile; retry")
        return item

    return until_won(attempt)


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, bool, list, dict)) else str(value)


def _get(model: Any, partition: str, sk: str, what: str) -> Any:
    """One item by key, strongly consistent; NotFoundError if there is none."""
    from dotmac.core.model import ensure_bound

    ensure_bound()
    try:
        return model.get(partition, sk, consistent_read=True)
    except (model.DoesNotExist, ValidationError) as exc:
        raise NotFoundError(f"{what} {sk} not found") from exc


def get_invoice(book: Book, number: str) -> InvoiceItem:
    """One invoice of the book (404 otherwise): one GetItem."""
    from dotmac.billing.models import InvoiceItem

    return _get(InvoiceItem, book.key("INVOICE"), number, "invoice")


def get_payment(book: Book, payment_id: str) -> PaymentItem:
    """One payment of the book (404 otherwise): one GetItem."""
    from dotmac.billing.models import PaymentItem

    return _get(PaymentItem, book.key("PAYMENT"), payment_id, "payment")


def get_credit_note(book: Book, number: str) -> CreditNoteItem:
    """One credit note of the book (404 otherwise): one GetItem."""
    from dotmac.billing.models import CreditNoteItem

    return _get(CreditNoteItem, book.key("CREDIT_NOTE"), number, "credit note")


def list_payments(book: Book, page: Any) -> Any:
    """One page of payments, newest first: one Query."""
    from dotmac.billing.models import PaymentItem
    from dotmac.core.repository import query_page

    return query_page(PaymentItem, book.key("PAYMENT"), page, newest_first=True)


def list_credit_notes(book: Book, page: Any) -> Any:
    """One page of credit notes, newest first: one Query."""
    from dotmac.billing.models import CreditNoteItem
    from dotmac.core.repository import query_page

    return query_page(CreditNoteItem, book.key("CREDIT_NOTE"), page, newest_first=True)


def payment_view(item: PaymentItem) -> dict[str, Any]:
    return {
        "payment_id": item.SK,
        "amount": item.amount,
        "currency": item.currency,
        "method": item.method,
        "reference": item.reference,
        "allocations": item.allocations,
        "to_credit": item.to_credit,
        "received_at": item.received_at.isoformat(),
    }


def credit_note_view(item: CreditNoteItem) -> dict[str, Any]:
    return {
        "number": item.SK,
        "invoice": item.invoice,
        "amount": item.amount,
        "currency": item.currency,
        "reason": item.reason,
        "issued_at": item.issued_at.isoformat(),
    }


def account_view(account: BillingAccountItem) -> dict[str, Any]:
    """The account's standing and settings."""
    from dotmac.billing import dunning

    return {
        "currency": account.currency,
        "balance": account.balance,
        "credit": account.credit,
        "invoiced": account.invoiced,
        "paid": account.paid,
        "credited": account.credited,
        "open_invoices": open_numbers(account),
        "tax_inclusive": account.tax_inclusive,
        "tax_rates": account.tax_rates or [],
        "payment_terms_days": int(account.payment_terms_days),
        "billing_email": account.billing_email,
        "late_fee": dunning.late_fee_of(account),
        "dunning": dunning.ladder_of(account),
        "suspended_for_dunning": bool(account.dunning_suspended),
    }
