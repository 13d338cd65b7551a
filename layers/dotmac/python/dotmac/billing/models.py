"""Billing items (tenant key space).

| item | PK | SK |
|---|---|---|
| billing account | `T#<tid>#BILLING` | `ACCOUNT` |
| document number sequence | `T#<tid>#BILLING` | `SEQ#<prefix>#<year>` |
| invoice | `T#<tid>#INVOICE` | `<number>` |
| one invoice per period (guard) | `T#<tid>#INVOICE_PERIOD` | `<YYYY-MM>` |
| billing run | `BILLRUN#<run id>` | `META` |
| billing run job (one per tenant) | `BILLRUN#<run id>` | `JOB#<tid>` |
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from dotmac.core.model import TableItem

ACCOUNT_SK = "ACCOUNT"


class BillingAccountItem(TableItem):
    """Who a tenant is billed as: currency, tax treatment, terms and the running balance."""

    entity: ClassVar[str] = "billing_account"

    currency = UnicodeAttribute(default="USD")
    balance = UnicodeAttribute(default="0.00")  # Decimal as text
    tax_inclusive = BooleanAttribute(default=False)
    payment_terms_days = NumberAttribute(default=30)
    billing_email = UnicodeAttribute(null=True)
    tax_rates = JSONAttribute(null=True)  # [{"name", "rate", "compound"}], applied in order
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
    status = UnicodeAttribute()  # OPEN | PAID | VOID
    currency = UnicodeAttribute()
    issued_on = UnicodeAttribute()
    due_on = UnicodeAttribute()
    subtotal = UnicodeAttribute()
    discount_total = UnicodeAttribute()
    tax_total = UnicodeAttribute()
    total = UnicodeAttribute()
    balance = UnicodeAttribute()
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
