"""Billing items (tenant key space).

| item | PK | SK |
|---|---|---|
| billing account | `T#<tid>#BILLING` | `ACCOUNT` |
| document number sequence | `T#<tid>#BILLING` | `SEQ#<prefix>#<year>` |
| invoice | `T#<tid>#INVOICE` | `<number>` |
| one invoice per period (guard) | `T#<tid>#INVOICE_PERIOD` | `<YYYY-MM>` |
| payment | `T#<tid>#PAYMENT` | `PAY-<yyyymmddhhmmss>-<hex>` (newest last) |
| credit note | `T#<tid>#CREDIT_NOTE` | `CN-<year>-<number>` |
| idempotency key claimed | `T#<tid>#BILLING` | `IDEM#<kind>#<sha256 of the key>` |
| partner commission (one per paid invoice) | `PARTNER#<pid>` | `COMMISSION#<period>#<tid>#<n>` |
| partner payout | `PARTNER#<pid>` | `PAYOUT#<at>` |
| billing run | `BILLRUN#<run id>` | `META` |
| billing run job (one per tenant) | `BILLRUN#<run id>` | `JOB#<tid>` |
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from dotmac.core.model import TableItem

ACCOUNT_SK = "ACCOUNT"


class BillingAccountItem(TableItem):
    """Who a tenant is billed as (currency, tax treatment, terms, dunning) and its ledger:
    balance = invoiced - paid - credited = open invoices' balances - unapplied credit.
    Money is Decimal text. Every ledger change saves this item under its version, so the
    changes to one account serialise."""

    entity: ClassVar[str] = "billing_account"

    currency = UnicodeAttribute(default="USD")
    balance = UnicodeAttribute(default="0.00")
    credit = UnicodeAttribute(default="0.00")  # paid but not applied to an invoice yet
    invoiced = UnicodeAttribute(default="0.00")
    paid = UnicodeAttribute(default="0.00")
    credited = UnicodeAttribute(default="0.00")
    open_invoices = ListAttribute(of=UnicodeAttribute, default=list)  # oldest first
    tax_inclusive = BooleanAttribute(default=False)
    payment_terms_days = NumberAttribute(default=30)
    billing_email = UnicodeAttribute(null=True)
    tax_rates = JSONAttribute(null=True)  # [{"name", "rate", "compound"}], applied in order
    late_fee = JSONAttribute(null=True)  # {"kind": "flat", "amount"} | {"kind": "percent", "rate"}
    dunning = JSONAttribute(null=True)  # [{"after_days", "action"}]; None: the default ladder
    dunning_suspended = BooleanAttribute(default=False)
    opened_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class SequenceItem(TableItem):
    """The last number a tenant issued in one gapless sequence (e.g. invoices of 2026)."""

    entity: ClassVar[str] = "sequence"

    last = NumberAttribute(default=0)


class InvoiceItem(TableItem):
    """An issued invoice; money as Decimal text, lines and taxes as JSON."""

    entity: ClassVar[str] = "invoice"

    period = UnicodeAttribute()
    category = UnicodeAttribute(default="SUBSCRIPTION")  # SUBSCRIPTION | LATE_FEE
    status = UnicodeAttribute()  # OPEN | PAID | VOID
    currency = UnicodeAttribute()
    issued_on = UnicodeAttribute()
    due_on = UnicodeAttribute()
    subtotal = UnicodeAttribute()
    discount_total = UnicodeAttribute()
    tax_total = UnicodeAttribute()
    total = UnicodeAttribute()
    balance = UnicodeAttribute()
    paid = UnicodeAttribute(default="0.00")  # settled by payments or account credit
    credited = UnicodeAttribute(default="0.00")  # settled by credit notes
    dunning_step = NumberAttribute(default=0)  # how many steps of the ladder were taken
    overdue = BooleanAttribute(default=False)  # seen open past its due date by dunning
    fee_for = UnicodeAttribute(null=True)  # a late fee's overdue invoice
    lines = JSONAttribute()
    tax_lines = JSONAttribute()
    run_id = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class InvoicePeriodItem(TableItem):
    """Guards one invoice per tenant and period (conditional write in the invoice's transaction)."""

    entity: ClassVar[str] = "invoice_period"

    invoice_number = UnicodeAttribute()


class BillingRunItem(TableItem):
    """A billing run: how many tenants it covers and how many are done or failed."""

    entity: ClassVar[str] = "billing_run"

    period = UnicodeAttribute()
    status = UnicodeAttribute()  # QUEUED | RUNNING
    total = NumberAttribute(default=0)
    done = NumberAttribute(default=0)
    failed = NumberAttribute(default=0)
    request_key = UnicodeAttribute()
    requested_by = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()


class BillingJobItem(TableItem):
    """One tenant's part of a run: PENDING until its invoice commits (DONE) or it gives up."""

    entity: ClassVar[str] = "billing_job"

    status = UnicodeAttribute()  # PENDING | DONE | FAILED
    invoice_number = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)


class PaymentItem(TableItem):
    """A payment received and how it was applied: to invoices (oldest first), the rest credit."""

    entity: ClassVar[str] = "payment"

    amount = UnicodeAttribute()
    currency = UnicodeAttribute()
    method = UnicodeAttribute()
    reference = UnicodeAttribute(null=True)
    allocations = JSONAttribute()  # [{"invoice", "amount"}]
    to_credit = UnicodeAttribute()
    received_at = UTCDateTimeAttribute()
    received_by = UnicodeAttribute()


class CreditNoteItem(TableItem):
    """A credit note: reduces one invoice's balance, never below zero."""

    entity: ClassVar[str] = "credit_note"

    invoice = UnicodeAttribute()
    amount = UnicodeAttribute()
    currency = UnicodeAttribute()
    reason = UnicodeAttribute()
    issued_at = UTCDateTimeAttribute()
    issued_by = UnicodeAttribute()


class IdempotencyKeyItem(TableItem):
    """An Idempotency-Key claimed by the request it first came with (written in that
    request's transaction): what it produced and a hash of the request."""

    entity: ClassVar[str] = "idempotency_key"

    produced = UnicodeAttribute()
    request_hash = UnicodeAttribute()


class CommissionItem(TableItem):
    """A partner's commission on one paid invoice of a tenant it referred."""

    entity: ClassVar[str] = "commission"

    tenant_id = UnicodeAttribute()
    invoice = UnicodeAttribute()
    period = UnicodeAttribute()
    base = UnicodeAttribute()  # the paid amount without tax
    rate = UnicodeAttribute()
    amount = UnicodeAttribute()
    currency = UnicodeAttribute()
    tier = UnicodeAttribute()
    earned_at = UTCDateTimeAttribute()


class PayoutItem(TableItem):
    """Commission paid out to a partner."""

    entity: ClassVar[str] = "payout"

    amount = UnicodeAttribute()
    currency = UnicodeAttribute()
    paid_at = UTCDateTimeAttribute()
    paid_by = UnicodeAttribute()
