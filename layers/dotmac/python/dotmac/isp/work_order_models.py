"""Field-work items: technician profiles and work orders (tenant key space). Access patterns
and the rules are in `dotmac.isp.work_orders`.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK | GSI1 | GSI2 |
|---|---|---|---|
| technician | `ISP_TECHNICIAN` / `<user id>` | | |
| work order | `ISP_WORK_ORDER#<id>` / `ROOT` | `ISP_TECH_WORK_ORDERS#<user>` | `ISP_WORK_ORDERS` |
| | | / `<created>#<id>` (once assigned) | / `<created>#<id>` |
| work-order transition | `ISP_WORK_ORDER#<id>` / `LOG#<version>` | | |

A technician is keyed by the identity user id it belongs to (one profile per user), and
every technician of a tenant is one partition: the candidates of an automatic assignment
are one Query. A work order and its transitions (`dotmac.isp.models.TransitionItem`) form
one item collection, exactly like a customer or a service.

Notes, photos and the completed checklist are small JSON lists on the order itself (capped
in `dotmac.isp.work_orders`), so the order with everything on it is one read.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from dotmac.core.model import TableItem


class TechnicianItem(TableItem):
    """A field technician: skills, availability, home base, rating and work statistics.

    `version` moves only with the profile (skills, availability, location, rating): an
    assignment is conditional on it, so a technician made unavailable or unskilled meanwhile
    is never assigned. The counters move with ADD and do not touch `version`.
    """

    entity: ClassVar[str] = "isp_technician"

    user_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    skills = ListAttribute(of=UnicodeAttribute)
    available = BooleanAttribute(default=True)
    home_lat = NumberAttribute()
    home_lon = NumberAttribute()
    rating = NumberAttribute(default=0)
    open_orders = NumberAttribute(default=0)  # ASSIGNED or IN_PROGRESS
    assigned_total = NumberAttribute(default=0)  # assignments ever, less cancelled ones
    completed = NumberAttribute(default=0)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class WorkOrderItem(TableItem):
    """One visit of a technician: what to do (type, checklist), where, for which source
    (a ticket or a service being installed), who does it and what happened on site."""

    entity: ClassVar[str] = "isp_work_order"

    order_type = UnicodeAttribute()
    status = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    ticket_id = UnicodeAttribute(null=True)
    service_number = UnicodeAttribute(null=True)
    lat = NumberAttribute()
    lon = NumberAttribute()
    scheduled_for = UTCDateTimeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    checklist = ListAttribute(of=UnicodeAttribute)  # the items to check before completion
    technician_id = UnicodeAttribute(null=True)
    assignment = UnicodeAttribute(null=True)  # JSON: how the technician was chosen
    check_in_at = UTCDateTimeAttribute(null=True)
    check_in_lat = NumberAttribute(null=True)
    check_in_lon = NumberAttribute(null=True)
    check_out_at = UTCDateTimeAttribute(null=True)
    check_out_lat = NumberAttribute(null=True)
    check_out_lon = NumberAttribute(null=True)
    notes = UnicodeAttribute(default="[]")  # JSON: [{text, by, at}]
    photos = UnicodeAttribute(default="[]")  # JSON: [{key, content_type, by, at}]
    checklist_result = UnicodeAttribute(null=True)  # JSON: {item: true} at completion
    completed_at = UTCDateTimeAttribute(null=True)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()
