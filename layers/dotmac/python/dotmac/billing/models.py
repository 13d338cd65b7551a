"""Billing items (tenant key space).

| item | PK | SK |
|---|---|---|
| billing account | `T#<tid>#BILLING` | `ACCOUNT` |
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
