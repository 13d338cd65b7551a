"""ISP network inventory: devices and their interfaces, provider circuits linked to customer
services, and device status reports ingested through the `device-events` queue.

Rules (DESIGN §4, business-rules.md "Plans"; circuits as NetBox models them):
- A device's name is unique in the tenant, case-insensitively: a guard item
  (`ISP_DEVICE_NAME`) is written in the device's transaction and moved by a rename (409
  DEVICE_NAME_TAKEN). Not the name as the key: devices get renamed, and their id (in circuits,
  status reports, monitoring configs) must not change with it. Names: letters, digits and
  `. _ -`, at most 63. Type router, switch, olt, onu, access_point, firewall, server or other;
  the management IP is one IPv4 or IPv6 unicast address (`ipam.parse_address`), stored in
  canonical form.
- Creating a device counts one more "devices" against the plan limit (business-rules.md:
  5 / 25 / 100) in the same transaction (`entitlements.stage_increment`: over the limit a 24 h
  grace period, then 403 PLAN_LIMIT_EXCEEDED); deleting (decommissioning) one counts one fewer
  (`entitlements.stage_decrement`). A device with circuit ends on its interfaces cannot be
  deleted (409 DEVICE_IN_USE). Its interfaces and history are deleted after the device's own
  transaction (BatchWriteItem); anything a failure leaves behind is unreachable (no `ROOT`:
  the device is 404) and is logged.
- Interfaces: the name is unique per device and case-sensitive as the device's CLI writes it
  (`ge-0/0/1`): letters, digits and `/ . _ : -`, at most 64, no `%` or `#`. In a URL it is
  percent-encoded (`/interfaces/ge-0%2F0%2F1`) and decoded once; as names cannot contain `%`
  the decoding is unambiguous. The name is the interface's key, so it does not change (delete
  and re-create). At most MAX_INTERFACES per device (the device's GET stays one Query page).
  MAC `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff`, stored lower-case with
  colons. An interface with circuit ends cannot be deleted (409 INTERFACE_IN_USE).
- Device status: UNKNOWN until the first report, then the reported UP or DOWN; MAINTENANCE
  while an operator says so (`maintenance: true`; reports are still kept as `reported_status`,
  the status shown when maintenance ends, and raise no alert). Each change of `status` is a
  transition (`LOG#` item: from, to, who, why, when) with an audit record.
- Reports go through the `device-events` queue (`report_status`,
  `POST /devices/{id}/status-events`, or any collector sending `StatusEvent` bodies). The
  worker applies a report only if its `at` is newer than the last applied report's
  (`reported_at`): duplicates and out-of-order deliveries change nothing (of two reports for
  the same instant the first applied wins). A report that changes `status` is a transition by
  `device-events` (audit `isp.device.report`); one that does not (a heartbeat) only moves
  `reported_at` and `last_seen` (the newest UP report): no history, no audit. A report more
  than MAX_CLOCK_SKEW in the future is refused (it would hide every real report until then).
  A report the worker cannot apply (malformed, unknown device) raises: only it returns to the
  queue (partial batch failure) and it reaches the DLQ after the queue's max receives.
- A change to DOWN queues one alert (template `isp.device.down`, to the tenant's ISP managers)
  on the `notifications` queue with the deterministic id `dev-<device>-down-<at>`. The
  transition marks the alert pending (`alert_pending_at`); it is queued after the commit and
  the mark cleared. If queuing fails the report fails and is delivered again, finds its alert
  still pending and queues it; a plain duplicate delivery finds nothing pending, queues nothing.
- Circuits: the provider's circuit id (`cid`) is unique per provider in the tenant,
  case-insensitively (`ISP_CIRCUIT_REF` guard item, 409 CIRCUIT_EXISTS); provider and cid do
  not change. Commit rate 1..1,000,000 Mbit/s; burst, if given, at least the commit rate. Each
  end (A, Z) is an interface of one of the tenant's devices (`device_id` + `interface`, else
  400) or a free-text `site`; the two ends are not the same interface. The interface's and
  the device's `circuits` counters count the ends on them in the circuit's transaction
  (conditional on both existing). A circuit carries at most MAX_SERVICES customer services by
  number (each one of the tenant's services, else 400); each link is a copy of the circuit
  under the service's GSI1 partition, rewritten in every transaction that changes the circuit.
- Writes are conditional on the `version` read; a lost race re-reads and retries
  (`core.retry.until_won`).

All keys below are inside the tenant's space (`T#<tid>#...`; items in
`dotmac.isp.network_models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create device | GetItem, | `ISP_DEVICE#<id>` / `ROOT` + `LOG#` if absent, the name |
| | TransactWriteItems | `ISP_DEVICE_NAME` / `<name>` if absent, usage `USAGE` / |
| | | `devices` (read first, conditional), audit |
| get device + interfaces | Query | `ISP_DEVICE#<id>`, SK >= `PORT#` (interfaces, `ROOT`) |
| list devices | Query | `ISP_DEVICES`, SK `<name>#<id>` (GSI2) |
| list devices by status | Query | `ISP_DEVICE_STATUS#<status>`, SK `<name>#<id>` (GSI1) |
| device status history | Query | `ISP_DEVICE#<id>`, SK begins_with `LOG#`, newest first |
| update device | GetItem, | `ROOT` if `version` unchanged (maintenance: + `LOG#`; |
| | TransactWriteItems | rename: the name guard moved), audit |
| | (+ the get's Query) | |
| delete device | GetItem, GetItem, | `ROOT` if `version` unchanged and `circuits = 0`, the |
| | TransactWriteItems, | name guard, usage `devices - 1`, audit; then the rest |
| | Query + BatchWriteItem | of the collection (per page) |
| get interface | GetItem | `ISP_DEVICE#<id>` / `PORT#<name>` |
| add interface | GetItem, | `PORT#<name>` if absent, `ROOT` `interfaces + 1` if |
| | TransactWriteItems | below the cap, audit |
| update interface | GetItem, | `PORT#<name>` if `version` unchanged, audit |
| | TransactWriteItems | |
| delete interface | GetItem, | `PORT#<name>` if `version` unchanged and |
| | TransactWriteItems | `circuits = 0`, `ROOT` `interfaces - 1`, audit |
| report status (HTTP) | GetItem, SQS | the device; one `device-events` message; audit |
| | SendMessage, PutItem | |
| apply a report | GetItem, then | `ROOT` if `version` unchanged (a transition: + `LOG#`, |
| (worker) | UpdateItem or | audit; DOWN: then the alert on `notifications` and |
| | TransactWriteItems | `alert_pending_at` removed) |
| | (+ SendMessage, | |
| | UpdateItem) | |
| create circuit | [TransactGetItems], | the ends' `PORT#` items, the services' `ROOT`s; then |
| | TransactWriteItems | `ISP_CIRCUIT#<id>` / `ROOT` if absent, the ref guard if |
| | | absent, a `SVC#<number>` copy per service, `circuits + 1` |
| | | on each end's interface and device, audit |
| get circuit | GetItem | `ISP_CIRCUIT#<id>` / `ROOT` |
| list circuits | Query | `ISP_CIRCUITS`, SK `<provider>#<cid>#<id>` (GSI2) |
| list a service's circuits | Query | `ISP_SERVICE_CIRCUITS#<number>`, SK |
| | | `<provider>#<cid>#<id>` (GSI1) |
| update circuit | GetItem, | new ends and added services checked; `ROOT` if |
| | [TransactGetItems], | `version` unchanged, `SVC#` copies put or deleted, end |
| | TransactWriteItems | counters moved, audit |
| delete circuit | GetItem, | `ROOT` if `version` unchanged, its copies and ref guard, |
| | TransactWriteItems | end counters `- 1`, audit |
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    model_validator,
)

from dotmac.core.errors import ConflictError, FieldError, NotFoundError, StaleWriteError
from dotmac.core.errors import ValidationError as RequestError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, page_under, query_page
from dotmac.core.tenancy import TENANT_ID_PATTERN, TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp.customers import (
    LOG,
    ROOT,
    RecordRepository,
    creation_entry,
    invalid,
    new_transition,
    stage_status_change,
)
from dotmac.isp.models import ServiceItem, TransitionItem
from dotmac.isp.network_models import (
    CircuitItem,
    CircuitRefItem,
    DeviceItem,
    DeviceNameItem,
    InterfaceItem,
    TerminationAttribute,
)
from dotmac.isp.services import NUMBER_PATTERN, SERVICE, ServiceRepository

# Partitions and index partitions (all inside the tenant's key space); sort-key prefixes.
DEVICE, DEVICES, DEVICE_STATUS = "ISP_DEVICE", "ISP_DEVICES", "ISP_DEVICE_STATUS"
DEVICE_NAME = "ISP_DEVICE_NAME"
CIRCUIT, CIRCUITS, CIRCUIT_REF = "ISP_CIRCUIT", "ISP_CIRCUITS", "ISP_CIRCUIT_REF"
SERVICE_CIRCUITS = "ISP_SERVICE_CIRCUITS"
PORT, LINK = "PORT#", "SVC#"

UNKNOWN, UP, DOWN, MAINTENANCE = "UNKNOWN", "UP", "DOWN", "MAINTENANCE"
DEVICE_STATUSES = (UNKNOWN, UP, DOWN, MAINTENANCE)
ID_PATTERN = r"^[0-9a-f]{16}$"
MAX_INTERFACES = 1000  # x ~0.7 KB at most per interface: the device's Query stays one 1 MB page
MAX_SERVICES = 20
MAX_CLOCK_SKEW = timedelta(minutes=5)
EVENTS_QUEUE = "device-events"
WORKER = "device-events"  # who a report's transition and audit record name
ALERT_TEMPLATE = "isp.device.down"
ALERT_RECIPIENT = "role:isp_manager"  # resolved to the tenant's ISP managers by the channel
MAC_PATTERN = (
    r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
    r"|([0-9A-Fa-f]{2}-){5}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}"
)


# --- pure rules ------------------------------------------------------------------------------


def canonical_mac(text: str) -> str:
    """A MAC address as `aa:bb:cc:dd:ee:ff`; ValueError unless it is one (see the rules)."""
    if not re.fullmatch(MAC_PATTERN, text):
        raise ValueError("must be a MAC address, e.g. 00:1a:2b:3c:4d:5e or 001a.2b3c.4d5e")
    digits = re.sub(r"[^0-9a-f]", "", text.lower())
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def canonical_ip(text: str) -> str:
    """A management address in canonical form; ValueError unless it is one unicast address."""
    from dotmac.isp.ipam import parse_address

    address = parse_address(text)
    if address.is_unspecified or address.is_multicast:
        raise ValueError("must be a unicast address")
    return str(address)


def not_in_future(at: datetime) -> datetime:
    """`at` in UTC; ValueError when it is more than MAX_CLOCK_SKEW ahead of this clock."""
    if at - _now() > MAX_CLOCK_SKEW:
        raise ValueError(f"is more than {int(MAX_CLOCK_SKEW.total_seconds())} s in the future")
    return at.astimezone(UTC)


def interface_name(segment: str) -> str:
    """The interface name a URL path segment carries (percent-decoded once)."""
    return unquote(segment)


def interface_segment(name: str) -> str:
    """An interface name as a URL path segment (percent-encoded, `/` included)."""
    return quote(name, safe="")


def alert_id(device_id: str, at: datetime) -> str:
    """The deterministic id of the DOWN alert of one transition (the outbox keeps one per id)."""
    return f"dev-{device_id}-down-{at.astimezone(UTC):%Y%m%dT%H%M%S%f}"


# --- request bodies --------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
DeviceName = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
]
InterfaceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9/._:-]{0,63}$")]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Site = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Speed = Annotated[StrictInt, Field(ge=1, le=1_000_000)]  # Mbit/s
ManagementIp = Annotated[StrictStr, AfterValidator(canonical_ip)]
Mac = Annotated[StrictStr, AfterValidator(canonical_mac)]
ReportTime = Annotated[AwareDatetime, AfterValidator(not_in_future)]
# Provider and circuit id are joined by `#` in the ref key: neither may contain one.
Provider = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[^#\x00-\x1f]{1,100}$")
]
Cid = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/:-]{0,63}$")
]
ServiceNumber = Annotated[str, StringConstraints(pattern=NUMBER_PATTERN)]
DeviceType = Literal[
    "router", "switch", "olt", "onu", "access_point", "firewall", "server", "other"
]
InterfaceType = Literal[
    "ethernet", "fiber", "lag", "vlan", "loopback", "wireless", "pon", "tunnel", "other"
]
AdminStatus = Literal["UP", "DOWN"]
ReportedStatus = Literal["UP", "DOWN"]
OperStatus = Literal["UP", "DOWN", "UNKNOWN"]
CircuitType = Literal[
    "transit", "peering", "mpls", "p2p", "dark_fiber", "wavelength", "backhaul", "other"
]
CircuitStatus = Literal["PLANNED", "PROVISIONING", "ACTIVE", "OFFLINE", "DECOMMISSIONED"]


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DeviceName
    device_type: DeviceType
    vendor: Label
    model: Label
    serial: Label | None = None
    management_ip: ManagementIp | None = None
    site: Site | None = None
    description: Text | None = None


class DeviceUpdate(BaseModel):
    """Profile fields, and `maintenance` to start or end a maintenance window."""

    model_config = ConfigDict(extra="forbid")

    name: DeviceName | None = None
    device_type: DeviceType | None = None
    vendor: Label | None = None
    model: Label | None = None
    serial: Label | None = None
    management_ip: ManagementIp | None = None
    site: Site | None = None
    description: Text | None = None
    maintenance: StrictBool | None = None


class InterfaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interface_type: InterfaceType | None = None
    speed_mbps: Speed | None = None
    admin_status: AdminStatus | None = None
    oper_status: OperStatus | None = None
    mac: Mac | None = None
    description: Text | None = None


class InterfaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: InterfaceName
    interface_type: InterfaceType = "ethernet"
    speed_mbps: Speed | None = None
    admin_status: AdminStatus = "UP"
    oper_status: OperStatus = "UNKNOWN"
    mac: Mac | None = None
    description: Text | None = None


class Termination(BaseModel):
    """One circuit end: `device_id` + `interface`, or `site`."""

    model_config = ConfigDict(extra="forbid")

    device_id: Id | None = None
    interface: InterfaceName | None = None
    site: Site | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Termination:
        on_device = self.device_id is not None and self.interface is not None
        partial = (self.device_id is None) != (self.interface is None)
        if partial or on_device == (self.site is not None):
            raise ValueError("give device_id and interface, or site")
        return self

    def end(self) -> tuple[str, str] | None:
        """(device id, interface name) of an end on a device, else None."""
        if self.device_id is None or self.interface is None:
            return None
        return self.device_id, self.interface


class CircuitUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    circuit_type: CircuitType | None = None
    commit_rate_mbps: Speed | None = None
    burst_mbps: Speed | None = None
    status: CircuitStatus | None = None
    description: Text | None = None
    a_termination: Termination | None = None
    z_termination: Termination | None = None
    services: list[ServiceNumber] | None = Field(default=None, max_length=MAX_SERVICES)


class CircuitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cid: Cid
    provider: Provider
    circuit_type: CircuitType
    commit_rate_mbps: Speed
    burst_mbps: Speed | None = None
    status: CircuitStatus = "ACTIVE"
    description: Text | None = None
    a_termination: Termination
    z_termination: Termination
    services: list[ServiceNumber] = Field(default_factory=list, max_length=MAX_SERVICES)


class StatusReport(BaseModel):
    """A report sent over HTTP: the device comes from the path, the tenant from the token."""

    model_config = ConfigDict(extra="forbid")

    status: ReportedStatus
    at: ReportTime | None = None  # default: now
    detail: Text | None = None


class StatusEvent(BaseModel):
    """A report as it travels on the `device-events` queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: Annotated[str, StringConstraints(pattern=TENANT_ID_PATTERN.pattern)]
    device_id: Id
    status: ReportedStatus
    at: ReportTime
    detail: Text | None = None


# --- views -----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def id_of(item: DeviceItem | CircuitItem) -> str:
    """The id in a device's or circuit's partition key."""
    return str(item.PK).rsplit("#", 1)[1]


def device_summary(item: DeviceItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "device_type": item.device_type,
        "vendor": item.vendor,
        "model": item.model,
        "serial": item.serial,
        "management_ip": item.management_ip,
        "site": item.site,
        "description": item.description,
        "status": item.status,
        "reported_status": item.reported_status,
        "reported_at": _iso(item.reported_at),
        "last_seen": _iso(item.last_seen),
        "status_changed_at": _iso(item.status_changed_at),
        "interface_count": int(item.interfaces or 0),
        "circuit_ends": int(item.circuits or 0),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def interface_view(item: InterfaceItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "device_id": item.device_id,
        "interface_type": item.interface_type,
        "speed_mbps": _int(item.speed_mbps),
        "admin_status": item.admin_status,
        "oper_status": item.oper_status,
        "mac": item.mac,
        "description": item.description,
        "circuit_ends": int(item.circuits or 0),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def device_view(item: DeviceItem, interfaces: Sequence[InterfaceItem]) -> dict[str, Any]:
    return {**device_summary(item), "interfaces": [interface_view(i) for i in interfaces]}


def _termination_view(end: TerminationAttribute) -> dict[str, Any]:
    return {"device_id": end.device_id, "interface": end.interface, "site": end.site}


def circuit_view(item: CircuitItem) -> dict[str, Any]:
    return {
        "cid": item.cid,
        "provider": item.provider,
        "circuit_type": item.circuit_type,
        "commit_rate_mbps": int(item.commit_rate_mbps),
        "burst_mbps": _int(item.burst_mbps),
        "status": item.status,
        "description": item.description,
        "a_termination": _termination_view(item.a_termination),
        "z_termination": _termination_view(item.z_termination),
        "services": _services(item),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


# --- data access -----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _device_order(name: str, device_id: str) -> str:
    return f"{name.lower()}#{device_id}"


def _ref_key(provider: str, cid: str) -> str:
    return f"{provider.lower()}#{cid.lower()}"


class DeviceRepository(RecordRepository[DeviceItem]):
    """Devices, their interfaces and status history; every key is built from the context."""

    model = DeviceItem
    kind = DEVICE
    noun = "device"
    id_pattern = ID_PATTERN

    def with_interfaces(
        self, device_id: str, *, consistent: bool = False
    ) -> tuple[DeviceItem, list[InterfaceItem]]:
        """The device and all its interfaces (in name order): one Query."""
        self.check_id(device_id)
        connection: Any = DeviceItem._get_connection()
        answer = connection.query(
            self.partition(device_id),
            range_key_condition=DeviceItem.SK >= PORT,
            consistent_read=consistent,
        )
        raws = answer.get("Items", [])
        if not raws or raws[-1]["SK"]["S"] != ROOT:
            raise NotFoundError(f"device {device_id} not found")
        return DeviceItem.from_raw_data(raws[-1]), [
            InterfaceItem.from_raw_data(raw) for raw in raws[:-1]
        ]

    def devices(self, page: PageRequest, status: str | None = None) -> Page[DeviceItem]:
        if status is None:
            return query_page(DeviceItem, self.key(DEVICES), page, index="gsi2")
        return query_page(DeviceItem, self.key(DEVICE_STATUS, status), page, index="gsi1")

    def history(self, device_id: str, page: PageRequest) -> Page[TransitionItem]:
        """A device's transitions, newest first; a first page is never empty (the creation is
        one), so an empty one means no such device."""
        self.check_id(device_id)
        found = query_page(
            TransitionItem, self.partition(device_id), page, sk_prefix=LOG, newest_first=True
        )
        if not found.items and page.cursor is None:
            raise NotFoundError(f"device {device_id} not found")
        return found

    def interface(self, device_id: str, name: str, *, consistent: bool = False) -> InterfaceItem:
        self.check_id(device_id)
        try:
            return InterfaceItem.get(
                self.partition(device_id), PORT + name, consistent_read=consistent
            )
        except InterfaceItem.DoesNotExist as exc:
            raise NotFoundError(f"interface {name} of device {device_id} not found") from exc

    def has_interface(self, device_id: str, name: str) -> bool:
        try:
            self.interface(device_id, name, consistent=True)
        except NotFoundError:
            return False
        return True

    def name_taken(self, name: str) -> bool:
        """Whether a device holds `name` (consistent GetItem of the guard)."""
        try:
            DeviceNameItem.get(self.key(DEVICE_NAME), name.lower(), consistent_read=True)
        except DeviceNameItem.DoesNotExist:
            return False
        return True

    def purge(self, device_id: str) -> None:
        """Delete what is left of a deleted device's collection (interfaces, history)."""
        connection: Any = DeviceItem._get_connection()
        start: Any = None
        while True:
            answer = connection.query(
                self.partition(device_id), consistent_read=True, exclusive_start_key=start
            )
            with DeviceItem.batch_write() as batch:
                for raw in answer.get("Items", []):
                    batch.delete(DeviceItem(raw["PK"]["S"], raw["SK"]["S"]))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                return


class CircuitRepository(RecordRepository[CircuitItem]):
    """Circuits and their copies under services; every key is built from the context."""

    model = CircuitItem
    kind = CIRCUIT
    noun = "circuit"
    id_pattern = ID_PATTERN

    def circuits(self, page: PageRequest) -> Page[CircuitItem]:
        return query_page(CircuitItem, self.key(CIRCUITS), page, index="gsi2")

    def of_service(self, number: str, page: PageRequest) -> Page[CircuitItem]:
        return query_page(CircuitItem, self.key(SERVICE_CIRCUITS, number), page, index="gsi1")

    def ref_taken(self, provider: str, cid: str) -> bool:
        try:
            CircuitRefItem.get(self.key(CIRCUIT_REF), _ref_key(provider, cid), consistent_read=True)
        except CircuitRefItem.DoesNotExist:
            return False
        return True

    def check_references(self, ends: Mapping[str, Termination], numbers: Sequence[str]) -> None:
        """400 unless each end on a device names one of the tenant's interfaces and each
        number one of its services: one TransactGetItems (strongly consistent)."""
        from pynamodb.transactions import TransactGet

        from dotmac.core.model import shared_connection

        on_devices = {field: end for field, end in ends.items() if end.end() is not None}
        if not on_devices and not numbers:
            return
        with TransactGet(connection=shared_connection()) as transaction:
            ports = {
                field: transaction.get(
                    InterfaceItem,
                    self.key(DEVICE, str(end.device_id)),
                    PORT + str(end.interface),
                )
                for field, end in on_devices.items()
            }
            services = {
                number: transaction.get(ServiceItem, self.key(SERVICE, number), ROOT)
                for number in numbers
            }
        errors: list[FieldError] = []
        for field, port in ports.items():
            try:
                port.get()
            except InterfaceItem.DoesNotExist:
                errors.append(FieldError(f"{field}.interface", "no such interface on the device"))
        for number, service in services.items():
            try:
                service.get()
            except ServiceItem.DoesNotExist:
                errors.append(FieldError("services", f"{number}: no such service"))
        if errors:
            raise RequestError("unknown references", details=errors)


def _name_taken(name: str) -> ConflictError:
    return ConflictError(f"a device named {name} exists", code="DEVICE_NAME_TAKEN")


def _changes(body: BaseModel, required: Sequence[str]) -> dict[str, Any]:
    """The fields a PATCH body sets; 400 when none, or when a required one is null."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise RequestError("nothing to change", details=[FieldError("", "no fields given")])
    nulls = [f for f in required if f in changes and changes[f] is None]
    if nulls:
        raise RequestError(
            "required fields cannot be null",
            details=[FieldError(f, "cannot be null") for f in nulls],
        )
    return changes


# --- devices ---------------------------------------------------------------------------------


def create_device(ctx: TenantContext, body: DeviceCreate) -> tuple[DeviceItem, list[InterfaceItem]]:
    """A device (status UNKNOWN), counted against the plan's device limit in the same
    transaction; 409 DEVICE_NAME_TAKEN when the tenant has a device of that name."""
    from dotmac.core.retry import until_won
    from dotmac.management import entitlements

    repo = DeviceRepository(ctx)
    device_id, now = _new_id(), _now()
    partition = repo.partition(device_id)
    order = _device_order(body.name, device_id)
    item = DeviceItem(
        partition,
        ROOT,
        GSI1PK=ctx.key(DEVICE_STATUS, UNKNOWN),
        GSI1SK=order,
        GSI2PK=ctx.key(DEVICES),
        GSI2SK=order,
        **body.model_dump(),
        status=UNKNOWN,
        reported_status=UNKNOWN,
        status_changed_at=now,
        interfaces=0,
        circuits=0,
        version=1,
        created_at=now,
        created_by=ctx.user_id,
        updated_at=now,
    )
    log = creation_entry(
        ctx,
        partition,
        UNKNOWN,
        now,
    )

    def attempt() -> None:
        uow = UnitOfWork(ctx)
        uow.put(item, condition=DeviceItem.PK.does_not_exist())
        uow.put(
            DeviceNameItem(ctx.key(DEVICE_NAME), body.name.lower(), device_id=device_id),
            condition=DeviceNameItem.PK.does_not_exist(),
        )
        uow.put(log)
        entitlements.stage_increment(uow, ctx, "devices")
        uow.audit("isp.device.create", "device", device_id, after=device_summary(item))
        try:
            uow.commit()
        except StaleWriteError:
            if repo.name_taken(body.name):
                raise _name_taken(body.name) from None
            raise

    until_won(attempt)
    return item, []


def get_device(
    ctx: TenantContext, device_id: str, *, consistent: bool = False
) -> tuple[DeviceItem, list[InterfaceItem]]:
    return DeviceRepository(ctx).with_interfaces(device_id, consistent=consistent)


def list_devices(
    ctx: TenantContext, page: PageRequest, status: str | None = None
) -> Page[DeviceItem]:
    if status is not None and status not in DEVICE_STATUSES:
        raise invalid("status", f"one of {', '.join(DEVICE_STATUSES)}")
    return DeviceRepository(ctx).devices(page, status)


def device_history(ctx: TenantContext, device_id: str, page: PageRequest) -> Page[TransitionItem]:
    return DeviceRepository(ctx).history(device_id, page)


DEVICE_FIELDS = (
    "name",
    "device_type",
    "vendor",
    "model",
    "serial",
    "management_ip",
    "site",
    "description",
)


def update_device(
    ctx: TenantContext, device_id: str, body: DeviceUpdate
) -> tuple[DeviceItem, list[InterfaceItem]]:
    """Change a device's profile, or start / end its maintenance (a transition)."""
    from dotmac.core.retry import until_won

    changes = _changes(body, ("name", "device_type", "vendor", "model", "maintenance"))
    repo = DeviceRepository(ctx)
    partition = repo.partition(repo.check_id(device_id))
    attributes: dict[str, Any] = {f: getattr(DeviceItem, f) for f in DEVICE_FIELDS}

    def attempt() -> None:
        item = repo.record(device_id, consistent=True)
        before = device_summary(item)
        version, old_name, now = int(item.version), item.name, _now()
        actions: list[Any] = [DeviceItem.updated_at.set(now), DeviceItem.version.add(1)]
        uow = UnitOfWork(ctx)
        for field in DEVICE_FIELDS:
            if field in changes:
                value = changes[field]
                attribute = attributes[field]
                actions.append(attribute.remove() if value is None else attribute.set(value))
                setattr(item, field, value)
        if item.name != old_name:
            order = _device_order(item.name, device_id)
            actions += [DeviceItem.GSI1SK.set(order), DeviceItem.GSI2SK.set(order)]
        if item.name.lower() != old_name.lower():
            uow.delete(DeviceNameItem(ctx.key(DEVICE_NAME), old_name.lower()))
            uow.put(
                DeviceNameItem(ctx.key(DEVICE_NAME), item.name.lower(), device_id=device_id),
                condition=DeviceNameItem.PK.does_not_exist(),
            )
        maintenance = changes.get("maintenance")
        target = item.status
        if maintenance is True:
            target = MAINTENANCE
        elif maintenance is False and item.status == MAINTENANCE:
            target = item.reported_status
        if target != item.status:
            action = "maintenance" if target == MAINTENANCE else "end_maintenance"
            actions += [
                DeviceItem.status.set(target),
                DeviceItem.GSI1PK.set(ctx.key(DEVICE_STATUS, target)),
                DeviceItem.status_changed_at.set(now),
            ]
            uow.put(
                new_transition(
                    ctx,
                    partition,
                    version=version + 1,
                    action=action,
                    from_status=item.status,
                    to_status=target,
                    reason="maintenance started" if target == MAINTENANCE else "maintenance ended",
                    at=now,
                )
            )
            item.status, item.status_changed_at = target, now
        item.updated_at = now
        uow.update(DeviceItem(partition, ROOT), actions, condition=DeviceItem.version == version)
        uow.audit(
            "isp.device.update", "device", device_id, before=before, after=device_summary(item)
        )
        try:
            uow.commit(conflict="the device changed meanwhile; retry")
        except StaleWriteError:
            if item.name.lower() != old_name.lower() and repo.name_taken(item.name):
                raise _name_taken(item.name) from None
            raise

    until_won(attempt)
    return repo.with_interfaces(device_id, consistent=True)


def delete_device(ctx: TenantContext, device_id: str) -> None:
    """Decommission a device with no circuit ends (else 409 DEVICE_IN_USE), counting one
    device fewer; then delete its interfaces and history."""
    from dotmac.core.retry import until_won
    from dotmac.management import entitlements

    repo = DeviceRepository(ctx)

    def attempt() -> None:
        item = repo.record(device_id, consistent=True)
        if int(item.circuits or 0):
            raise ConflictError(
                f"{int(item.circuits)} circuit ends are on this device; move or delete them first",
                code="DEVICE_IN_USE",
            )
        uow = UnitOfWork(ctx)
        uow.delete(
            item,
            condition=(DeviceItem.version == int(item.version)) & (DeviceItem.circuits == 0),
        )
        uow.delete(DeviceNameItem(ctx.key(DEVICE_NAME), item.name.lower()))
        entitlements.stage_decrement(uow, ctx, "devices")
        uow.audit("isp.device.delete", "device", device_id, before=device_summary(item))
        uow.commit(conflict="the device changed meanwhile; retry")

    until_won(attempt)
    try:
        repo.purge(device_id)
    except Exception:
        from dotmac.core.observability import get_logger

        get_logger().exception("a deleted device's items were not all purged", device=device_id)


# --- interfaces ------------------------------------------------------------------------------


def _interface_audit_id(device_id: str, name: str) -> str:
    return f"{device_id}/{name}"


def get_interface(ctx: TenantContext, device_id: str, name: str) -> InterfaceItem:
    return DeviceRepository(ctx).interface(device_id, interface_name(name))


def add_interface(ctx: TenantContext, device_id: str, body: InterfaceCreate) -> InterfaceItem:
    """A new interface of the device (409 INTERFACE_EXISTS, 409 TOO_MANY_INTERFACES)."""
    from dotmac.core.retry import until_won

    repo = DeviceRepository(ctx)
    partition = repo.partition(repo.check_id(device_id))
    now = _now()
    item = InterfaceItem(
        partition,
        PORT + body.name,
        device_id=device_id,
        **body.model_dump(),
        circuits=0,
        version=1,
        created_at=now,
        updated_at=now,
    )

    def attempt() -> None:
        device = repo.record(device_id, consistent=True)
        if int(device.interfaces or 0) >= MAX_INTERFACES:
            raise ConflictError(
                f"a device has at most {MAX_INTERFACES} interfaces", code="TOO_MANY_INTERFACES"
            )
        uow = UnitOfWork(ctx)
        uow.put(item, condition=InterfaceItem.PK.does_not_exist())
        uow.update(
            DeviceItem(partition, ROOT),
            [DeviceItem.interfaces.add(1)],
            condition=DeviceItem.PK.exists() & (DeviceItem.interfaces < MAX_INTERFACES),
        )
        uow.audit(
            "isp.interface.create",
            "interface",
            _interface_audit_id(device_id, body.name),
            after=interface_view(item),
        )
        try:
            uow.commit()
        except StaleWriteError:
            if repo.has_interface(device_id, body.name):
                raise ConflictError(
                    f"the device has an interface named {body.name}", code="INTERFACE_EXISTS"
                ) from None
            raise  # the device changed meanwhile: read it again

    until_won(attempt)
    return item


def update_interface(
    ctx: TenantContext, device_id: str, name: str, body: InterfaceUpdate
) -> InterfaceItem:
    from dotmac.core.retry import until_won

    changes = _changes(body, ("interface_type", "admin_status", "oper_status"))
    repo = DeviceRepository(ctx)
    name = interface_name(name)
    done: list[InterfaceItem] = []

    def attempt() -> None:
        item = repo.interface(device_id, name, consistent=True)
        before = interface_view(item)
        now = _now()
        actions: list[Any] = [InterfaceItem.updated_at.set(now), InterfaceItem.version.add(1)]
        for field, value in changes.items():
            attribute: Any = getattr(InterfaceItem, field)
            actions.append(attribute.remove() if value is None else attribute.set(value))
            setattr(item, field, value)
        item.updated_at = now
        uow = UnitOfWork(ctx)
        uow.update(
            InterfaceItem(item.PK, item.SK),
            actions,
            condition=InterfaceItem.version == int(item.version),
        )
        uow.audit(
            "isp.interface.update",
            "interface",
            _interface_audit_id(device_id, name),
            before=before,
            after=interface_view(item),
        )
        uow.commit(conflict="the interface changed meanwhile; retry")
        item.version = int(item.version) + 1
        done[:] = [item]

    until_won(attempt)
    return done[0]


def delete_interface(ctx: TenantContext, device_id: str, name: str) -> None:
    """Delete an interface with no circuit ends (else 409 INTERFACE_IN_USE)."""
    from dotmac.core.retry import until_won

    repo = DeviceRepository(ctx)
    name = interface_name(name)

    def attempt() -> None:
        item = repo.interface(device_id, name, consistent=True)
        if int(item.circuits or 0):
            raise ConflictError(
                f"{int(item.circuits)} circuit ends are on this interface", code="INTERFACE_IN_USE"
            )
        uow = UnitOfWork(ctx)
        uow.delete(
            item,
            condition=(InterfaceItem.version == int(item.version)) & (InterfaceItem.circuits == 0),
        )
        uow.update(
            DeviceItem(item.PK, ROOT),
            [DeviceItem.interfaces.add(-1)],
            condition=DeviceItem.PK.exists(),
        )
        uow.audit(
            "isp.interface.delete",
            "interface",
            _interface_audit_id(device_id, name),
            before=interface_view(item),
        )
        uow.commit(conflict="the interface changed meanwhile; retry")

    until_won(attempt)


# --- status reports --------------------------------------------------------------------------


def report_status(
    ctx: TenantContext,
    device_id: str,
    status: ReportedStatus,
    at: datetime | None = None,
    detail: str | None = None,
) -> tuple[str, StatusEvent]:
    """Queue a status report of one of the tenant's devices (404 if none); returns the
    message id and the report. The `device-events` worker applies it."""
    from dotmac.core import audit_trail, queues

    DeviceRepository(ctx).record(device_id)
    event = StatusEvent(
        tenant_id=ctx.tenant_id,
        device_id=device_id,
        status=status,
        at=at or _now(),
        detail=detail,
    )
    body = event.model_dump(mode="json")
    message_id = queues.send(EVENTS_QUEUE, body)
    audit_trail.record(ctx, "isp.device.status_report", "device", device_id, after=body)
    return message_id, event


def apply_status_event(body: dict[str, Any]) -> None:
    """The `device-events` worker's job: apply one report (see the module rules); raises on
    a report it cannot apply, so only that record is retried and, at last, dead-lettered."""
    from dotmac.core.retry import until_won

    event = StatusEvent.model_validate(body)
    ctx = TenantContext(
        event.tenant_id,
        WORKER,
        request_id=f"device-event-{event.device_id}-{event.at.isoformat()}",
    )
    repo = DeviceRepository(ctx)
    partition = repo.partition(event.device_id)

    def attempt() -> DeviceItem | None:
        """Apply the report; the device when a DOWN alert is to be queued."""
        item = repo.record(event.device_id, consistent=True)
        if event.status == DOWN and item.alert_pending_at == event.at:
            return item  # applied before, its alert not queued yet
        if item.reported_at is not None and event.at <= item.reported_at:
            return None
        version = int(item.version)
        target = MAINTENANCE if item.status == MAINTENANCE else event.status
        actions: list[Any] = [
            DeviceItem.reported_status.set(event.status),
            DeviceItem.reported_at.set(event.at),
            DeviceItem.version.add(1),
        ]
        if event.status == UP:
            actions.append(DeviceItem.last_seen.set(event.at))
        if target == item.status:
            _heartbeat(partition, actions, version)
            return None
        actions += [
            DeviceItem.status.set(target),
            DeviceItem.GSI1PK.set(ctx.key(DEVICE_STATUS, target)),
            DeviceItem.status_changed_at.set(event.at),
        ]
        if target == DOWN:
            actions.append(DeviceItem.alert_pending_at.set(event.at))
        uow = UnitOfWork(ctx)
        uow.update(DeviceItem(partition, ROOT), actions, condition=DeviceItem.version == version)
        stage_status_change(
            uow,
            partition,
            resource_type="device",
            resource_id=event.device_id,
            version=version + 1,
            action="report",
            from_status=item.status,
            to_status=target,
            reason=event.detail or f"reported {event.status}",
            at=event.at,
        )
        uow.commit(conflict="the device changed meanwhile; retry")
        return item if target == DOWN else None

    down = until_won(attempt)
    if down is not None:
        _alert(ctx, down, event)


def _heartbeat(partition: str, actions: list[Any], version: int) -> None:
    """A report that leaves `status` as it is: one conditional UpdateItem."""
    from pynamodb.exceptions import UpdateError

    try:
        DeviceItem(partition, ROOT).update(actions, condition=DeviceItem.version == version)
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise StaleWriteError("the device changed meanwhile; retry") from error
        raise


def _alert(ctx: TenantContext, device: DeviceItem, event: StatusEvent) -> None:
    """Queue the DOWN alert, then clear its pending mark (a failure raises: the report is
    delivered again and finds the alert still pending)."""
    from pynamodb.exceptions import UpdateError

    from dotmac.core import queues
    from dotmac.notifications.schemas import Notification

    notification = Notification(
        id=alert_id(event.device_id, event.at),
        tenant_id=ctx.tenant_id,
        channel="email",
        recipient=ALERT_RECIPIENT,
        template=ALERT_TEMPLATE,
        data={
            "device_id": event.device_id,
            "name": device.name,
            "device_type": device.device_type,
            "site": device.site,
            "management_ip": device.management_ip,
            "at": event.at.isoformat(),
            "detail": event.detail,
        },
    )
    queues.send("notifications", notification.model_dump(mode="json"), dedup_id=notification.id)
    try:
        DeviceItem(device.PK, ROOT).update(
            [DeviceItem.alert_pending_at.remove()],
            condition=DeviceItem.alert_pending_at == event.at,
        )
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        # A newer DOWN report took the mark over: its own alert is on its way.


# --- circuits --------------------------------------------------------------------------------


def _services(item: CircuitItem) -> list[str]:
    """The numbers of the services a circuit carries, in order."""
    return sorted(item.services or ())


def _termination(end: Termination) -> TerminationAttribute:
    return TerminationAttribute(device_id=end.device_id, interface=end.interface, site=end.site)


def _ends(item: CircuitItem) -> list[tuple[str, str]]:
    """(device id, interface) of each of the circuit's ends that is on a device."""
    return [
        (str(end.device_id), str(end.interface))
        for end in (item.a_termination, item.z_termination)
        if end.device_id is not None
    ]


def _stage_ends(
    uow: UnitOfWork, before: Sequence[tuple[str, str]], after: Sequence[tuple[str, str]]
) -> None:
    """Move the interfaces' and devices' `circuits` counters from the `before` ends to the
    `after` ends, one update per item (conditional on it existing)."""
    moves: Counter[tuple[str, str]] = Counter(after)
    moves.subtract(before)
    per_device: Counter[str] = Counter()
    for (device_id, name), by in moves.items():
        if by:
            partition = uow.ctx.key(DEVICE, device_id)
            uow.update(
                InterfaceItem(partition, PORT + name),
                [InterfaceItem.circuits.add(by)],
                condition=InterfaceItem.PK.exists(),
            )
            per_device[device_id] += by
    for device_id, by in per_device.items():
        if by:
            uow.update(
                DeviceItem(uow.ctx.key(DEVICE, device_id), ROOT),
                [DeviceItem.circuits.add(by)],
                condition=DeviceItem.PK.exists(),
            )


def _link(ctx: TenantContext, item: CircuitItem, number: str) -> CircuitItem:
    """The copy of a circuit under one of its services (GSI1), without the circuit list key."""
    attributes = {
        name: value
        for name, value in item.attribute_values.items()
        if name not in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "kind")
    }
    return CircuitItem(
        item.PK,
        LINK + number,
        GSI1PK=ctx.key(SERVICE_CIRCUITS, number),
        GSI1SK=item.GSI2SK,
        **attributes,
    )


def _check_shape(item: CircuitItem) -> None:
    """400 when the burst is below the commit rate or both ends are the same interface."""
    errors: list[FieldError] = []
    if item.burst_mbps is not None and int(item.burst_mbps) < int(item.commit_rate_mbps):
        errors.append(FieldError("burst_mbps", "must be at least commit_rate_mbps"))
    ends = _ends(item)
    if len(ends) == 2 and ends[0] == ends[1]:
        errors.append(FieldError("z_termination", "is the same interface as a_termination"))
    if errors:
        raise RequestError("invalid circuit", details=errors)


def _unique(numbers: Sequence[str]) -> None:
    repeated = sorted(n for n, count in Counter(numbers).items() if count > 1)
    if repeated:
        raise invalid("services", f"listed more than once: {', '.join(repeated)}")


def create_circuit(ctx: TenantContext, body: CircuitCreate) -> CircuitItem:
    """A circuit between two ends carrying the given services (see the module rules)."""
    from dotmac.core.retry import until_won

    _unique(body.services)
    repo = CircuitRepository(ctx)
    circuit_id, now = _new_id(), _now()
    item = CircuitItem(
        repo.partition(circuit_id),
        ROOT,
        GSI2PK=ctx.key(CIRCUITS),
        GSI2SK=f"{_ref_key(body.provider, body.cid)}#{circuit_id}",
        cid=body.cid,
        provider=body.provider,
        circuit_type=body.circuit_type,
        commit_rate_mbps=body.commit_rate_mbps,
        burst_mbps=body.burst_mbps,
        status=body.status,
        description=body.description,
        a_termination=_termination(body.a_termination),
        z_termination=_termination(body.z_termination),
        services=set(body.services) or None,
        version=1,
        created_at=now,
        created_by=ctx.user_id,
        updated_at=now,
    )
    _check_shape(item)

    def attempt() -> None:
        ends = {"a_termination": body.a_termination, "z_termination": body.z_termination}
        repo.check_references(ends, body.services)
        uow = UnitOfWork(ctx)
        uow.put(item, condition=CircuitItem.PK.does_not_exist())
        uow.put(
            CircuitRefItem(
                ctx.key(CIRCUIT_REF), _ref_key(body.provider, body.cid), circuit_id=circuit_id
            ),
            condition=CircuitRefItem.PK.does_not_exist(),
        )
        for number in body.services:
            uow.put(_link(ctx, item, number))
        _stage_ends(uow, (), _ends(item))
        uow.audit("isp.circuit.create", "circuit", circuit_id, after=circuit_view(item))
        try:
            uow.commit()
        except StaleWriteError:
            if repo.ref_taken(body.provider, body.cid):
                raise ConflictError(
                    f"{body.provider} circuit {body.cid} exists", code="CIRCUIT_EXISTS"
                ) from None
            raise  # an end's interface went meanwhile: check the references again

    until_won(attempt)
    return item


def get_circuit(ctx: TenantContext, circuit_id: str) -> CircuitItem:
    return CircuitRepository(ctx).record(circuit_id)


def list_circuits(ctx: TenantContext, page: PageRequest) -> Page[CircuitItem]:
    return CircuitRepository(ctx).circuits(page)


def service_circuits(ctx: TenantContext, number: str, page: PageRequest) -> Page[CircuitItem]:
    """The circuits carrying a service (404 for a number the tenant has no service of)."""
    services = ServiceRepository(ctx)
    services.check_id(number)
    found = CircuitRepository(ctx).of_service(number, page)
    return page_under(lambda: services.record(number), found, page)


def update_circuit(ctx: TenantContext, circuit_id: str, body: CircuitUpdate) -> CircuitItem:
    """Change a circuit's rate, type, status, description, ends or services."""
    from dotmac.core.retry import until_won

    changes = _changes(
        body,
        (
            "circuit_type",
            "commit_rate_mbps",
            "status",
            "a_termination",
            "z_termination",
            "services",
        ),
    )
    if body.services is not None:
        _unique(body.services)
    repo = CircuitRepository(ctx)
    repo.check_id(circuit_id)
    done: list[CircuitItem] = []

    def attempt() -> None:
        old = repo.record(circuit_id, consistent=True)
        item = CircuitItem.from_raw_data(old.serialize())
        for field in ("circuit_type", "commit_rate_mbps", "burst_mbps", "status", "description"):
            if field in changes:
                setattr(item, field, changes[field])
        new_ends: dict[str, Termination] = {}
        for field in ("a_termination", "z_termination"):
            end = getattr(body, field)
            if end is not None:
                setattr(item, field, _termination(end))
                new_ends[field] = end
        if body.services is not None:
            item.services = set(body.services) or None
        item.version, item.updated_at = int(old.version) + 1, _now()
        _check_shape(item)
        before, after = _services(old), _services(item)
        repo.check_references(new_ends, [n for n in after if n not in before])
        uow = UnitOfWork(ctx)
        uow.put(item, condition=CircuitItem.version == int(old.version))
        for number in before:
            if number not in after:
                uow.delete(CircuitItem(old.PK, LINK + number))
        for number in after:
            uow.put(_link(ctx, item, number))
        _stage_ends(uow, _ends(old), _ends(item))
        uow.audit(
            "isp.circuit.update",
            "circuit",
            circuit_id,
            before=circuit_view(old),
            after=circuit_view(item),
        )
        uow.commit(conflict="the circuit changed meanwhile; retry")
        done[:] = [item]

    until_won(attempt)
    return done[0]


def delete_circuit(ctx: TenantContext, circuit_id: str) -> None:
    """Delete a circuit, its copies under services and its ref; its ends count one fewer."""
    from dotmac.core.retry import until_won

    repo = CircuitRepository(ctx)

    def attempt() -> None:
        item = repo.record(circuit_id, consistent=True)
        uow = UnitOfWork(ctx)
        uow.delete(item, condition=CircuitItem.version == int(item.version))
        uow.delete(CircuitRefItem(ctx.key(CIRCUIT_REF), _ref_key(item.provider, item.cid)))
        for number in _services(item):
            uow.delete(CircuitItem(item.PK, LINK + number))
        _stage_ends(uow, _ends(item), ())
        uow.audit("isp.circuit.delete", "circuit", circuit_id, before=circuit_view(item))
        uow.commit(conflict="the circuit changed meanwhile; retry")

    until_won(attempt)
