"""IPAM items (tenant key space). Access patterns and the rules are in `dotmac.isp.ipam`.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK | GSI1 | GSI2 |
|---|---|---|---|
| VRF | `IPAM_VRF` / `<vrf>` | | |
| VRF name (uniqueness) | `IPAM_VRF_NAME` / `<name, lower>` | | |
| prefix | `IPAM_PREFIX` / `<prefix>` | `IPAM_VRF_PREFIX#<vrf>` / | `IPAM_PREFIXES` / |
| | | `<cidr key>` | `<vrf>#<cidr key>` |
| prefix CIDR (uniqueness, tree) | `IPAM_CIDR#<vrf>` / `<cidr key>` | | |
| address (unique in VRF) | `IPAM_IP#<vrf>` / | `IPAM_PREFIX_IP#<prefix>` | `IPAM_ASSIGNED#<to>` |
| | `<address key>` | / `<address key>` | / `<vrf>#<address key>` |
| allocation (Idempotency-Key) | `IDEMPOTENCY` / `ipam.allocate#<sha256>` | | |

`<address key>` is `<version>#<packed address in hex>` (`4#0a000005`), `<cidr key>` is
`<version>#<network address in hex>/<length, 3 digits>` (`4#0a000000/026`): both sort in
address order, so an address range or the prefixes inside a prefix are one key range.
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


class VrfItem(TableItem):
    """A routing table: prefixes and addresses are unique within one VRF.

    `revision` grows with every prefix created or deleted in the VRF; a prefix is created
    only if the revision it read is still current, so two creations that would change each
    other's place in the hierarchy cannot both commit.
    """

    entity: ClassVar[str] = "ipam_vrf"

    name = UnicodeAttribute()
    rd = UnicodeAttribute(null=True)  # route distinguisher, e.g. 65000:100
    description = UnicodeAttribute(null=True)
    prefixes = NumberAttribute(default=0)
    revision = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()


class VrfNameItem(TableItem):
    """Reserves one VRF name inside a tenant (conditional write)."""

    entity: ClassVar[str] = "ipam_vrf_name"

    vrf_id = UnicodeAttribute()


class PrefixItem(TableItem):
    """A prefix: either a container of child prefixes or a leaf addresses are allocated from.

    `allocated` counts the addresses allocated from it (always within its usable range),
    `children` its direct child prefixes and `covered` how many addresses those cover; a
    prefix never has both addresses and children (conditions in every transaction keep it so).
    """

    entity: ClassVar[str] = "ipam_prefix"

    vrf_id = UnicodeAttribute()
    prefix = UnicodeAttribute()  # canonical CIDR text, e.g. 10.0.0.0/26
    parent_id = UnicodeAttribute(null=True)
    is_pool = BooleanAttribute(default=False)
    description = UnicodeAttribute(null=True)
    alert_threshold = NumberAttribute(default=80)  # percent
    allocated = NumberAttribute(default=0)
    children = NumberAttribute(default=0)
    covered = NumberAttribute(default=0)
    last_alert_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class PrefixCidrItem(TableItem):
    """One CIDR of one VRF: makes it unique and finds a prefix's parent and children."""

    entity: ClassVar[str] = "ipam_prefix_cidr"

    prefix_id = UnicodeAttribute()


class AddressItem(TableItem):
    """An allocated IP address (its key makes it unique in the VRF)."""

    entity: ClassVar[str] = "ipam_address"

    vrf_id = UnicodeAttribute()
    address = UnicodeAttribute()
    prefix_id = UnicodeAttribute()
    prefix = UnicodeAttribute()
    assigned_to = UnicodeAttribute(null=True)  # e.g. service:<id>
    description = UnicodeAttribute(null=True)
    allocated_at = UTCDateTimeAttribute()
    allocated_by = UnicodeAttribute()


class AllocationRecordItem(TableItem):
    """What one allocation with an Idempotency-Key returned, replayed for the same key.

    Kept for 24 hours (`expires_at`, the table's TTL attribute).
    """

    entity: ClassVar[str] = "ipam_allocation"

    prefix_id = UnicodeAttribute()
    fingerprint = UnicodeAttribute()  # sha256 of the request it answered
    addresses = ListAttribute(of=UnicodeAttribute)
    vrf_id = UnicodeAttribute()
    prefix = UnicodeAttribute()
    assigned_to = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    allocated_at = UTCDateTimeAttribute()
    allocated_by = UnicodeAttribute()
