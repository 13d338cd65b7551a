"""ISP dashboard aggregates (tenant key space). What each figure means, how it is maintained
and the access patterns are in `dotmac.isp.dashboard`.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK |
|---|---|
| customers by state | `ISP_DASHBOARD` / `CUSTOMERS` |
| open tickets by SLA status | `ISP_DASHBOARD` / `TICKETS` |
| monthly recurring revenue | `ISP_DASHBOARD` / `MRR#<currency>` |
| receivables | `ISP_DASHBOARD` / `RECEIVABLES#<currency>` |
| address totals | `ISP_DASHBOARD` / `IPAM#<family: 4 or 6>` |

Each item is created by the first `ADD` to it and only ever moved by `ADD`s (never read
and written back). Money is in minor units (integer cents, yen, fils) so sums are exact.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import NumberAttribute

from dotmac.core.model import TableItem


class CustomerCountsItem(TableItem):
    """Customers per state (attribute = the state in lower case)."""

    entity: ClassVar[str] = "isp_dashboard_customers"

    new = NumberAttribute(default=0)
    active = NumberAttribute(default=0)
    blocked = NumberAttribute(default=0)
    inactive = NumberAttribute(default=0)


class TicketCountsItem(TableItem):
    """Open (OPEN or IN_PROGRESS) tickets with no breach recorded, and with one."""

    entity: ClassVar[str] = "isp_dashboard_tickets"

    on_track = NumberAttribute(default=0)
    breached = NumberAttribute(default=0)


class MrrItem(TableItem):
    """The monthly recurring revenue of the ACTIVE services priced in one currency."""

    entity: ClassVar[str] = "isp_dashboard_mrr"

    minor = NumberAttribute(default=0)  # minor units
    services = NumberAttribute(default=0)  # the ACTIVE services counted in `minor`


class ReceivablesItem(TableItem):
    """What subscribers owe in one currency, and the part of it past its due date."""

    entity: ClassVar[str] = "isp_dashboard_receivables"

    outstanding = NumberAttribute(default=0)  # minor units
    overdue = NumberAttribute(default=0)  # minor units


class AddressTotalsItem(TableItem):
    """Leaf prefixes of one address family, their usable and allocated addresses, and how
    many of them are at or over their alert threshold."""

    entity: ClassVar[str] = "isp_dashboard_addresses"

    prefixes = NumberAttribute(default=0)
    usable = NumberAttribute(default=0)
    assigned = NumberAttribute(default=0)
    over_threshold = NumberAttribute(default=0)
