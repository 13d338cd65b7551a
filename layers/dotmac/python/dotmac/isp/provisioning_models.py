"""The network side of a service (tenant key space): its activation run and the commands
the recording network adapter would have sent. Access patterns and the rules are in
`dotmac.isp.provisioning` and `dotmac.isp.adapter`.

Keys (all inside the tenant's space, shown without the leading `T#<tid>#`):

| item | PK / SK |
|---|---|
| activation (one per service; a FAILED one is replaced) | `ISP_SERVICE_NET#<n>` / `ACTIVATION` |
| what the network has (recording adapter) | `ISP_SERVICE_NET#<n>` / `STATE` |
| one command it would have sent | `ISP_SERVICE_NET#<n>` / `CMD#<batch>#<line>` |

`<n>` is the service number. The partition is apart from the service's own
(`ISP_SERVICE#<n>`), whose one Query reads the service and its transitions. `<batch>` (6
digits) counts the pushes that sent something and `<line>` (3 digits) the commands of one
push, so the commands sort in the order they would have been sent.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)

from dotmac.core.model import TableItem


class StepRecord(MapAttribute[str, str]):
    """One step of an activation run: what it did and when."""

    step = UnicodeAttribute()
    outcome = UnicodeAttribute()  # ok | compensated | failed
    at = UTCDateTimeAttribute()
    detail = UnicodeAttribute(null=True)


class ActivationItem(TableItem):
    """A service's activation run (the workflow execution `execution`) and its outcome."""

    entity: ClassVar[str] = "isp_activation"

    number = UnicodeAttribute()
    execution = UnicodeAttribute()
    status = UnicodeAttribute()  # RUNNING | SUCCEEDED | FAILED | INCOMPLETE
    prefix_id = UnicodeAttribute()
    reason = UnicodeAttribute()
    started_by = UnicodeAttribute()
    started_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    addresses = ListAttribute(of=UnicodeAttribute, null=True)
    invoice = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    steps = ListAttribute(of=StepRecord, null=True)


class NetworkStateItem(TableItem):
    """What the recording adapter has pushed for a service: configured (with which
    addresses and rate), blocked, derived from the service at `service_version`."""

    entity: ClassVar[str] = "isp_network_state"

    configured = BooleanAttribute(default=False)
    blocked = BooleanAttribute(default=False)
    addresses = ListAttribute(of=UnicodeAttribute, null=True)
    rate = UnicodeAttribute(null=True)  # RouterOS `<upload>/<download>`, e.g. 20M/100M
    service_version = NumberAttribute(default=0)
    batches = NumberAttribute(default=0)


class NetworkCommandItem(TableItem):
    """One command the recording adapter would have sent (it sends nothing)."""

    entity: ClassVar[str] = "isp_network_command"

    operation = UnicodeAttribute()  # activate | suspend | resume | deactivate
    target = UnicodeAttribute()  # radius | router
    line = UnicodeAttribute()
    at = UTCDateTimeAttribute()
    by = UnicodeAttribute()
    request_id = UnicodeAttribute(null=True)
