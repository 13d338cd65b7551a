"""IPAM: VRF -> prefix -> IP address, with race-free allocation of the next free addresses.

Rules (business-rules.md, ISP):
- Prefixes of one VRF form a tree: a new prefix may not repeat an existing one (409
  PREFIX_OVERLAP); its parent is the smallest existing prefix containing it, and existing
  prefixes inside it become its children. A prefix is either a *container* (it has child
  prefixes) or a *leaf* addresses are allocated from, never both: a child cannot be created
  inside a prefix with allocated addresses (409 PREFIX_HAS_ADDRESSES), nor addresses
  allocated from a container (409 PREFIX_IS_CONTAINER).
- Usable addresses (`usable_bounds`): IPv4 excludes the network and broadcast addresses
  except in /31, /32 and pools; IPv6 excludes the subnet-router anycast (network) address
  except in /127, /128 and pools (the same rule as `ipaddress`'s `hosts()`).
- Addresses are unique per VRF: one item per address, keyed by VRF and address, written
  with `attribute_not_exists`.
- Allocating N addresses writes the N address items, the prefix's counter and the audit
  record in one TransactWriteItems. Two requests that pick the same address cannot both
  commit; the loser re-reads and picks again (from a wider, shuffled window of free
  addresses, so contenders spread out). The prefix's `allocated` counter is updated in the
  same transaction under a condition that also proves whether this allocation crosses the
  alert threshold (see `guard_for`), so the threshold alert is sent exactly once per
  crossing from below to at/above, however many requests race. Not enough free usable
  addresses: 409 PREFIX_EXHAUSTED, and nothing is written.
- Utilisation: a leaf's allocated / usable; a container's addresses covered by its children
  / its size. Alert threshold per prefix, default 80%.
- An allocation sent with an `Idempotency-Key` stores what it returned (24 h, per tenant) in
  the same transaction; the same key again returns the same addresses and allocates nothing
  (the same key with another request: 422 IDEMPOTENCY_KEY_REUSED).
- The dashboard's address totals per family (`dotmac.isp.dashboard`: leaf prefixes, their
  usable and allocated addresses, the leaves at or over their threshold) move in the same
  transactions: prefix creation and deletion (read the parent: does it stop or start being
  a leaf?), allocations and releases (a release reads its prefixes and commits under their
  guard too, so a crossing back below the threshold is known) and threshold changes
  (conditional on the counter and threshold read).

All keys below are inside the tenant's space (`T#<tid>#...`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create a VRF | TransactWriteItems | `IPAM_VRF`/`<vrf>` and `IPAM_VRF_NAME`/`<name>`, if absent |
| get, list VRFs | GetItem, Query | `IPAM_VRF` / `<vrf>` (table) |
| create a prefix | GetItem | the VRF, strongly consistent (its `revision`) |
| | BatchGetItem | `IPAM_CIDR#<vrf>` / the CIDR key of every supernet (duplicate, parent) |
| | Query | `IPAM_CIDR#<vrf>`, SK BETWEEN network and broadcast (its children) |
| | GetItem | the parent `IPAM_PREFIX` / `<parent>`, strongly consistent |
| | TransactWriteItems | prefix + CIDR item if absent, VRF revision unchanged, parent's |
| | | counters if `allocated = 0` and `children` unchanged, adopted children, |
| | | `ISP_DASHBOARD` / `IPAM#<family>` (ADD), audit |
| get a prefix (utilisation) | GetItem | `IPAM_PREFIX` / `<prefix>` (table) |
| list a VRF's prefixes | Query | `IPAM_VRF_PREFIX#<vrf>`, address order (GSI1) |
| list all prefixes | Query | `IPAM_PREFIXES`, by VRF then address (GSI2) |
| update a prefix | GetItem, TransactWriteItems | if `allocated` and `alert_threshold` unchanged, |
| | | `ISP_DASHBOARD` / `IPAM#<family>` (ADD), audit |
| delete a prefix | GetItem (+ GetItem: the | if `allocated = 0 AND children = 0`, CIDR item, VRF, |
| | parent), TransactWriteItems | parent if `children` unchanged, dashboard (ADD), audit |
| next free addresses | GetItem, Query | `IPAM_IP#<vrf>`, SK BETWEEN first and last usable, keys |
| | | only, pages read until enough gaps are found (table) |
| allocate N | GetItem (TransactGetItems | the prefix (and the idempotency record `IDEMPOTENCY` / |
| | with an Idempotency-Key) | `ipam.allocate#<sha256>`), then the free-address Query |
| | TransactWriteItems | N addresses if absent, prefix counter (guard), record, |
| | | `ISP_DASHBOARD` / `IPAM#<family>` (ADD), audit |
| get an address | GetItem | `IPAM_IP#<vrf>` / `<address key>` (table) |
| list a VRF's addresses | Query | `IPAM_IP#<vrf>` (table) |
| list a prefix's addresses | Query | `IPAM_PREFIX_IP#<prefix>` (GSI1) |
| addresses assigned to X | Query | `IPAM_ASSIGNED#<assigned_to>`, e.g. `service:<id>` (GSI2) |
| release an address | GetItem, BatchGetItem, | the address; its prefix (consistent); delete it if |
| | TransactWriteItems | the same allocation, prefix counter (guard), dashboard |
| release a service's | Query, BatchGetItem, | GSI2 as above, their prefixes; one transaction per |
| | TransactWriteItems | 45 addresses |
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

from dotmac.core import audit_trail
from dotmac.core.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    UnprocessableError,
    ValidationError,
    referenced,
)
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import (
    Page,
    TenantRepository,
    page_under,
    query_page,
    transact_get,
)
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import (
    MAX_TRANSACTION_ITEMS,
    UnitOfWork,
    cancelled_by_another_transaction,
)
from dotmac.isp import dashboard
from dotmac.isp.ipam_models import (
    AddressItem,
    AllocationRecordItem,
    PrefixCidrItem,
    PrefixItem,
    VrfItem,
    VrfNameItem,
)

if TYPE_CHECKING:
    from pynamodb.expressions.condition import Condition

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Partitions and index partitions (all inside the tenant's key space).
VRF, VRF_NAME, PREFIX, CIDR, IP = "IPAM_VRF", "IPAM_VRF_NAME", "IPAM_PREFIX", "IPAM_CIDR", "IPAM_IP"
VRF_PREFIXES, ALL_PREFIXES = "IPAM_VRF_PREFIX", "IPAM_PREFIXES"
PREFIX_ADDRESSES, ASSIGNED = "IPAM_PREFIX_IP", "IPAM_ASSIGNED"
IDEMPOTENCY = "IDEMPOTENCY"
RECORD_PREFIX = "ipam.allocate#"

DEFAULT_THRESHOLD = 80  # percent
MAX_ALLOCATION = 64  # addresses per request (one transaction; see MAX_TRANSACTION_ITEMS)
MAX_ADOPTED = 50  # existing prefixes a new prefix may take as its children in one write
MIN_IPV6_LENGTH = 8  # sizes stay within DynamoDB's 38-digit numbers
DEFAULT_AVAILABLE = 10
MAX_AVAILABLE = 200
RECORD_SECONDS = 24 * 3600
ALLOCATION_ATTEMPTS = 30
WRITE_ATTEMPTS = 8
RELEASE_BATCH = 45  # addresses + their prefixes (at most as many) + audit <= 100 writes
BACKOFF_BASE, BACKOFF_CAP = 0.002, 0.05  # seconds
ALERT_TEMPLATE = "isp.ipam.prefix_threshold"
ALERT_RECIPIENT = "role:isp_manager"  # resolved to the tenant's ISP managers by the channel

ID_PATTERN = r"^[0-9a-f]{16}$"
ASSIGNED_TO_PATTERN = r"^[a-z][a-z_]{0,31}:[A-Za-z0-9._:-]{1,128}$"
_random = secrets.SystemRandom()


# --- pure rules ------------------------------------------------------------------------


def parse_prefix(text: str) -> Network:
    """A prefix in CIDR notation; host bits set, a bare address or junk is a ValueError."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError("must be a prefix in CIDR notation, e.g. 10.0.0.0/24")
    network = ipaddress.ip_network(text.strip(), strict=True)
    if network.version == 6 and network.prefixlen < MIN_IPV6_LENGTH:
        raise ValueError(f"IPv6 prefixes must be /{MIN_IPV6_LENGTH} or longer")
    return network


def parse_address(text: str) -> Address:
    """One IP address (no mask, no zone); ValueError otherwise."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise ValueError("zoned IPv6 addresses are not managed")
    return address


def usable_bounds(network: Network, pool: bool = False) -> tuple[Address, Address]:
    """The first and last usable address of `network` (see the module rules)."""
    first: Address = network.network_address
    last: Address = network.broadcast_address
    if pool:
        return first, last
    if network.version == 4 and network.prefixlen <= 30:
        return first + 1, last - 1
    if network.version == 6 and network.prefixlen <= 126:
        return first + 1, last
    return first, last


def usable_count(network: Network, pool: bool = False) -> int:
    first, last = usable_bounds(network, pool)
    return int(last) - int(first) + 1


def is_usable(address: Address, network: Network, pool: bool = False) -> bool:
    first, last = usable_bounds(network, pool)
    return address.version == network.version and int(first) <= int(address) <= int(last)


def address_key(address: Address) -> str:
    """`<version>#<packed hex>`: sorts in address order within a version."""
    return f"{address.version}#{address.packed.hex()}"


def address_from_key(key: str) -> Address:
    return ipaddress.ip_address(bytes.fromhex(key.split("#", 1)[1]))


def cidr_key(network: Network) -> str:
    """`<version>#<network hex>/<length>`: a prefix's descendants sort right after it."""
    return f"{network.version}#{network.network_address.packed.hex()}/{network.prefixlen:03d}"


def network_from_key(key: str) -> Network:
    packed, length = key.split("#", 1)[1].split("/")
    return ipaddress.ip_network((bytes.fromhex(packed), int(length)))


def descendants_range(network: Network) -> tuple[str, str] | None:
    """The CIDR-key range holding exactly the prefixes strictly inside `network`."""
    if network.prefixlen == network.max_prefixlen:
        return None
    low = f"{network.version}#{network.network_address.packed.hex()}/{network.prefixlen + 1:03d}"
    high = f"{network.version}#{network.broadcast_address.packed.hex()}/999"
    return low, high


def supernets(network: Network) -> list[Network]:
    """`network` and every prefix containing it that IPAM accepts, shortest first."""
    shortest = 0 if network.version == 4 else MIN_IPV6_LENGTH
    return [
        network.supernet(new_prefix=length) for length in range(shortest, network.prefixlen)
    ] + [network]


def direct_children(
    inside: Sequence[tuple[Network, str]],
) -> list[tuple[Network, str]]:
    """Of the prefixes strictly inside a new prefix (in key order: address, then length),
    the ones no other of them contains: the new prefix's children."""
    direct: list[tuple[Network, str]] = []
    for network, prefix_id in inside:
        if direct and network.subnet_of(direct[-1][0]):  # type: ignore[arg-type]
            continue
        direct.append((network, prefix_id))
    return direct


def free_addresses(network: Network, pool: bool, taken: Iterable[Address]) -> Iterator[Address]:
    """The usable addresses of `network` not in `taken` (ascending), in ascending order.

    Lazy on both sides: only as much of `taken` is read as the caller consumes.
    """
    cursor, last = usable_bounds(network, pool)
    for address in taken:
        if int(address) < int(cursor):
            continue
        if int(address) > int(last):
            break
        while int(cursor) < int(address):
            yield cursor
            cursor += 1
        if address == last:
            return
        cursor = address + 1
    while True:
        yield cursor
        if cursor == last:
            return
        cursor += 1


def pick(free: Sequence[Address], count: int, attempt: int) -> list[Address]:
    """The first `count` free addresses; after a lost race, `count` of the free window at
    random (the window the caller read grows with each attempt), so contenders spread."""
    if attempt == 0 or len(free) <= count:
        return list(free[:count])
    return sorted(_random.sample(list(free), count))


def window(count: int, attempt: int) -> int:
    """How many free addresses to read before picking: `count`, then 4x wider per retry."""
    return count * 4 ** min(attempt, 4)


def threshold_count(usable: int, threshold: int) -> int:
    """The smallest number of allocated addresses at which utilisation >= threshold %."""
    return max(1, -(-usable * threshold // 100))


def utilisation(used: int, capacity: int) -> float:
    """Percent, two decimals."""
    return 0.0 if capacity <= 0 else round(used * 100 / capacity, 2)


@dataclass(frozen=True)
class Guard:
    """What an allocation (or a release) commits under, given the counter it read.

    The counter, when the write lands, must be `exactly` what was read (this write crosses
    the threshold, up or down, so it must be the only one that does), or within
    [`at_least`, `at_most`] (it stays below the threshold whatever else committed
    meanwhile, or it was and stays at or above it, within capacity). A counter that moved
    out of the range fails the write, which then reads again.
    """

    crosses: bool
    at_most: int | None = None
    exactly: int | None = None
    at_least: int | None = None

    def admits(self, counter: int) -> bool:
        """Whether the write's condition holds for the counter at `counter`."""
        if self.exactly is not None and counter != self.exactly:
            return False
        if self.at_least is not None and counter < self.at_least:
            return False
        return self.at_most is None or counter <= self.at_most


def guard_for(allocated: int, count: int, usable: int, threshold: int) -> Guard:
    """The commit condition for allocating `count` more (a negative `count`: releasing
    them); PREFIX_EXHAUSTED if they don't fit."""
    if allocated + count > usable:
        raise exhausted(usable - allocated, count)
    mark = threshold_count(usable, threshold)
    if allocated < mark and allocated + count < mark:  # stays below, whatever else commits
        return Guard(crosses=False, at_most=mark - 1 - max(count, 0))
    if allocated >= mark and allocated + count >= mark:
        # Stays at/above; if others took it across meanwhile, this might cross: read again.
        return Guard(crosses=False, at_least=mark - min(count, 0), at_most=usable - max(count, 0))
    return Guard(crosses=True, exactly=allocated)  # across the threshold: exactly this write


def exhausted(free: int, count: int) -> ConflictError:
    return ConflictError(
        f"the prefix has {max(free, 0)} free usable addresses, {count} requested",
        code="PREFIX_EXHAUSTED",
    )


def fingerprint(prefix_id: str, request: AllocationRequest) -> str:
    body = {"prefix_id": prefix_id, **request.model_dump()}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def record_key(idempotency_key: str) -> str:
    """The record's sort key (the header is validated by `Call.idempotency_key`)."""
    return RECORD_PREFIX + hashlib.sha256(idempotency_key.encode()).hexdigest()


# --- request bodies ------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Threshold = Annotated[StrictInt, Field(ge=1, le=100)]


class VrfCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    rd: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9.]{0,38}:[0-9]{1,10}$")] | None = None
    description: Text | None = None


class PrefixCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vrf_id: Id
    prefix: str
    is_pool: StrictBool = False
    description: Text | None = None
    alert_threshold: Threshold = DEFAULT_THRESHOLD

    @field_validator("prefix")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return str(parse_prefix(value))


class PrefixUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Text | None = None
    alert_threshold: Threshold | None = None


class AllocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: Annotated[StrictInt, Field(ge=1, le=MAX_ALLOCATION)]
    description: Text | None = None
    assigned_to: Annotated[str, StringConstraints(pattern=ASSIGNED_TO_PATTERN)] | None = None


# --- views ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def vrf_view(item: VrfItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "rd": item.rd,
        "description": item.description,
        "prefixes": int(item.prefixes or 0),
        "created_at": _iso(item.created_at),
    }


def prefix_view(item: PrefixItem) -> dict[str, Any]:
    network = ipaddress.ip_network(item.prefix)
    usable = usable_count(network, bool(item.is_pool))
    allocated, children = int(item.allocated or 0), int(item.children or 0)
    covered = int(item.covered or 0)
    threshold = int(item.alert_threshold)
    container = children > 0
    used = (
        utilisation(covered, network.num_addresses) if container else utilisation(allocated, usable)
    )
    return {
        "vrf_id": item.vrf_id,
        "prefix": item.prefix,
        "family": network.version,
        "prefix_length": network.prefixlen,
        "parent_id": item.parent_id,
        "kind": "container" if container else "leaf",
        "is_pool": bool(item.is_pool),
        "description": item.description,
        "size": network.num_addresses,
        "usable": usable,
        "allocated": allocated,
        "free": 0 if container else usable - allocated,
        "child_prefixes": children,
        "covered": covered,
        "utilisation": used,
        "alert_threshold": threshold,
        "above_threshold": not container and allocated >= threshold_count(usable, threshold),
        "last_alert_at": _iso(item.last_alert_at),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def address_view(item: AddressItem) -> dict[str, Any]:
    return {
        "address": item.address,
        "vrf_id": item.vrf_id,
        "prefix_id": item.prefix_id,
        "prefix": item.prefix,
        "status": "ALLOCATED",
        "assigned_to": item.assigned_to,
        "description": item.description,
        "allocated_at": _iso(item.allocated_at),
        "allocated_by": item.allocated_by,
    }


# --- data access ---------------------------------------------------------------------------


def _id_or_404(value: str, what: str) -> str:
    if not re.fullmatch(ID_PATTERN, value or ""):
        raise NotFoundError(f"{what} {value} not found")
    return value


def _address_or_400(text: str) -> Address:
    from urllib.parse import unquote

    try:
        return parse_address(unquote(text))
    except ValueError as exc:
        raise ValidationError(
            "invalid IP address", details=[FieldError("address", str(exc))]
        ) from exc


class IpamRepository(TenantRepository):
    """IPAM items of one tenant; every key is built from the context."""

    def vrf_key(self, vrf_id: str) -> tuple[str, str]:
        return self.key(VRF), vrf_id

    def prefix_key(self, prefix_id: str) -> tuple[str, str]:
        return self.key(PREFIX), prefix_id

    def cidr_key(self, vrf_id: str, network: Network) -> tuple[str, str]:
        return self.key(CIDR, vrf_id), cidr_key(network)

    def address_key(self, vrf_id: str, address: Address) -> tuple[str, str]:
        return self.key(IP, vrf_id), address_key(address)

    # reads

    def vrf(self, vrf_id: str, *, consistent: bool = False) -> VrfItem:
        _id_or_404(vrf_id, "VRF")
        try:
            return VrfItem.get(*self.vrf_key(vrf_id), consistent_read=consistent)
        except VrfItem.DoesNotExist as exc:
            raise NotFoundError(f"VRF {vrf_id} not found") from exc

    def vrfs(self, page: PageRequest) -> Page[VrfItem]:
        return query_page(VrfItem, self.key(VRF), page)

    def prefix(self, prefix_id: str, *, consistent: bool = False) -> PrefixItem:
        _id_or_404(prefix_id, "prefix")
        try:
            return PrefixItem.get(*self.prefix_key(prefix_id), consistent_read=consistent)
        except PrefixItem.DoesNotExist as exc:
            raise NotFoundError(f"prefix {prefix_id} not found") from exc

    def prefix_and_record(
        self, prefix_id: str, record_sk: str
    ) -> tuple[PrefixItem | None, AllocationRecordItem | None]:
        """The prefix and an allocation record, in one strongly consistent call."""
        _id_or_404(prefix_id, "prefix")
        found_prefix, found_record = transact_get(
            (PrefixItem, *self.prefix_key(prefix_id)),
            (AllocationRecordItem, self.key(IDEMPOTENCY), record_sk),
        )
        if found_record is not None and (found_record.expires_at or 0) < time.time():
            found_record = None
        return found_prefix, found_record

    def prefixes_by_id(self, prefix_ids: Sequence[str]) -> list[PrefixItem]:
        """The prefixes with these ids, strongly consistent (one BatchGetItem)."""
        keys = [self.prefix_key(prefix_id) for prefix_id in prefix_ids]
        return list(PrefixItem.batch_get(keys, consistent_read=True))

    def prefixes(self, page: PageRequest, vrf_id: str | None = None) -> Page[PrefixItem]:
        if vrf_id is None:
            return query_page(PrefixItem, self.key(ALL_PREFIXES), page, index="gsi2")
        return query_page(PrefixItem, self.key(VRF_PREFIXES, vrf_id), page, index="gsi1")

    def existing_supernets(self, vrf_id: str, network: Network) -> list[tuple[Network, str]]:
        """`network` itself and the existing prefixes containing it (one BatchGetItem for
        IPv4; the CIDR items are keyed by CIDR, so no index is involved)."""
        keys = [self.cidr_key(vrf_id, n) for n in supernets(network)]
        found = PrefixCidrItem.batch_get(keys, consistent_read=True)
        return sorted(
            ((network_from_key(item.SK), item.prefix_id) for item in found),
            key=lambda pair: pair[0].prefixlen,
        )

    def inside(self, vrf_id: str, network: Network) -> list[tuple[Network, str]]:
        """Every existing prefix strictly inside `network`, in key order."""
        bounds = descendants_range(network)
        if bounds is None:
            return []
        items = PrefixCidrItem.query(
            self.key(CIDR, vrf_id),
            PrefixCidrItem.SK.between(*bounds),
            consistent_read=True,
        )
        return [(network_from_key(item.SK), item.prefix_id) for item in items]

    def address(self, vrf_id: str, address: Address, *, consistent: bool = False) -> AddressItem:
        _id_or_404(vrf_id, "VRF")
        try:
            return AddressItem.get(*self.address_key(vrf_id, address), consistent_read=consistent)
        except AddressItem.DoesNotExist as exc:
            raise NotFoundError(f"address {address} not found in VRF {vrf_id}") from exc

    def addresses_of_vrf(self, vrf_id: str, page: PageRequest) -> Page[AddressItem]:
        return query_page(AddressItem, self.key(IP, vrf_id), page)

    def addresses_of_prefix(self, prefix_id: str, page: PageRequest) -> Page[AddressItem]:
        return query_page(AddressItem, self.key(PREFIX_ADDRESSES, prefix_id), page, index="gsi1")

    def assigned(self, assigned_to: str, page: PageRequest) -> Page[AddressItem]:
        return query_page(AddressItem, self.key(ASSIGNED, assigned_to), page, index="gsi2")

    def all_assigned(self, assigned_to: str) -> list[AddressItem]:
        return list(AddressItem.gsi2.query(self.key(ASSIGNED, assigned_to)))  # type: ignore[arg-type]

    def taken(self, vrf_id: str, first: Address, last: Address) -> Iterator[Address]:
        """Allocated addresses of the VRF from `first` to `last`, ascending; pages are read
        only as the caller consumes them (keys only, strongly consistent)."""
        connection: Any = AddressItem._get_connection()
        condition = AddressItem.SK.between(address_key(first), address_key(last))
        start = None
        while True:
            answer = connection.query(
                self.key(IP, vrf_id),
                range_key_condition=condition,
                attributes_to_get=["SK"],
                consistent_read=True,
                exclusive_start_key=start,
            )
            for raw in answer.get("Items", []):
                yield address_from_key(raw["SK"]["S"])
            start = answer.get("LastEvaluatedKey")
            if not start:
                return

    def still_assigned(self, items: Sequence[AddressItem]) -> list[AddressItem]:
        """Those of `items` that still exist as the same allocation (one BatchGetItem)."""
        wanted = {(i.PK, i.SK): i.allocated_at for i in items}
        fresh = AddressItem.batch_get(list(wanted), consistent_read=True)
        return [f for f in fresh if wanted.get((f.PK, f.SK)) == f.allocated_at]


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def _backoff(attempt: int) -> None:
    time.sleep(_random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))


# --- VRFs ----------------------------------------------------------------------------------


def create_vrf(ctx: TenantContext, body: VrfCreate) -> VrfItem:
    """A new VRF; its name is unique in the tenant (409 VRF_NAME_TAKEN)."""
    IpamRepository(ctx)
    vrf_id = _new_id()
    item = VrfItem(
        ctx.key(VRF),
        vrf_id,
        name=body.name,
        rd=body.rd,
        description=body.description,
        prefixes=0,
        revision=0,
        created_at=_now(),
        created_by=ctx.user_id,
    )
    uow = UnitOfWork(ctx)
    uow.put(item, condition=VrfItem.PK.does_not_exist())
    uow.put(
        VrfNameItem(ctx.key(VRF_NAME), body.name.lower(), vrf_id=vrf_id),
        condition=VrfNameItem.PK.does_not_exist(),
    )
    uow.audit("isp.vrf.create", "vrf", vrf_id, after=vrf_view(item))
    try:
        uow.commit()
    except ConflictError:
        raise ConflictError(f"a VRF named {body.name} exists", code="VRF_NAME_TAKEN") from None
    return item


def get_vrf(ctx: TenantContext, vrf_id: str) -> VrfItem:
    return IpamRepository(ctx).vrf(vrf_id)


def list_vrfs(ctx: TenantContext, page: PageRequest) -> Page[VrfItem]:
    return IpamRepository(ctx).vrfs(page)


# --- prefixes ------------------------------------------------------------------------------


def create_prefix(ctx: TenantContext, body: PrefixCreate) -> PrefixItem:
    """Create a prefix in its place in the VRF's tree (see the module rules)."""
    network = parse_prefix(body.prefix)
    repo = IpamRepository(ctx)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            vrf = repo.vrf(body.vrf_id, consistent=True)
        except NotFoundError:
            raise ValidationError(
                "unknown VRF", details=[FieldError("vrf_id", "no such VRF")]
            ) from None
        above = repo.existing_supernets(body.vrf_id, network)
        if above and above[-1][0] == network:
            raise ConflictError(f"{network} already exists in this VRF", code="PREFIX_OVERLAP")
        parent_id = above[-1][1] if above else None
        adopted = direct_children(repo.inside(body.vrf_id, network))
        if len(adopted) > MAX_ADOPTED:
            raise ConflictError(
                f"{network} would contain {len(adopted)} existing prefixes directly; "
                f"at most {MAX_ADOPTED} can be moved under a new prefix at once",
                code="PREFIX_OVERLAP",
            )
        adopted_size = sum(n.num_addresses for n, _ in adopted)
        try:
            parent = None if parent_id is None else repo.prefix(parent_id, consistent=True)
        except NotFoundError:  # deleted meanwhile: look again
            _backoff(attempt)
            continue
        prefix_id, now = _new_id(), _now()
        key = cidr_key(network)
        item = PrefixItem(
            ctx.key(PREFIX),
            prefix_id,
            GSI1PK=ctx.key(VRF_PREFIXES, body.vrf_id),
            GSI1SK=key,
            GSI2PK=ctx.key(ALL_PREFIXES),
            GSI2SK=f"{body.vrf_id}#{key}",
            vrf_id=body.vrf_id,
            prefix=str(network),
            parent_id=parent_id,
            is_pool=body.is_pool,
            description=body.description,
            alert_threshold=body.alert_threshold,
            allocated=0,
            children=len(adopted),
            covered=adopted_size,
            created_at=now,
            updated_at=now,
        )
        uow = UnitOfWork(ctx)
        uow.put(item, condition=PrefixItem.PK.does_not_exist())
        uow.put(
            PrefixCidrItem(*repo.cidr_key(body.vrf_id, network), prefix_id=prefix_id),
            condition=PrefixCidrItem.PK.does_not_exist(),
        )
        uow.update(
            vrf,
            [VrfItem.prefixes.add(1), VrfItem.revision.add(1)],
            condition=VrfItem.revision == int(vrf.revision or 0),
        )
        if parent is not None:
            uow.update(
                PrefixItem(*repo.prefix_key(str(parent.SK))),
                [
                    PrefixItem.children.add(1 - len(adopted)),
                    PrefixItem.covered.add(network.num_addresses - adopted_size),
                    PrefixItem.updated_at.set(now),
                ],
                condition=(PrefixItem.allocated == 0)
                & (PrefixItem.children == int(parent.children or 0)),
            )
        leaves = _new_leaves(network, body.is_pool, len(adopted), parent)
        dashboard.stage_addresses(uow, ctx, network.version, **leaves)
        same_parent: Any = (
            PrefixItem.parent_id.does_not_exist()
            if parent_id is None
            else PrefixItem.parent_id == parent_id
        )
        for _, child_id in adopted:
            uow.update(
                PrefixItem(*repo.prefix_key(child_id)),
                [PrefixItem.parent_id.set(prefix_id), PrefixItem.updated_at.set(now)],
                condition=PrefixItem.PK.exists() & same_parent,
            )
        uow.audit("isp.prefix.create", "prefix", prefix_id, after=prefix_view(item))
        try:
            uow.commit()
        except ConflictError:
            if parent_id is not None:  # is it the parent's addresses, or a race?
                _refuse_if_allocated(repo, parent_id)
            _backoff(attempt)
            continue
        except Exception as exc:
            if not cancelled_by_another_transaction(exc):
                raise
            _backoff(attempt)
            continue
        return item
    raise ConflictError("the VRF's prefixes changed concurrently; retry")


def _new_leaves(
    network: Network, pool: bool, adopted: int, parent: PrefixItem | None
) -> dict[str, int]:
    """The dashboard's moves for a new prefix: without children it is a leaf, and a parent
    that was a leaf stops being one."""
    leaves, usable = (0, 0) if adopted else (1, usable_count(network, pool))
    if parent is not None and not int(parent.children or 0):
        leaves, usable = leaves - 1, usable - _usable(parent)
    return {"prefixes": leaves, "usable": usable}


def _refuse_if_allocated(repo: IpamRepository, prefix_id: str) -> None:
    """409 PREFIX_HAS_ADDRESSES if the prefix (still) has allocated addresses."""
    try:
        parent = repo.prefix(prefix_id, consistent=True)
    except NotFoundError:
        return  # deleted meanwhile: the next attempt finds the new parent
    if int(parent.allocated or 0) > 0:
        raise ConflictError(
            f"{parent.prefix} has allocated addresses; release them before creating "
            f"prefixes inside it",
            code="PREFIX_HAS_ADDRESSES",
        )


def get_prefix(ctx: TenantContext, prefix_id: str) -> PrefixItem:
    return IpamRepository(ctx).prefix(prefix_id)


def list_prefixes(
    ctx: TenantContext, page: PageRequest, vrf_id: str | None = None
) -> Page[PrefixItem]:
    if vrf_id is not None and not re.fullmatch(ID_PATTERN, vrf_id):
        raise ValidationError("invalid vrf_id", details=[FieldError("vrf_id", "not a VRF id")])
    return IpamRepository(ctx).prefixes(page, vrf_id)


def update_prefix(ctx: TenantContext, prefix_id: str, body: PrefixUpdate) -> PrefixItem:
    """Change a prefix's description or alert threshold (a new threshold alerts only on a
    later allocation that crosses it)."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationError("nothing to change", details=[FieldError("", "no fields given")])
    if changes.get("alert_threshold", 0) is None:
        raise ValidationError(
            "invalid alert_threshold", details=[FieldError("alert_threshold", "cannot be null")]
        )
    from dotmac.core.retry import until_won

    repo = IpamRepository(ctx)

    def attempt() -> PrefixItem:
        item = repo.prefix(prefix_id, consistent=True)
        before = prefix_view(item)
        # The counter and threshold read decide whether it is over its threshold before and
        # after (the dashboard counts those): the write holds only if neither moved.
        unchanged = (PrefixItem.allocated == int(item.allocated or 0)) & (
            PrefixItem.alert_threshold == int(item.alert_threshold)
        )
        now = _now()
        actions: list[Any] = [PrefixItem.updated_at.set(now)]
        if "description" in changes:
            description = changes["description"]
            actions.append(
                PrefixItem.description.remove()
                if description is None
                else PrefixItem.description.set(description)
            )
            item.description = description
        if "alert_threshold" in changes:
            actions.append(PrefixItem.alert_threshold.set(changes["alert_threshold"]))
            item.alert_threshold = changes["alert_threshold"]
        item.updated_at = now
        after = prefix_view(item)
        uow = UnitOfWork(ctx)
        uow.update(PrefixItem(*repo.prefix_key(prefix_id)), actions, condition=unchanged)
        over = int(after["above_threshold"]) - int(before["above_threshold"])
        dashboard.stage_addresses(uow, ctx, after["family"], over_threshold=over)
        uow.audit("isp.prefix.update", "prefix", prefix_id, before=before, after=after)
        uow.commit(conflict="the prefix changed meanwhile; retry")
        return item

    return until_won(attempt)


def delete_prefix(ctx: TenantContext, prefix_id: str) -> None:
    """Delete a prefix with no addresses and no child prefixes (else 409 PREFIX_NOT_EMPTY)."""
    repo = IpamRepository(ctx)
    for attempt in range(WRITE_ATTEMPTS):
        item = repo.prefix(prefix_id, consistent=True)
        if int(item.allocated or 0) or int(item.children or 0):
            raise ConflictError(
                f"{item.prefix} still has addresses or child prefixes", code="PREFIX_NOT_EMPTY"
            )
        network = ipaddress.ip_network(item.prefix)
        now = _now()
        uow = UnitOfWork(ctx)
        uow.delete(item, condition=(PrefixItem.allocated == 0) & (PrefixItem.children == 0))
        uow.delete(
            PrefixCidrItem(*repo.cidr_key(item.vrf_id, network)),
            condition=PrefixCidrItem.prefix_id == prefix_id,
        )
        uow.update(
            VrfItem(*repo.vrf_key(item.vrf_id)),
            [VrfItem.prefixes.add(-1), VrfItem.revision.add(1)],
            condition=VrfItem.PK.exists(),
        )
        # The deleted leaf stops counting; a parent left without children becomes a leaf.
        leaves, usable = -1, -_usable(item)
        if item.parent_id is not None:
            parent = repo.prefix(item.parent_id, consistent=True)
            siblings = int(parent.children or 0)
            uow.update(
                PrefixItem(*repo.prefix_key(item.parent_id)),
                [
                    PrefixItem.children.add(-1),
                    PrefixItem.covered.add(-network.num_addresses),
                    PrefixItem.updated_at.set(now),
                ],
                condition=PrefixItem.children == siblings,
            )
            if siblings == 1:
                leaves, usable = 0, usable + _usable(parent)
        dashboard.stage_addresses(uow, ctx, network.version, prefixes=leaves, usable=usable)
        uow.audit("isp.prefix.delete", "prefix", prefix_id, before=prefix_view(item))
        try:
            uow.commit()
        except ConflictError:
            _backoff(attempt)
            continue
        except Exception as exc:
            if not cancelled_by_another_transaction(exc):
                raise
            _backoff(attempt)
            continue
        return
    raise ConflictError("the prefix changed concurrently; retry")


# --- addresses -----------------------------------------------------------------------------


def _leaf(item: PrefixItem) -> tuple[Network, bool]:
    if int(item.children or 0) > 0:
        raise ConflictError(
            f"{item.prefix} is a container; allocate from one of its child prefixes",
            code="PREFIX_IS_CONTAINER",
        )
    return ipaddress.ip_network(item.prefix), bool(item.is_pool)


def available(ctx: TenantContext, prefix_id: str, limit: int = DEFAULT_AVAILABLE) -> list[Address]:
    """The next `limit` free usable addresses of a leaf prefix, without allocating them."""
    repo = IpamRepository(ctx)
    item = repo.prefix(prefix_id, consistent=True)
    network, pool = _leaf(item)
    if int(item.allocated or 0) >= usable_count(network, pool):
        return []
    first, last = usable_bounds(network, pool)
    return list(islice(free_addresses(network, pool, repo.taken(item.vrf_id, first, last)), limit))


@dataclass(frozen=True)
class Allocation:
    """What an allocation returned (`replayed`: an earlier answer for the same key)."""

    prefix_id: str
    addresses: list[dict[str, Any]]
    replayed: bool = False


def allocate(
    ctx: TenantContext,
    prefix_id: str,
    request: AllocationRequest,
    idempotency_key: str | None = None,
) -> Allocation:
    """Allocate the next `request.count` free usable addresses of a leaf prefix atomically."""
    _check_assignee(ctx, request.assigned_to)
    repo = IpamRepository(ctx)
    record_sk = None if idempotency_key is None else record_key(idempotency_key)
    request_print = fingerprint(prefix_id, request)
    check_record = record_sk is not None
    for attempt in range(ALLOCATION_ATTEMPTS):
        if check_record and record_sk is not None:
            prefix, record = repo.prefix_and_record(prefix_id, record_sk)
            if record is not None:
                return _replay(ctx, record, request_print)
            if prefix is None:
                raise NotFoundError(f"prefix {prefix_id} not found")
            check_record = False
        else:
            prefix = repo.prefix(prefix_id, consistent=True)
        network, pool = _leaf(prefix)
        usable = usable_count(network, pool)
        allocated = int(prefix.allocated or 0)
        guard = guard_for(allocated, request.count, usable, int(prefix.alert_threshold))
        first, last = usable_bounds(network, pool)
        taken = repo.taken(prefix.vrf_id, first, last)
        free = list(islice(free_addresses(network, pool, taken), window(request.count, attempt)))
        if len(free) < request.count:
            raise exhausted(len(free), request.count)
        chosen = pick(free, request.count, attempt)
        uow, items = _stage_allocation(
            ctx, repo=repo, prefix=prefix, chosen=chosen, request=request, guard=guard
        )
        if record_sk is not None:
            uow.put(
                _record(
                    ctx,
                    prefix=prefix,
                    items=items,
                    request=request,
                    request_print=request_print,
                    record_sk=record_sk,
                ),
                condition=AllocationRecordItem.PK.does_not_exist()
                | (AllocationRecordItem.expires_at < int(time.time())),
            )
        uow.audit(
            "isp.ip_address.allocate",
            "prefix",
            prefix_id,
            after={"addresses": [i.address for i in items], "assigned_to": request.assigned_to},
        )
        try:
            uow.commit()
        except ConflictError:
            # Lost a race for an address or the counter, or the same key committed meanwhile
            # (the next read, one TransactGetItems instead of a GetItem, finds its record).
            check_record = record_sk is not None
            _backoff(attempt)
            continue
        except Exception as exc:
            if not cancelled_by_another_transaction(exc):
                raise
            check_record = record_sk is not None
            _backoff(attempt)
            continue
        if guard.crosses:
            _send_alert(ctx, prefix, allocated + request.count, usable)
        return Allocation(prefix_id, [address_view(i) for i in items])
    raise ConflictError(
        "the prefix is being allocated from concurrently; retry", code="ALLOCATION_CONTENDED"
    )


def _stage_allocation(
    ctx: TenantContext,
    *,
    repo: IpamRepository,
    prefix: PrefixItem,
    chosen: Sequence[Address],
    request: AllocationRequest,
    guard: Guard,
) -> tuple[UnitOfWork, list[AddressItem]]:
    """Stage the address items (operations 0..n-1) and the prefix counter (operation n)."""
    if len(chosen) + 3 > MAX_TRANSACTION_ITEMS:
        raise ValueError("too many addresses for one transaction")
    now = _now()
    prefix_id = str(prefix.SK)
    uow = UnitOfWork(ctx)
    items: list[AddressItem] = []
    for address in chosen:
        key = address_key(address)
        assigned = request.assigned_to
        item = AddressItem(
            ctx.key(IP, prefix.vrf_id),
            key,
            GSI1PK=ctx.key(PREFIX_ADDRESSES, prefix_id),
            GSI1SK=key,
            GSI2PK=None if assigned is None else ctx.key(ASSIGNED, assigned),
            GSI2SK=None if assigned is None else f"{prefix.vrf_id}#{key}",
            vrf_id=prefix.vrf_id,
            address=str(address),
            prefix_id=prefix_id,
            prefix=prefix.prefix,
            assigned_to=assigned,
            description=request.description,
            allocated_at=now,
            allocated_by=ctx.user_id,
        )
        uow.put(item, condition=AddressItem.PK.does_not_exist())
        items.append(item)
    actions: list[Any] = [
        PrefixItem.allocated.add(len(chosen)),
        PrefixItem.updated_at.set(now),
    ]
    if guard.crosses:
        actions.append(PrefixItem.last_alert_at.set(now))
    uow.update(PrefixItem(*repo.prefix_key(prefix_id)), actions, condition=_guarded(prefix, guard))
    family = ipaddress.ip_network(prefix.prefix).version
    dashboard.stage_addresses(
        uow, ctx, family, assigned=len(chosen), over_threshold=int(guard.crosses)
    )
    return uow, items


def _guarded(prefix: PrefixItem, guard: Guard) -> Condition:
    """The condition a write moving the counter of the leaf `prefix` (as read) commits under:
    `guard`, and the alert threshold it was computed with."""
    threshold = int(prefix.alert_threshold)
    condition: Condition = (
        PrefixItem.PK.exists()
        & (PrefixItem.children == 0)
        & (PrefixItem.alert_threshold == threshold)
    )
    if guard.exactly is not None:
        condition &= PrefixItem.allocated == guard.exactly
    if guard.at_least is not None:
        condition &= PrefixItem.allocated >= guard.at_least
    if guard.at_most is not None:
        condition &= PrefixItem.allocated <= guard.at_most
    return condition


def _usable(item: PrefixItem) -> int:
    return usable_count(ipaddress.ip_network(item.prefix), bool(item.is_pool))


def _record(
    ctx: TenantContext,
    *,
    prefix: PrefixItem,
    items: Sequence[AddressItem],
    request: AllocationRequest,
    request_print: str,
    record_sk: str,
) -> AllocationRecordItem:
    return AllocationRecordItem(
        ctx.key(IDEMPOTENCY),
        record_sk,
        prefix_id=str(prefix.SK),
        fingerprint=request_print,
        addresses=[i.address for i in items],
        vrf_id=prefix.vrf_id,
        prefix=prefix.prefix,
        assigned_to=request.assigned_to,
        description=request.description,
        allocated_at=items[0].allocated_at,
        allocated_by=ctx.user_id,
        expires_at=int(time.time()) + RECORD_SECONDS,
    )


def _replay(ctx: TenantContext, record: AllocationRecordItem, request_print: str) -> Allocation:
    if record.fingerprint != request_print:
        raise UnprocessableError(
            "this Idempotency-Key was used for a different request",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    audit_trail.record(ctx, "isp.ip_address.replay", "prefix", record.prefix_id)
    views = [
        {
            "address": address,
            "vrf_id": record.vrf_id,
            "prefix_id": record.prefix_id,
            "prefix": record.prefix,
            "status": "ALLOCATED",
            "assigned_to": record.assigned_to,
            "description": record.description,
            "allocated_at": _iso(record.allocated_at),
            "allocated_by": record.allocated_by,
        }
        for address in record.addresses
    ]
    return Allocation(record.prefix_id, views, replayed=True)


def _send_alert(ctx: TenantContext, prefix: PrefixItem, allocated: int, usable: int) -> None:
    """Queue the threshold alert (after the commit; a queue outage is logged, and the
    crossing stays visible as the prefix's `last_alert_at`)."""
    from dotmac.core import queues
    from dotmac.core.observability import get_logger
    from dotmac.notifications.schemas import Notification

    prefix_id = str(prefix.SK)
    notification = Notification(
        id=f"ipam-{prefix_id}-{uuid.uuid4().hex[:16]}",
        tenant_id=ctx.tenant_id,
        channel="email",
        recipient=ALERT_RECIPIENT,
        template=ALERT_TEMPLATE,
        data={
            "prefix_id": prefix_id,
            "vrf_id": prefix.vrf_id,
            "prefix": prefix.prefix,
            "allocated": allocated,
            "usable": usable,
            "utilisation": utilisation(allocated, usable),
            "threshold": int(prefix.alert_threshold),
        },
    )
    try:
        queues.send("notifications", notification.model_dump(mode="json"), dedup_id=notification.id)
    except Exception:
        get_logger().exception("prefix threshold alert not queued", prefix_id=prefix_id)


def get_address(ctx: TenantContext, vrf_id: str, address: str) -> AddressItem:
    return IpamRepository(ctx).address(vrf_id, _address_or_400(address))


def list_vrf_addresses(ctx: TenantContext, vrf_id: str, page: PageRequest) -> Page[AddressItem]:
    """A VRF's addresses in address order (404 for an unknown VRF)."""
    repo = IpamRepository(ctx)
    _id_or_404(vrf_id, "VRF")
    return page_under(lambda: repo.vrf(vrf_id), repo.addresses_of_vrf(vrf_id, page), page)


def list_prefix_addresses(
    ctx: TenantContext, prefix_id: str, page: PageRequest
) -> Page[AddressItem]:
    """A prefix's addresses in address order (404 for an unknown prefix)."""
    repo = IpamRepository(ctx)
    _id_or_404(prefix_id, "prefix")
    found = repo.addresses_of_prefix(prefix_id, page)
    return page_under(lambda: repo.prefix(prefix_id), found, page)


def _check_assignee(ctx: TenantContext, assigned_to: str | None) -> None:
    """`service:<number>` must name a service of the caller's tenant (400 otherwise, one
    GetItem); other kinds are labels of things outside the platform (`router:core-1`)."""
    kind, _, number = (assigned_to or "").partition(":")
    if kind != "service":
        return
    from dotmac.isp.services import ServiceRepository

    referenced("assigned_to", "no such service", lambda: ServiceRepository(ctx).record(number))


def list_assigned(ctx: TenantContext, assigned_to: str, page: PageRequest) -> Page[AddressItem]:
    if not re.fullmatch(ASSIGNED_TO_PATTERN, assigned_to):
        raise ValidationError(
            "invalid assigned_to",
            details=[FieldError("assigned_to", "expected <kind>:<id>, e.g. service:42")],
        )
    return IpamRepository(ctx).assigned(assigned_to, page)


def release(ctx: TenantContext, vrf_id: str, address: str) -> AddressItem:
    """Release one allocated address (404 if it is not allocated)."""
    repo = IpamRepository(ctx)
    parsed = _address_or_400(address)
    for attempt in range(WRITE_ATTEMPTS):
        item = repo.address(vrf_id, parsed, consistent=True)
        uow = UnitOfWork(ctx)
        _stage_release(uow, repo, [item])
        uow.audit(
            "isp.ip_address.release", "ip_address", f"{vrf_id}/{parsed}", before=address_view(item)
        )
        try:
            uow.commit()
        except ConflictError:
            continue  # released (or re-allocated) meanwhile: read again
        except Exception as exc:
            if not cancelled_by_another_transaction(exc):
                raise
            _backoff(attempt)
            continue
        return item
    raise ConflictError("the address changed concurrently; retry")


def _stage_release(uow: UnitOfWork, repo: IpamRepository, items: Sequence[AddressItem]) -> None:
    """Stage deleting `items`, their prefixes' counters (each under the guard of the prefix
    as read now, so a crossing below its threshold is known) and the dashboard's totals."""
    now = _now()
    for item in items:
        uow.delete(item, condition=AddressItem.allocated_at == item.allocated_at)
    released = Counter(i.prefix_id for i in items)
    totals: dict[int, Counter[str]] = {}  # family -> the dashboard's moves
    for prefix in repo.prefixes_by_id(list(released)):
        count = released[str(prefix.SK)]
        usable, threshold = _usable(prefix), int(prefix.alert_threshold)
        guard = guard_for(int(prefix.allocated or 0), -count, usable, threshold)
        uow.update(
            PrefixItem(*repo.prefix_key(str(prefix.SK))),
            [PrefixItem.allocated.add(-count), PrefixItem.updated_at.set(now)],
            condition=_guarded(prefix, guard),
        )
        moved = totals.setdefault(ipaddress.ip_network(prefix.prefix).version, Counter())
        moved.update(assigned=-count, over_threshold=-int(guard.crosses))
    for family, moved in totals.items():
        dashboard.stage_addresses(uow, repo.ctx, family, **moved)


def release_for_service(ctx: TenantContext, service_id: str) -> list[AddressItem]:
    """Release every address assigned to `service:<service_id>` (when the service is
    cancelled); returns what was released. Safe to call again: nothing left, nothing done.

    The service's addresses are found on GSI2 (eventually consistent, like every index):
    an address allocated within the last moment may still be missing from it.
    """
    assigned_to = f"service:{service_id}"
    if not re.fullmatch(ASSIGNED_TO_PATTERN, assigned_to):
        raise ValidationError(
            "invalid service id",
            details=[FieldError("service_id", "1 to 128 letters, digits, '.', '_', ':' or '-'")],
        )
    repo = IpamRepository(ctx)
    found = repo.all_assigned(assigned_to)
    released: list[AddressItem] = []
    for start in range(0, len(found), RELEASE_BATCH):
        pending = found[start : start + RELEASE_BATCH]
        for attempt in range(WRITE_ATTEMPTS):
            if attempt:
                pending = [i for i in repo.still_assigned(pending) if i.assigned_to == assigned_to]
            if not pending:
                break
            uow = UnitOfWork(ctx)
            _stage_release(uow, repo, pending)
            uow.audit(
                "isp.ip_address.release",
                "service",
                service_id,
                before={"addresses": [f"{i.vrf_id}/{i.address}" for i in pending]},
            )
            try:
                uow.commit()
            except ConflictError:
                _backoff(attempt)
                continue
            except Exception as exc:
                if not cancelled_by_another_transaction(exc):
                    raise
                _backoff(attempt)
                continue
            released.extend(pending)
            break
        else:
            raise ConflictError(f"the addresses of {assigned_to} changed concurrently; retry")
    return released
