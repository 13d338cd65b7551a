"""Billing items (tenant key space).

| item | PK | SK |
|---|---|---|
| billing account | `T#<tid>#BILLING` | `ACCOUNT` |
| document number sequence | `T#<tid>#BILLING` | `SEQ#<prefix>#<year>` |
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
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
    opened_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class SequenceItem(TableItem):
    """The last number a tenant issued in one gapless sequence (e.g. invoices of 2026)."""

    entity: ClassVar[str] = "sequence"

    last = NumberAttribute(default=0)
