"""The network side of ISP services: a `NetworkAdapter` pushes what a service's state means
to the network (RADIUS, routers), and the default `RecordingAdapter` records the commands
it would send instead of sending them.

Rules:
- Four operations, each idempotent (pushing what the network already has sends nothing)
  and each returning the commands it sent, in order:
  `activate(ctx, service, addresses)` gives the subscriber (the RADIUS user named by the
  service number) its address (`Framed-IP-Address`, or `Framed-IPv6-Address`) and the
  plan's rate (`Mikrotik-Rate-Limit` and a router simple queue, `<upload>M/<download>M`);
  `suspend` blocks it (the RADIUS user and its addresses join the router's `blocked`
  address list; a CoA-Request moves the live session), `resume` lifts the block, and
  `deactivate` removes everything (Disconnect-Request, the RADIUS user's attributes, the
  queue and the address-list entries). Deactivating or blocking what was never configured
  sends nothing.
- The adapter is the class `DOTMAC_ISP_NETWORK_ADAPTER` names (`module:Class`, built once
  per process with no arguments; default `dotmac.isp.adapter:RecordingAdapter`): a RADIUS
  or router adapter plugs in behind the same four methods, and can send the same lines
  (`activation_commands`, `block_commands`, `unblock_commands`, `removal_commands`).
- Transitions push after they commit (`push_transition`, called by
  `services.transition`): the service's state is the truth and the network follows it,
  never the other way round — pushing first would leave the network changed when the
  transition then loses a race or breaks a rule, with nothing recording it. The push sends
  what the service's current state means (SUSPENDED: block; ACTIVE or MAINTENANCE: unblock;
  CANCELLED: deactivate), read after the commit, so the pushes of two racing transitions
  both send the later state whatever order they run in (the recording adapter also skips a
  push derived from an older service version than it has; an adapter without such a
  record keeps the moment between the read and its push). A failed push is tried
  3 times, then recorded on the service (`network_error`, with an audit record) without
  undoing the transition; the next successful push (another transition, or
  `POST /services/{number}/network-sync`, which pushes the current state again) clears it.
- The recording adapter keeps what it has pushed in one state item (configured, blocked,
  addresses, rate, and the service `version` it was derived from) and writes a push's
  commands with the new state and an audit record in one transaction, conditional on the
  state it read (a lost race reads again). A push derived from an older version of the
  service than the state's is skipped: a newer state was pushed already. A push with
  nothing to send still records its newer version (conditional on the state it read), so
  a suspend's push that runs late cannot block a service a later resume left ACTIVE.

All keys below are inside the tenant's space (`T#<tid>#...`; items in
`dotmac.isp.provisioning_models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| record a push | GetItem, TransactWriteItems | `ISP_SERVICE_NET#<number>` / `STATE` (strongly |
| | | consistent); state if `batches` and `service_version` unchanged, |
| | | `CMD#<batch>#<line>` items, audit |
| nothing to send | GetItem, [UpdateItem] | the state's `service_version`, if newer and unchanged |
| a service's commands | Query | `ISP_SERVICE_NET#<number>`, SK begins_with `CMD#` |
| | (+ GetItem) | (an empty first page: the service's `ROOT`, to tell none from 404) |
| record or clear a | TransactWriteItems | the service's `network_error` (`ISP_SERVICE#<number>` / |
| push failure | | `ROOT`), audit |
| network sync | Query, a push, | the service and its transitions (consistent), the push, |
| | TransactWriteItems, Query | `network_error` cleared + audit, the service again |
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, TenantRepository, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp.models import ServiceItem, TransitionItem
from dotmac.isp.provisioning_models import NetworkCommandItem, NetworkStateItem

NETWORK, STATE, COMMAND = "ISP_SERVICE_NET", "STATE", "CMD#"
BLOCKED_LIST = "blocked"
PUSH_ATTEMPTS = 3
PUSH_BACKOFF, PUSH_BACKOFF_CAP = 0.05, 0.5  # seconds
# What the network should have for a service in each state (PENDING: nothing yet).
OPERATION_FOR_STATUS = {
    "ACTIVE": "resume",
    "MAINTENANCE": "resume",
    "SUSPENDED": "suspend",
    "CANCELLED": "deactivate",
}
# The transitions that change what the network should have.
PUSHED_ACTIONS = frozenset({"suspend", "resume", "cancel"})


@dataclass(frozen=True)
class Command:
    """One line for one system: `radius` (FreeRADIUS radreply / radclient) or `router`
    (RouterOS CLI)."""

    target: str
    line: str


class NetworkAdapter(Protocol):
    """Pushes a service's network configuration; every method is idempotent and returns the
    commands it sent (none when the network already had it). A failure worth retrying is a
    `DependencyUnavailableError` (the activation workflow retries it with back-off); any
    other exception fails an activation step for good."""

    def activate(
        self, ctx: TenantContext, service: ServiceItem, addresses: Sequence[str]
    ) -> list[Command]: ...

    def suspend(self, ctx: TenantContext, service: ServiceItem) -> list[Command]: ...

    def resume(self, ctx: TenantContext, service: ServiceItem) -> list[Command]: ...

    def deactivate(self, ctx: TenantContext, service: ServiceItem) -> list[Command]: ...


# --- the commands (pure) ---------------------------------------------------------------------


def rate_limit(service: ServiceItem) -> str | None:
    """RouterOS `<upload>M/<download>M` (rx/tx as the subscriber sends and receives), or None
    for a plan without speeds."""
    if service.download_mbps is None or service.upload_mbps is None:
        return None
    return f"{int(service.upload_mbps)}M/{int(service.download_mbps)}M"


def _family(address: str) -> tuple[str, str, str]:
    """(RADIUS attribute, host mask, RouterOS menu) of an address's IP version."""
    if ipaddress.ip_address(address).version == 6:
        return "Framed-IPv6-Address", "128", "/ipv6"
    return "Framed-IP-Address", "32", "/ip"


def activation_commands(number: str, addresses: Sequence[str], rate: str | None) -> list[Command]:
    """The subscriber's RADIUS reply attributes and the router queue capping its rate."""
    commands = [
        Command("radius", f"radreply set {number} {_family(a)[0]} := {a}") for a in addresses
    ]
    if rate is not None:
        commands.append(Command("radius", f'radreply set {number} Mikrotik-Rate-Limit := "{rate}"'))
        targets = ",".join(f"{a}/{_family(a)[1]}" for a in addresses)
        commands.append(
            Command(
                "router",
                f"/queue simple add name={number} target={targets} max-limit={rate} "
                f"comment={number}",
            )
        )
    return commands


def block_commands(number: str, addresses: Sequence[str]) -> list[Command]:
    """Put the subscriber in the `blocked` address list, now (CoA) and at its next login."""
    return [
        Command("radius", f'radreply set {number} Mikrotik-Address-List := "{BLOCKED_LIST}"'),
        *[
            Command(
                "router",
                f"{_family(a)[2]} firewall address-list add list={BLOCKED_LIST} address={a} "
                f"comment={number}",
            )
            for a in addresses
        ],
        Command("radius", f'coa {number} Mikrotik-Address-List = "{BLOCKED_LIST}"'),
    ]


def unblock_commands(number: str, addresses: Sequence[str]) -> list[Command]:
    """Take the subscriber out of the `blocked` address list, now (CoA) and for good."""
    menus = sorted({_family(a)[2] for a in addresses})
    return [
        Command("radius", f"radreply delete {number} Mikrotik-Address-List"),
        *[
            Command(
                "router",
                f"{menu} firewall address-list remove [find list={BLOCKED_LIST} comment={number}]",
            )
            for menu in menus
        ],
        Command("radius", f'coa {number} Mikrotik-Address-List = ""'),
    ]


def removal_commands(number: str, addresses: Sequence[str], rate: str | None) -> list[Command]:
    """End the session and remove everything the activation (and a block) configured."""
    commands = [
        Command("radius", f"disconnect {number}"),
        Command("radius", f"radreply delete {number}"),
    ]
    if rate is not None:
        commands.append(Command("router", f"/queue simple remove [find name={number}]"))
    menus = sorted({_family(a)[2] for a in addresses})
    commands += [
        Command("router", f"{menu} firewall address-list remove [find comment={number}]")
        for menu in menus
    ]
    return commands


# --- the recording adapter -------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkState:
    """What the network has for one service (as the recording adapter pushed it)."""

    configured: bool = False
    blocked: bool = False
    addresses: tuple[str, ...] = ()
    rate: str | None = None

    @classmethod
    def of(cls, item: NetworkStateItem | None) -> NetworkState:
        if item is None:
            return cls()
        addresses = tuple(str(a) for a in item.addresses or ())
        return cls(bool(item.configured), bool(item.blocked), addresses, item.rate)


Plan = Callable[[NetworkState], tuple[NetworkState, list[Command]]]


def _now() -> datetime:
    return datetime.now(UTC)


class NetworkRepository(TenantRepository):
    """The network side of one tenant's services."""

    def partition(self, number: str) -> str:
        return self.key(NETWORK, number)

    def state(self, number: str) -> NetworkStateItem | None:
        try:
            return NetworkStateItem.get(self.partition(number), STATE, consistent_read=True)
        except NetworkStateItem.DoesNotExist:
            return None

    def commands(self, number: str, page: PageRequest) -> Page[NetworkCommandItem]:
        return query_page(NetworkCommandItem, self.partition(number), page, sk_prefix=COMMAND)


class RecordingAdapter:
    """Records, under the service, the commands a RADIUS server and a RouterOS router would
    be sent (see the module rules); sends nothing."""

    def activate(
        self, ctx: TenantContext, service: ServiceItem, addresses: Sequence[str]
    ) -> list[Command]:
        rate = rate_limit(service)

        def plan(state: NetworkState) -> tuple[NetworkState, list[Command]]:
            wanted = replace(state, configured=True, addresses=tuple(addresses), rate=rate)
            if state == wanted:
                return state, []
            return wanted, activation_commands(service.number, addresses, rate)

        return self._push(ctx, service, "activate", plan)

    def suspend(self, ctx: TenantContext, service: ServiceItem) -> list[Command]:
        def plan(state: NetworkState) -> tuple[NetworkState, list[Command]]:
            if not state.configured or state.blocked:
                return state, []
            return replace(state, blocked=True), block_commands(service.number, state.addresses)

        return self._push(ctx, service, "suspend", plan)

    def resume(self, ctx: TenantContext, service: ServiceItem) -> list[Command]:
        def plan(state: NetworkState) -> tuple[NetworkState, list[Command]]:
            if not state.blocked:
                return state, []
            lifted = replace(state, blocked=False)
            return lifted, unblock_commands(service.number, state.addresses)

        return self._push(ctx, service, "resume", plan)

    def deactivate(self, ctx: TenantContext, service: ServiceItem) -> list[Command]:
        def plan(state: NetworkState) -> tuple[NetworkState, list[Command]]:
            if not state.configured:
                return state, []
            return NetworkState(), removal_commands(service.number, state.addresses, state.rate)

        return self._push(ctx, service, "deactivate", plan)

    @staticmethod
    def _push(
        ctx: TenantContext, service: ServiceItem, operation: str, plan: Plan
    ) -> list[Command]:
        """Read the state, plan the change, write the new state and its commands at once."""
        from dotmac.core.retry import until_won

        repo = NetworkRepository(ctx)
        partition = repo.partition(service.number)
        version = int(service.version)

        def attempt() -> list[Command]:
            item = repo.state(service.number)
            batches = 0 if item is None else int(item.batches)
            if item is not None and version < int(item.service_version):
                return []  # a newer state of the service was pushed already
            unchanged = (
                NetworkStateItem.PK.does_not_exist()
                if item is None
                else (NetworkStateItem.batches == batches)
                & (NetworkStateItem.service_version == int(item.service_version))
            )
            wanted, commands = plan(NetworkState.of(item))
            if not commands:
                if item is not None and version > int(item.service_version):
                    _note_version(item, version, unchanged)
                return []
            now, batch = _now(), batches + 1
            uow = UnitOfWork(ctx)
            uow.put(
                NetworkStateItem(
                    partition,
                    STATE,
                    configured=wanted.configured,
                    blocked=wanted.blocked,
                    addresses=list(wanted.addresses) or None,
                    rate=wanted.rate,
                    service_version=version,
                    batches=batch,
                ),
                condition=unchanged,
            )
            for index, command in enumerate(commands, start=1):
                uow.put(
                    NetworkCommandItem(
                        partition,
                        f"{COMMAND}{batch:06d}#{index:03d}",
                        operation=operation,
                        target=command.target,
                        line=command.line,
                        at=now,
                        by=ctx.user_id,
                        request_id=ctx.request_id or None,
                    )
                )
            uow.audit(
                f"isp.service.network_{operation}",
                "service",
                service.number,
                after={"commands": [c.line for c in commands]},
            )
            uow.commit(conflict="the service's network state changed meanwhile; retry")
            return commands

        return until_won(attempt)


def _note_version(item: NetworkStateItem, version: int, unchanged: Any) -> None:
    """Record that the network already has what `version` of the service means (nothing
    was sent), so a late push derived from an older version is skipped: one conditional
    UpdateItem; a lost race is retried by the caller."""
    from pynamodb.exceptions import UpdateError

    from dotmac.core.errors import StaleWriteError

    try:
        item.update([NetworkStateItem.service_version.set(version)], condition=unchanged)
    except UpdateError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise StaleWriteError("the service's network state changed meanwhile") from error
        raise


# --- choosing the adapter, pushing transitions -----------------------------------------------


def network_adapter() -> NetworkAdapter:
    """The adapter `DOTMAC_ISP_NETWORK_ADAPTER` names (see the module rules)."""
    from dotmac.core.settings import get_settings

    return _adapter(get_settings().isp_network_adapter)


@functools.lru_cache(maxsize=4)
def _adapter(spec: str) -> NetworkAdapter:
    module, _, name = spec.partition(":")
    adapter: NetworkAdapter = getattr(importlib.import_module(module), name)()
    return adapter


def push(ctx: TenantContext, service: ServiceItem, operation: str) -> list[Command]:
    """Send `operation` through the adapter, trying `PUSH_ATTEMPTS` times with back-off."""
    import tenacity

    adapter = network_adapter()
    call: Callable[[TenantContext, ServiceItem], list[Command]] = getattr(adapter, operation)
    retrying: Any = tenacity.Retrying(
        wait=tenacity.wait_random_exponential(multiplier=PUSH_BACKOFF, max=PUSH_BACKOFF_CAP),
        stop=tenacity.stop_after_attempt(PUSH_ATTEMPTS),
        reraise=True,
    )
    return list(retrying(call, ctx, service))


def sync(ctx: TenantContext, service: ServiceItem) -> bool:
    """Push what the service's current state means (see the module rules): True when the
    network has it, False when the push failed and the failure was recorded on the service;
    a successful push clears a failure recorded before."""
    operation = OPERATION_FOR_STATUS.get(service.status)
    if operation is None:
        return True
    try:
        push(ctx, service, operation)
    except Exception as exc:
        from dotmac.core.observability import get_logger

        get_logger().exception("network push failed", service=service.number, operation=operation)
        _set_error(ctx, service, f"{operation}: {type(exc).__name__}: {exc}"[:500])
        return False
    if service.network_error is not None:
        _set_error(ctx, service, None)
    return True


def push_transition(ctx: TenantContext, service: ServiceItem, action: str) -> bool:
    """After a transition committed: `sync` when `action` changes what the network should
    have (suspend, resume, cancel), with `service` read after the commit."""
    return action not in PUSHED_ACTIONS or sync(ctx, service)


def _set_error(ctx: TenantContext, service: ServiceItem, error: str | None) -> None:
    """Set (or clear, with None) the service's `network_error`, with its audit record."""
    field = ServiceItem.network_error
    uow = UnitOfWork(ctx)
    uow.update(
        ServiceItem(service.PK, service.SK),
        [field.remove() if error is None else field.set(error)],
        condition=ServiceItem.PK.exists(),
    )
    uow.audit(
        "isp.service.network_sync" if error is None else "isp.service.network_push_failed",
        "service",
        service.number,
        before={"network_error": service.network_error},
        after={"network_error": error},
    )
    uow.commit()


# --- reads and the sync route --------------------------------------------------------------


def command_view(item: NetworkCommandItem) -> dict[str, Any]:
    return {
        "sequence": item.SK.removeprefix(COMMAND).replace("#", "."),
        "operation": item.operation,
        "target": item.target,
        "line": item.line,
        "at": item.at.isoformat(),
        "by": item.by,
        "request_id": item.request_id,
    }


def list_commands(ctx: TenantContext, number: str, page: PageRequest) -> Page[NetworkCommandItem]:
    """The commands recorded for a service, in the order they would have been sent (404
    for an unknown service)."""
    from dotmac.isp.services import ServiceRepository

    services = ServiceRepository(ctx)
    services.check_id(number)
    found = NetworkRepository(ctx).commands(number, page)
    if not found.items and page.cursor is None:
        services.record(number)  # an empty first page: tell "none yet" from "no such service"
    return found


def resync(ctx: TenantContext, number: str) -> tuple[ServiceItem, list[TransitionItem]]:
    """Push the service's current state again and clear its `network_error`
    (`POST .../network-sync`). A PENDING service has nothing on the network (409
    INVALID_STATE); a push that still fails is a 503 and changes nothing."""
    from dotmac.core.errors import DependencyUnavailableError
    from dotmac.isp.customers import invalid_state
    from dotmac.isp.services import ServiceRepository

    repo = ServiceRepository(ctx)
    service, _ = repo.with_history(number, consistent=True)
    operation = OPERATION_FOR_STATUS.get(service.status)
    if operation is None:
        raise invalid_state("service", service.status, "sync its network")
    try:
        push(ctx, service, operation)
    except Exception as exc:
        raise DependencyUnavailableError(
            f"the network refused {operation} for {number}: {type(exc).__name__}"
        ) from exc
    _set_error(ctx, service, None)
    return repo.with_history(number, consistent=True)
