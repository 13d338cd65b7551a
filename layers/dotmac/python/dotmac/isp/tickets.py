"""ISP support tickets with SLA timers per priority, a persisted breach flag and one
escalation event per breach.

Rules (business-rules.md, ISP; DESIGN §4):
- SLA (first response / resolution): critical 15 min / 4 h, urgent 1 h / 8 h, high 4 h /
  24 h, normal 24 h / 3 d, low 2 d / 7 d. Both deadlines run on a 24/7 clock (no business
  hours, no holidays, no pause) from `created_at`; a priority change recomputes both from
  `created_at`, and a reopened ticket's resolution timer runs on against its original
  deadline.
- SLA status at a time `t` (`sla_status`): `breached` when a deadline passed before its
  event (first response, resolution) happened, or a breach was recorded; else `at_risk`
  when a running timer has less than 20% of its window left; else `ok`.
- The breach flag is persisted (`first_response_breached_at`, `resolution_breached_at`: the
  deadline that passed) once, by a conditional write, with a `breach` transition and an
  audit record; after the commit ONE escalation event per breach (kind `first_response` or
  `resolution`) goes to the `notifications` queue, its id deterministic
  (`tck-<number>-<kind>`: the notification outbox keeps one per id). A flag is never
  removed (a later priority downgrade does not undo an escalation that happened). Every
  write records the breaches it finds (a response or resolution after its deadline, a
  priority raise that puts a deadline in the past); `sweep_breaches` records the ones of
  tickets nobody touched (the scheduler runs it every 5 minutes).
- States: OPEN -> IN_PROGRESS (the first response, which stops the first-response timer;
  later responses are comments) -> RESOLVED (stops the resolution timer; resolving an OPEN
  ticket counts as its first response) -> CLOSED. `reopen`: RESOLVED -> IN_PROGRESS.
  Anything else is 409 INVALID_STATE; a CLOSED ticket cannot be edited. Every transition
  (and the creation, each comment and each breach) is a `LOG#` item: from, to, who, why.
- Ticket numbers: the tenant's gapless `TCK-<year>-<6 digits>` sequence
  (`dotmac.billing.numbering`), taken in the creating transaction.
- Writes are conditional on the `version` read; a lost race re-reads and retries
  (`core.retry.until_won`). A write that records n transitions moves `version` by n (each
  `LOG#<version>` is unique and in order).
- The dashboard's open tickets by SLA status (`dashboard.ticket_sla`: on track, or a breach
  flag set) move in the same transactions as the creation and every change.

All keys below are inside the tenant's space (`T#<tid>#...`; items in
`dotmac.isp.ticket_models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create | GetItem (sequence), | `BILLING` / `SEQ#TCK#<year>` (consistent), the customer |
| | [GetItem], | `ISP_CUSTOMER#<id>` / `ROOT` when `customer_id` is given; ticket |
| | TransactWriteItems | `ISP_TICKET#<number>` / `ROOT` if absent + `LOG#`, its SLA clock, |
| | | the customer's copy, the sequence if unchanged, |
| | | `ISP_DASHBOARD` / `TICKETS` (ADD), audit |
| get (+ newest transitions) | Query | `ISP_TICKET#<number>`, descending, 1 + HISTORY_LIMIT items |
| list | Query | `ISP_TICKETS`, SK `<created>#<number>` (GSI2) |
| list by status | Query | `ISP_TICKET_STATUS#<status>`, SK `<created>#<number>` (GSI1) |
| a customer's (portal) | Query | `ISP_CUSTOMER_TICKETS#<id>`, SK `<created>#<number>`, |
| | | descending: the customer's copies of the tickets |
| list `?sla=ok` | Query | `ISP_TICKET_SLA#OK`, SK >= `<now>#` (GSI1, clocks) |
| list `?sla=at_risk` | Query | `ISP_TICKET_SLA#OK`, SK < `<now>#` (GSI1, clocks) |
| list `?sla=breached` | Query | `ISP_TICKET_SLA#BREACHED` (GSI1, clocks) |
| (`?sla=` with `?status=`) | | the same Query, FilterExpression `status = :s` |
| update, respond, resolve, | GetItem, TransactWriteItems | `ROOT` if `version` unchanged, `LOG#`, |
| close, reopen | (+ the get's Query) | the clock put or deleted, the customer's copy, |
| | | `ISP_DASHBOARD` / `TICKETS` |
| | | (ADD, when the ticket's SLA bucket moves), audit |
| | (+ SQS SendMessage per new breach) | |
| breach sweep | Query per page, then per | `ISP_TICKET_DUE`, SK < `<now>#` (GSI2, clocks); each |
| | due ticket GetItem, | ticket as in update |
| | TransactWriteItems, SQS | |

`?sla=` lists the open (OPEN, IN_PROGRESS) tickets only; a ticket whose deadline passed
stays under `at_risk` until the sweep records the breach (its `sla.status` already says
`breached`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from dotmac.core.errors import FieldError, NotFoundError, ValidationError, referenced
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import dashboard
from dotmac.isp.customers import (
    ROOT,
    RecordRepository,
    creation_entry,
    invalid,
    invalid_state,
    new_transition,
)
from dotmac.isp.models import TransitionItem
from dotmac.isp.ticket_models import TicketItem

# Partitions and index partitions (all inside the tenant's key space).
TICKET, TICKETS, TICKET_STATUS = "ISP_TICKET", "ISP_TICKETS", "ISP_TICKET_STATUS"
CUSTOMER_TICKETS = "ISP_CUSTOMER_TICKETS"
CLOCK, TICKET_SLA, TICKET_DUE = "ISP_TICKET_CLOCK", "ISP_TICKET_SLA", "ISP_TICKET_DUE"
NUMBER_PREFIX = "TCK"
NUMBER_PATTERN = r"^TCK-[0-9]{4}-[0-9]{6,9}$"

OPEN, IN_PROGRESS, RESOLVED, CLOSED = "OPEN", "IN_PROGRESS", "RESOLVED", "CLOSED"
STATUSES = (OPEN, IN_PROGRESS, RESOLVED, CLOSED)
ACTIVE_STATUSES = frozenset({OPEN, IN_PROGRESS})
# action -> (states it may start from, state it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "respond": (frozenset({OPEN, IN_PROGRESS}), IN_PROGRESS),
    "resolve": (frozenset({OPEN, IN_PROGRESS}), RESOLVED),
    "close": (frozenset({RESOLVED}), CLOSED),
    "reopen": (frozenset({RESOLVED}), IN_PROGRESS),
}

# --- the SLA (pure) ----------------------------------------------------------------------------

PRIORITIES = ("critical", "urgent", "high", "normal", "low")
FIRST_RESPONSE, RESOLUTION = "first_response", "resolution"
KINDS = (FIRST_RESPONSE, RESOLUTION)
# priority -> (first-response window, resolution window), on a 24/7 clock
SLA_WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "critical": (timedelta(minutes=15), timedelta(hours=4)),
    "urgent": (timedelta(hours=1), timedelta(hours=8)),
    "high": (timedelta(hours=4), timedelta(hours=24)),
    "normal": (timedelta(hours=24), timedelta(days=3)),
    "low": (timedelta(days=2), timedelta(days=7)),
}
OK, AT_RISK, BREACHED = "ok", "at_risk", "breached"
SLA_STATUSES = (OK, AT_RISK, BREACHED)  # in the order time moves a ticket through them
AT_RISK_DIVISOR = 5  # at risk when less than 1/5 (20%) of the window is left


def deadlines(created_at: datetime, priority: str) -> dict[str, datetime]:
    """The first-response and resolution deadlines of a ticket created at `created_at`."""
    first, resolution = SLA_WINDOWS[priority]
    return {FIRST_RESPONSE: created_at + first, RESOLUTION: created_at + resolution}


def at_risk_from(created_at: datetime, due: datetime) -> datetime:
    """The moment after which a timer running to `due` has less than 20% of its window left
    (windows are whole minutes: the division is exact)."""
    return due - (due - created_at) / AT_RISK_DIVISOR


@dataclass(frozen=True)
class Clock:
    """What the SLA of one ticket depends on: its creation, priority, the events that stop
    its timers (None: not happened) and the breaches already recorded."""

    created_at: datetime
    priority: str
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    recorded: frozenset[str] = frozenset()

    @property
    def due(self) -> dict[str, datetime]:
        return deadlines(self.created_at, self.priority)

    def event(self, kind: str) -> datetime | None:
        return self.responded_at if kind == FIRST_RESPONSE else self.resolved_at


def breaches(clock: Clock, at: datetime) -> frozenset[str]:
    """The kinds whose deadline passed before their event (by `at` when it has not
    happened), plus the breaches already recorded."""
    found = set(clock.recorded)
    for kind, due in clock.due.items():
        if (clock.event(kind) or at) > due:
            found.add(kind)
    return frozenset(found)


def running(clock: Clock) -> dict[str, datetime]:
    """The timers still running (no event yet, no breach recorded): kind -> deadline."""
    return {
        kind: due
        for kind, due in clock.due.items()
        if clock.event(kind) is None and kind not in clock.recorded
    }


def sla_status(clock: Clock, at: datetime) -> str:
    """ok, at_risk (a running timer has less than 20% of its window left) or breached."""
    if breaches(clock, at):
        return BREACHED
    if any(at > at_risk_from(clock.created_at, due) for due in running(clock).values()):
        return AT_RISK
    return OK


def next_status(status: str, action: str) -> str:
    """The state `action` leads to from `status`; 409 INVALID_STATE when it may not."""
    sources, target = ACTIONS[action]
    if status not in sources:
        raise invalid_state("ticket", status, action)
    return target


# --- request bodies ----------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Priority = Literal["critical", "urgent", "high", "normal", "low"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Id | None = None
    subject: Subject
    description: Text
    priority: Priority = "normal"
    category: Category = "general"


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject | None = None
    description: Text | None = None
    priority: Priority | None = None
    category: Category | None = None


class RespondRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Text


class TicketTransition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: AwareDatetime | None = None


# --- views -------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _stamp(value: datetime) -> str:
    """A sortable UTC time for sort keys."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def clock_of(item: TicketItem) -> Clock:
    recorded = {
        FIRST_RESPONSE: item.first_response_breached_at,
        RESOLUTION: item.resolution_breached_at,
    }
    return Clock(
        created_at=item.created_at,
        priority=item.priority,
        responded_at=item.first_responded_at,
        resolved_at=item.resolved_at,
        recorded=frozenset(kind for kind, at in recorded.items() if at is not None),
    )


def ticket_summary(item: TicketItem, at: datetime | None = None) -> dict[str, Any]:
    """A ticket with its SLA as of `at` (default: now)."""
    clock = clock_of(item)
    return {
        "number": item.number,
        "customer_id": item.customer_id,
        "subject": item.subject,
        "description": item.description,
        "priority": item.priority,
        "category": item.category,
        "status": item.status,
        "responses": int(item.responses),
        "first_responded_at": _iso(item.first_responded_at),
        "resolved_at": _iso(item.resolved_at),
        "closed_at": _iso(item.closed_at),
        "created_at": _iso(item.created_at),
        "created_by": item.created_by,
        "updated_at": _iso(item.updated_at),
        "sla": {
            "clock": "24x7",
            "status": sla_status(clock, at or _now()),
            "first_response_due": _iso(item.first_response_due),
            "resolution_due": _iso(item.resolution_due),
            "first_response_breached": item.first_response_breached_at is not None,
            "resolution_breached": item.resolution_breached_at is not None,
        },
    }


def ticket_view(
    item: TicketItem, history: Sequence[TransitionItem], at: datetime | None = None
) -> dict[str, Any]:
    from dotmac.isp.customers import transition_view

    return {**ticket_summary(item, at), "history": [transition_view(t) for t in history]}


def _state(item: TicketItem) -> dict[str, Any]:
    """The stored state for the audit digest."""
    return {
        key: value
        for key, value in ticket_summary(item, item.updated_at).items()
        if key not in ("sla",)
    } | {
        "first_response_breached_at": _iso(item.first_response_breached_at),
        "resolution_breached_at": _iso(item.resolution_breached_at),
        "version": int(item.version),
    }


# --- data access -------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _index(ctx: TenantContext, item: TicketItem) -> None:
    """Set the ticket's own index keys (its status moves GSI1)."""
    order = f"{_stamp(item.created_at)}#{item.number}"
    item.GSI1PK, item.GSI1SK = ctx.key(TICKET_STATUS, item.status), order
    item.GSI2PK, item.GSI2SK = ctx.key(TICKETS), order


def clock_item(ctx: TenantContext, item: TicketItem) -> TicketItem | None:
    """The SLA-clock copy of an open ticket (None once it is resolved or closed)."""
    if item.status not in ACTIVE_STATUSES:
        return None
    clock = clock_of(item)
    due = running(clock)
    copy = _copy(item, ctx.key(CLOCK, item.number), ROOT)
    risk = [at_risk_from(item.created_at, d) for d in due.values()]
    moment = min(risk) if risk else item.updated_at
    band = "BREACHED" if clock.recorded else "OK"
    copy.GSI1PK, copy.GSI1SK = ctx.key(TICKET_SLA, band), f"{_stamp(moment)}#{item.number}"
    if due:
        copy.GSI2PK, copy.GSI2SK = ctx.key(TICKET_DUE), f"{_stamp(min(due.values()))}#{item.number}"
    return copy


def customer_copy(ctx: TenantContext, item: TicketItem) -> TicketItem | None:
    """The ticket in its customer's list (None without a customer), written with every change
    so the portal lists a customer's tickets in one Query."""
    if item.customer_id is None:
        return None
    order = f"{_stamp(item.created_at)}#{item.number}"
    return _copy(item, ctx.key(CUSTOMER_TICKETS, item.customer_id), order)


def _copy(item: TicketItem, pk: str, sk: str) -> TicketItem:
    """`item`'s attributes under another key, outside every index."""
    keys = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "kind")
    return TicketItem(pk, sk, **{k: v for k, v in item.attribute_values.items() if k not in keys})


class TicketRepository(RecordRepository[TicketItem]):
    """Ticket items of one tenant; every key is built from the context."""

    model = TicketItem
    kind = TICKET
    noun = "ticket"
    id_pattern = NUMBER_PATTERN

    def tickets(self, page: PageRequest, status: str | None = None) -> Page[TicketItem]:
        if status is None:
            return query_page(TicketItem, self.key(TICKETS), page, index="gsi2")
        return query_page(TicketItem, self.key(TICKET_STATUS, status), page, index="gsi1")

    def by_sla(
        self, page: PageRequest, sla: str, at: datetime, status: str | None = None
    ) -> Page[TicketItem]:
        bound, moment = f"{_stamp(at)}#", TicketItem.GSI1SK  # the at-risk moment
        condition: Any = None
        if sla == OK:
            condition = moment >= bound
        elif sla == AT_RISK:
            condition = moment < bound
        band = "BREACHED" if sla == BREACHED else "OK"
        return query_page(
            TicketItem,
            self.key(TICKET_SLA, band),
            page,
            index="gsi1",
            range_condition=condition,
            filter_condition=None if status is None else TicketItem.status == status,
        )

    def due(self, page: PageRequest, at: datetime) -> Page[TicketItem]:
        """Clocks of open tickets with a running deadline before `at`, earliest first."""
        deadline = TicketItem.GSI2SK
        condition = deadline < f"{_stamp(at)}#"
        return query_page(
            TicketItem, self.key(TICKET_DUE), page, index="gsi2", range_condition=condition
        )


# --- writing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What one change does to a ticket besides recording breaches: the transition it
    records (None: none), why, and details for the record."""

    action: str | None
    reason: str = ""
    details: dict[str, Any] | None = None


def _record_breaches(item: TicketItem, at: datetime) -> list[tuple[str, datetime]]:
    """Flag the breaches `at` finds that were not recorded yet: (kind, deadline) each."""
    clock = clock_of(item)
    new = sorted(breaches(clock, at) - clock.recorded, key=KINDS.index)
    for kind in new:
        setattr(item, f"{kind}_breached_at", clock.due[kind])
    return [(kind, clock.due[kind]) for kind in new]


def _change(
    ctx: TenantContext,
    number: str,
    audit_action: str,
    mutate: Callable[[TicketItem, datetime], Step] | None,
    *,
    at: datetime | None = None,
) -> tuple[TicketItem | None, list[tuple[str, datetime]]]:
    """Read the ticket, apply `mutate` (None: only record breaches), record the transitions,
    the breaches found as of `at` (default: now; the records carry the real time) and the
    audit in one conditional transaction; then queue one escalation per new breach.
    Returns the ticket written (None when there was nothing to write) and the breaches."""
    from dotmac.core.retry import until_won

    repo = TicketRepository(ctx)
    partition = repo.partition(repo.check_id(number))
    done: list[tuple[TicketItem | None, list[tuple[str, datetime]]]] = []

    def attempt() -> None:
        done.clear()
        item = repo.record(number, consistent=True)
        before, read_version = _state(item), int(item.version)
        sla_before = dashboard.ticket_sla(item)
        now = _now()
        status = item.status
        step = mutate(item, now) if mutate is not None else Step(None)
        logs: list[TransitionItem] = []
        version = read_version
        if step.action is not None:
            version += 1
            logs.append(
                new_transition(
                    ctx,
                    partition,
                    version=version,
                    action=step.action,
                    from_status=status,
                    to_status=item.status,
                    reason=step.reason,
                    at=now,
                    details=step.details,
                )
            )
        found = _record_breaches(item, at or now)
        for kind, due in found:
            version += 1
            logs.append(
                new_transition(
                    ctx,
                    partition,
                    version=version,
                    action="breach",
                    from_status=item.status,
                    to_status=item.status,
                    reason=f"{kind} deadline passed",
                    at=now,
                    details={"kind": kind, "due": _iso(due)},
                )
            )
        if mutate is None and not found:
            done.append((None, []))
            return
        item.version = max(version, read_version + 1)
        item.updated_at = now
        _index(ctx, item)
        uow = UnitOfWork(ctx)
        uow.put(item, condition=TicketItem.version == read_version)
        for log in logs:
            uow.put(log)
        clock = clock_item(ctx, item)
        if clock is None:
            uow.delete(TicketItem(ctx.key(CLOCK, number), ROOT))
        else:
            uow.put(clock)
        if (listed := customer_copy(ctx, item)) is not None:
            uow.put(listed)
        dashboard.stage_ticket(uow, ctx, sla_before, dashboard.ticket_sla(item))
        uow.audit(f"isp.ticket.{audit_action}", "ticket", number, before=before, after=_state(item))
        uow.commit(conflict="the ticket changed meanwhile; retry")
        done.append((item, found))

    until_won(attempt)
    item, found = done[0]
    if item is not None:
        for kind, due in found:
            _escalate(ctx, item, kind, due)
    return item, found


def escalation_id(number: str, kind: str) -> str:
    """The deterministic id of a breach's escalation (the outbox keeps one per id)."""
    return f"tck-{number}-{kind}"


ESCALATION_TEMPLATE = "isp.ticket.sla_breach"
ESCALATION_RECIPIENT = "role:isp_manager"  # resolved to the tenant's ISP managers by the channel


def _escalate(ctx: TenantContext, item: TicketItem, kind: str, due: datetime) -> None:
    """Queue the escalation of one breach (after the commit; a queue outage is logged, and
    the breach stays visible as the ticket's flag and `breach` transition)."""
    from dotmac.core import queues
    from dotmac.core.observability import get_logger
    from dotmac.notifications.schemas import Notification

    notification = Notification(
        id=escalation_id(item.number, kind),
        tenant_id=ctx.tenant_id,
        channel="email",
        recipient=ESCALATION_RECIPIENT,
        template=ESCALATION_TEMPLATE,
        data={
            "ticket": item.number,
            "kind": kind,
            "due": _iso(due),
            "priority": item.priority,
            "status": item.status,
            "subject": item.subject,
            "customer_id": item.customer_id,
        },
    )
    try:
        queues.send("notifications", notification.model_dump(mode="json"), dedup_id=notification.id)
    except Exception:
        get_logger().exception("ticket escalation not queued", ticket=item.number, kind=kind)


# --- use cases ---------------------------------------------------------------------------------


def create_ticket(
    ctx: TenantContext, body: TicketCreate
) -> tuple[TicketItem, list[TransitionItem]]:
    """An OPEN ticket numbered from the tenant's `TCK` sequence, its SLA clock running."""
    from dotmac.billing.numbering import stage_next_number
    from dotmac.core.retry import until_won
    from dotmac.isp.customers import CustomerRepository

    if (customer_id := body.customer_id) is not None:
        repo = CustomerRepository(ctx)
        referenced("customer_id", "no such customer", lambda: repo.customer(customer_id))
    done: list[tuple[TicketItem, list[TransitionItem]]] = []

    def attempt() -> None:
        done.clear()
        now = _now()
        uow = UnitOfWork(ctx)
        number = stage_next_number(uow, ctx, NUMBER_PREFIX, now.year)
        due = deadlines(now, body.priority)
        partition = ctx.key(TICKET, number)
        item = TicketItem(
            partition,
            ROOT,
            number=number,
            customer_id=body.customer_id,
            subject=body.subject,
            description=body.description,
            priority=body.priority,
            category=body.category,
            status=OPEN,
            first_response_due=due[FIRST_RESPONSE],
            resolution_due=due[RESOLUTION],
            responses=0,
            version=1,
            created_at=now,
            created_by=ctx.user_id,
            updated_at=now,
        )
        _index(ctx, item)
        log = creation_entry(
            ctx,
            partition,
            OPEN,
            now,
            details={"priority": body.priority},
        )
        uow.put(item, condition=TicketItem.PK.does_not_exist())
        uow.put(log)
        clock = clock_item(ctx, item)
        assert clock is not None
        uow.put(clock)
        if (listed := customer_copy(ctx, item)) is not None:
            uow.put(listed)
        dashboard.stage_ticket(uow, ctx, None, dashboard.ticket_sla(item))
        uow.audit("isp.ticket.create", "ticket", number, after=_state(item))
        uow.commit(conflict="the ticket number was taken meanwhile; retry")
        done.append((item, [log]))

    until_won(attempt)
    return done[0]


def customer_tickets(ctx: TenantContext, customer_id: str, page: PageRequest) -> Page[TicketItem]:
    """One page of a customer's tickets, newest first: one Query of the customer's copies."""
    return query_page(TicketItem, ctx.key(CUSTOMER_TICKETS, customer_id), page, newest_first=True)


def get_ticket(
    ctx: TenantContext, number: str, *, consistent: bool = False
) -> tuple[TicketItem, list[TransitionItem]]:
    return TicketRepository(ctx).with_history(number, consistent=consistent)


def list_tickets(
    ctx: TenantContext, page: PageRequest, status: str | None = None, sla: str | None = None
) -> Page[TicketItem]:
    """All tickets, by status, or the open ones by SLA status (one Query)."""
    if status is not None and status not in STATUSES:
        raise invalid("status", f"one of {', '.join(STATUSES)}")
    if sla is not None and sla not in SLA_STATUSES:
        raise invalid("sla", f"one of {', '.join(SLA_STATUSES)}")
    repo = TicketRepository(ctx)
    if sla is None:
        return repo.tickets(page, status)
    return repo.by_sla(page, sla, _now(), status)


def update_ticket(
    ctx: TenantContext, number: str, body: TicketUpdate
) -> tuple[TicketItem, list[TransitionItem]]:
    """Change subject, description, category or priority (which recomputes both deadlines
    from the creation and records a `reprioritise` transition)."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationError("nothing to change", details=[FieldError("", "no fields given")])
    nulls = [field for field, value in changes.items() if value is None]
    if nulls:
        raise ValidationError(
            "fields cannot be null", details=[FieldError(f, "cannot be null") for f in nulls]
        )

    def mutate(item: TicketItem, now: datetime) -> Step:
        if item.status == CLOSED:
            raise invalid_state("ticket", item.status, "change")
        old = item.priority
        for field, value in changes.items():
            setattr(item, field, value)
        if item.priority == old:
            return Step(None)
        due = deadlines(item.created_at, item.priority)
        item.first_response_due, item.resolution_due = due[FIRST_RESPONSE], due[RESOLUTION]
        return Step(
            "reprioritise",
            f"priority {old} -> {item.priority}",
            {"from": old, "to": item.priority},
        )

    _change(ctx, number, "update", mutate)
    return TicketRepository(ctx).with_history(number, consistent=True)


def respond(
    ctx: TenantContext, number: str, body: RespondRequest
) -> tuple[TicketItem, list[TransitionItem]]:
    """The first response stops the first-response timer (OPEN -> IN_PROGRESS); later ones
    are comments."""

    def mutate(item: TicketItem, now: datetime) -> Step:
        item.status = next_status(item.status, "respond")
        first = item.first_responded_at is None
        if first:
            item.first_responded_at = now
        item.responses = int(item.responses) + 1
        return Step("respond", body.message, {"first_response": first})

    _change(ctx, number, "respond", mutate)
    return TicketRepository(ctx).with_history(number, consistent=True)


def transition(
    ctx: TenantContext, number: str, action: str, body: TicketTransition
) -> tuple[TicketItem, list[TransitionItem]]:
    """resolve, close or reopen, recording who and why."""

    def mutate(item: TicketItem, now: datetime) -> Step:
        item.status = next_status(item.status, action)
        if action == "resolve":
            item.resolved_at = now
            if item.first_responded_at is None:
                item.first_responded_at = now
        elif action == "close":
            item.closed_at = now
        elif action == "reopen":
            item.resolved_at = None
        return Step(action, body.reason)

    _change(ctx, number, action, mutate)
    return TicketRepository(ctx).with_history(number, consistent=True)


SWEEPER = "isp-sla-sweeper"


def sweep_breaches(ctx_or_tenant: TenantContext | str, now: datetime | None = None) -> int:
    """Record every breach of the tenant's open tickets due before `now` (default: now) and
    queue one escalation per breach; returns how many breaches were recorded. Finds them
    with one Query per page of the `ISP_TICKET_DUE` index (no Scan); each is re-read and
    written conditionally, so concurrent sweeps record (and escalate) a breach once."""
    at = now or _now()
    ctx = (
        ctx_or_tenant
        if isinstance(ctx_or_tenant, TenantContext)
        else TenantContext(ctx_or_tenant, SWEEPER, request_id=f"sla-sweep-{_stamp(at)}")
    )
    repo = TicketRepository(ctx)
    numbers: list[str] = []
    cursor: str | None = None
    while True:
        page = repo.due(PageRequest(limit=200, cursor=cursor), at)
        numbers.extend(item.number for item in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    recorded = 0
    for number in numbers:
        try:
            _, found = _change(ctx, number, "breach", None, at=at)
        except NotFoundError:
            continue
        recorded += len(found)
    return recorded


def sweep(ctx: TenantContext, body: SweepRequest) -> dict[str, Any]:
    """A tenant manager's sweep of their own tenant, as of a time not in the future (a
    future `as_of` would record breaches that have not happened); the run is audited."""
    from dotmac.core import audit_trail

    now = _now()
    as_of = now if body.as_of is None else body.as_of.astimezone(UTC)
    if as_of > now:
        raise invalid("as_of", "cannot be in the future")
    breached = sweep_breaches(ctx, as_of)
    audit_trail.record(
        ctx,
        "isp.ticket.sweep",
        "ticket",
        "sweep",
        after={"as_of": _iso(as_of), "breached": breached},
    )
    return {"as_of": _iso(as_of), "breached": breached}


def sweep_all(now: datetime | None = None) -> dict[str, Any]:
    """The scheduler's sweep (every 5 minutes): every ACTIVE tenant, one Query each when
    nothing is due."""
    from dotmac.management.repository import customer_tenant_ids

    at = now or _now()
    found = {tenant: sweep_breaches(tenant, at) for tenant in customer_tenant_ids("ACTIVE")}
    return {"as_of": _iso(at), "breached": sum(found.values())}
