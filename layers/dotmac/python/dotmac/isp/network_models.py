"""Network inventory items (tenant key space): devices, their interfaces and status history,
circuits and their links to services. Access patterns and the rules are in
`dotmac.isp.network`; a device's status changes are `dotmac.isp.models.TransitionItem`s.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK | GSI1 | GSI2 |
|---|---|---|---|
| device | `ISP_DEVICE#<id>` / `ROOT` | `ISP_DEVICE_STATUS#<status>` / | `ISP_DEVICES` / |
| | | `<name, lower>#<id>` | `<name, lower>#<id>` |
| interface | `ISP_DEVICE#<id>` / `PORT#<name>` | | |
| device transition | `ISP_DEVICE#<id>` / `LOG#<version>` | | |
| device name (uniqueness) | `ISP_DEVICE_NAME` / `<name, lower>` | | |
| circuit | `ISP_CIRCUIT#<id>` / `ROOT` | | `ISP_CIRCUITS` / `<ref>` |
| circuit on a service | `ISP_CIRCUIT#<id>` / `SVC#<number>` | `ISP_SERVICE_CIRCUITS#<number>` | |
| (a copy of the circuit) | | / `<ref>` | |
| circuit ref (uniqueness) | `ISP_CIRCUIT_REF` / `<provider, lower>#<cid, lower>` | | |

`<ref>` is `<provider, lower>#<cid, lower>#<id>`: circuits list in provider, then circuit id
order. In a device's item collection `LOG#...` < `PORT#...` < `ROOT`, so the device and all
its interfaces are one Query (`SK >= "PORT#"`) that reads none of its history, and its history
is one Query (`SK begins_with "LOG#"`, newest first).
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)

from dotmac.core.model import TableItem


class DeviceItem(TableItem):
    """A network device. `status` is what operators see: MAINTENANCE while an operator says
    so, else `reported_status`, the status of the newest report applied (`reported_at`).

    `interfaces` counts its interface items and `circuits` the circuit ends on them (a device
    is deleted only at 0 circuit ends)."""

    entity: ClassVar[str] = "isp_device"

    name = UnicodeAttribute()
    device_type = UnicodeAttribute()
    vendor = UnicodeAttribute()
    model = UnicodeAttribute()
    serial = UnicodeAttribute(null=True)
    management_ip = UnicodeAttribute(null=True)
    site = UnicodeAttribute(null=True)
    description = UnicodeAttribute(null=True)
    status = UnicodeAttribute()
    reported_status = UnicodeAttribute()
    reported_at = UTCDateTimeAttribute(null=True)
    last_seen = UTCDateTimeAttribute(null=True)  # the newest UP report
    status_changed_at = UTCDateTimeAttribute()
    alert_pending_at = UTCDateTimeAttribute(null=True)  # a DOWN alert not yet queued
    interfaces = NumberAttribute(default=0)
    circuits = NumberAttribute(default=0)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


class DeviceNameItem(TableItem):
    """Reserves one device name inside a tenant (conditional write)."""

    entity: ClassVar[str] = "isp_device_name"

    device_id = UnicodeAttribute()


class InterfaceItem(TableItem):
    """One interface of a device; `circuits` counts the circuit ends on it."""

    entity: ClassVar[str] = "isp_interface"

    device_id = UnicodeAttribute()
    name = UnicodeAttribute()
    interface_type = UnicodeAttribute()
    speed_mbps = NumberAttribute(null=True)
    admin_status = UnicodeAttribute()
    oper_status = UnicodeAttribute()
    mac = UnicodeAttribute(null=True)  # lower case, colon separated
    description = UnicodeAttribute(null=True)
    circuits = NumberAttribute(default=0)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


class TerminationAttribute(MapAttribute[str, str]):
    """One end of a circuit: an interface of one of the tenant's devices, or a site."""

    device_id = UnicodeAttribute(null=True)
    interface = UnicodeAttribute(null=True)
    site = UnicodeAttribute(null=True)


class CircuitItem(TableItem):
    """A provider circuit between two ends, carrying zero or more customer services."""

    entity: ClassVar[str] = "isp_circuit"

    cid = UnicodeAttribute()  # the provider's circuit id
    provider = UnicodeAttribute()
    circuit_type = UnicodeAttribute()
    commit_rate_mbps = NumberAttribute()
    burst_mbps = NumberAttribute(null=True)
    status = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    a_termination = TerminationAttribute()
    z_termination = TerminationAttribute()
    services = UnicodeSetAttribute(null=True)  # service numbers (none: absent)
    version = NumberAttribute(default=1)
    created_at = UTCDateTimeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UTCDateTimeAttribute()


class CircuitRefItem(TableItem):
    """Reserves one (provider, circuit id) pair inside a tenant (conditional write)."""

    entity: ClassVar[str] = "isp_circuit_ref"

    circuit_id = UnicodeAttribute()
