"""Subscriber items: customers, service plans, services and their transitions (tenant key
space). Access patterns and the rules are in `dotmac.isp.customers` and `dotmac.isp.services`.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK | GSI1 | GSI2 |
|---|---|---|---|
| customer | `ISP_CUSTOMER#<id>` / `ROOT` | `ISP_CUSTOMER_STATUS#<status>` / | `ISP_CUSTOMERS` / |
| | | `<created>#<id>` | `<created>#<id>` |
| customer transition | `ISP_CUSTOMER#<id>` / `LOG#<version>` | | |
| service plan | `ISP_PLAN` / `<id>` | | |
| service | `ISP_SERVICE#<number>` / `ROOT` | `ISP_CUSTOMER_SERVICES#<cust>` | `ISP_SERVICES` / |
| | | / `<created>#<number>` | `<created>#<number>` |
| service transition | `ISP_SERVICE#<number>` / `LOG#<version>` | | |

A customer or a service and its transitions form one item collection: `ROOT` sorts after
every `LOG#...`, so one descending Query returns the item first, then its newest
transitions. A transition's sort key is the item's `version` after it (10 digits): writes
are conditional on the version read, so transitions are unique and in order whatever the
clocks of the instances that wrote them say.

A service's id is its number (`INT-20261124-a1b2c3`): the item's key makes the number
unique (`attribute_not_exists`), with no separate uniqueness item.

Money is stored as fixed-point text with its currency (`"49.99"`, `"USD"`), never as a float.
Customer PII (`email`, `phone`, `address`) is stored only as `dotmac.core.crypto` envelopes
bound to the tenant id.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from dotmac.core.model import TableItem


class CustomerItem(TableItem):
    """A subscriber of the ISP. `email_enc`, `phone_enc`, `address_enc` are KMS envelopes."""

    entity: ClassVar[str] = "isp_customer"

    name = UnicodeAttribute()
    email_enc = UnicodeAttribute()
    phone_enc = UnicodeAttribute(null=True)
    address_enc = UnicodeAttribute(null=True)
    billing_day = NumberAttribute(default=1)
    billing_mode = UnicodeAttribute(default="postpaid")
    status = UnicodeAttribute()
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


class PlanItem(TableItem):
    """A service plan: speed, price and billing cycle. `services` counts the services on it
    that are not cancelled (a plan can be deleted only at 0)."""

    entity: ClassVar[str] = "isp_service_plan"

    name = UnicodeAttribute()
    service_type = UnicodeAttribute()  # internet | phone | tv | bundle
    download_mbps = NumberAttribute(null=True)
    upload_mbps = NumberAttribute(null=True)
    price = UnicodeAttribute()  # fixed-point text, in `currency`'s minor unit
    currency = UnicodeAttribute()
    billing_cycle = UnicodeAttribute()  # monthly | quarterly | annual
    description = UnicodeAttribute(null=True)
    services = NumberAttribute(default=0)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class ServiceItem(TableItem):
    """One subscription of a customer to a plan; records the plan and price it is billed at
    (a later change of the plan's price does not change it)."""

    entity: ClassVar[str] = "isp_service"

    number = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    service_type = UnicodeAttribute()
    plan_id = UnicodeAttribute()
    plan_name = UnicodeAttribute()
    download_mbps = NumberAttribute(null=True)
    upload_mbps = NumberAttribute(null=True)
    price = UnicodeAttribute()
    currency = UnicodeAttribute()
    billing_cycle = UnicodeAttribute()
    status = UnicodeAttribute()
    started_on = UnicodeAttribute(null=True)  # ISO date of the first activation
    plan_since = UnicodeAttribute(null=True)  # ISO date the current plan took effect
    billed_through = UnicodeAttribute(null=True)  # ISO date (exclusive) invoiced up to
    # What plan changes left for the next invoice: charges [{"description", "amount"}] and
    # a credit (fixed-point text) taken off this service's next charges.
    pending_lines = JSONAttribute(null=True)
    pending_credit = UnicodeAttribute(null=True)
    cancelled_at = UTCDateTimeAttribute(null=True)
    # The kind of actor that caused the current status (e.g. "dunning"); None: a person.
    status_cause = UnicodeAttribute(null=True)
    # Why the network does not have what the status means (the last push failed), if so.
    network_error = UnicodeAttribute(null=True)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


class TransitionItem(TableItem):
    """One state change of a customer or a service: from, to, who, why, when.

    `from_status` is absent for the creation; a plan change keeps the status and carries the
    old and new plan and the prorated amounts in `details`.
    """

    entity: ClassVar[str] = "isp_transition"

    action = UnicodeAttribute()
    from_status = UnicodeAttribute(null=True)
    to_status = UnicodeAttribute()
    by = UnicodeAttribute()
    reason = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    request_id = UnicodeAttribute(null=True)
    details = UnicodeAttribute(null=True)  # JSON text
