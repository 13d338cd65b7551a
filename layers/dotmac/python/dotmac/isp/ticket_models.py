"""Support-ticket items (tenant key space). Access patterns and the rules are in
`dotmac.isp.tickets`; a ticket's transitions are `dotmac.isp.models.TransitionItem`s.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK | GSI1 | GSI2 |
|---|---|---|---|
| ticket | `ISP_TICKET#<number>` / `ROOT` | `ISP_TICKET_STATUS#<status>` / | `ISP_TICKETS` / |
| | | `<created>#<number>` | `<created>#<number>` |
| ticket transition | `ISP_TICKET#<number>` / `LOG#<version>` | | |
| SLA clock (copy of | `ISP_TICKET_CLOCK#<number>` | `ISP_TICKET_SLA#<band>` / | `ISP_TICKET_DUE`/ |
| an open ticket) | / `ROOT` | `<at risk from>#<number>` | `<deadline>#<number>` |
| | | (band: OK or BREACHED) | (while one runs) |

A ticket's id is its number (`TCK-2026-000001`, the tenant's gapless `TCK` sequence of the
creation year). The ticket and its transitions form one item collection (`ROOT` sorts after
every `LOG#...`): one descending Query returns the ticket, then its newest transitions.

The SLA clock is a full copy of the ticket written in the same transaction as every change
of it, and deleted when the ticket leaves OPEN/IN_PROGRESS: its GSI2 entry is sparse (only
while a first-response or resolution deadline is running and not yet breached), sorted by
that deadline, so the breach sweep is one Query `SK < now`; its GSI1 entry sorts the
unbreached open tickets by the moment they become at risk (80% of the window used), so
`?sla=ok` and `?sla=at_risk` are one range Query each. Times in sort keys are UTC ISO-8601
with microseconds (`2026-05-01T10:15:00.000000+00:00`): they sort in time order.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute

from dotmac.core.model import TableItem


class TicketItem(TableItem):
    """A support ticket with its SLA deadlines (24/7 clock, from `created_at` and
    `priority`) and the persisted breach flags (`*_breached_at`: the deadline that passed)."""

    entity: ClassVar[str] = "isp_ticket"

    number = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    subject = UnicodeAttribute()
    description = UnicodeAttribute()
    priority = UnicodeAttribute()  # critical | urgent | high | normal | low
    category = UnicodeAttribute()
    status = UnicodeAttribute()  # OPEN | IN_PROGRESS | RESOLVED | CLOSED
    first_response_due = UTCDateTimeAttribute()
    resolution_due = UTCDateTimeAttribute()
    first_responded_at = UTCDateTimeAttribute(null=True)
    resolved_at = UTCDateTimeAttribute(null=True)
    closed_at = UTCDateTimeAttribute(null=True)
    first_response_breached_at = UTCDateTimeAttribute(null=True)
    resolution_breached_at = UTCDateTimeAttribute(null=True)
    responses = NumberAttribute(default=0)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()
