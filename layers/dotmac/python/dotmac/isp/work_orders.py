"""ISP field work: technician profiles and work orders (the technician mobile app's API).

Rules (business-rules.md, ISP "Work orders"):
- Each work-order type needs skills (`REQUIRED_SKILLS`): installation needs fiber_splicing
  and router_config; repair and maintenance need diagnostics; survey needs site_survey.
- States NEW -> ASSIGNED -> IN_PROGRESS -> COMPLETED, and CANCELLED from NEW or ASSIGNED.
  Actions (`ACTIONS`): assign (NEW or ASSIGNED -> ASSIGNED: a reassignment moves the
  workload), check_in (ASSIGNED -> IN_PROGRESS), check_out (IN_PROGRESS, once, after the
  check-in), complete (IN_PROGRESS -> COMPLETED, after the check-out, with every checklist
  item checked, else 422 CHECKLIST_INCOMPLETE), cancel (NEW or ASSIGNED -> CANCELLED).
  Anything else is 409 INVALID_STATE. The creation and every action is an item recording
  from, to, who (`ctx.user_id`), why and when; check-in/out carry the location, an
  assignment the score breakdown, in `details`.
- An order comes from an installation (its `service_number`, required for the type) or a
  ticket (`ticket_id`, which must exist; a ticket's customer becomes the order's).
- Only an available technician holding every required skill can be assigned (409
  TECHNICIAN_NOT_ELIGIBLE when named, 409 NO_TECHNICIAN_AVAILABLE when none can be chosen).
  Without a named technician the best score wins (`score`, all parts 0-100): distance 30%
  (100 - 2 per km from the technician's home, haversine, floor 0), workload 25% (100 - 20
  per open order: 5 or more open orders score 0), skill 20% (share of the required skills
  held: 100 for every eligible technician), completion rate 15% (completed / assignments
  not cancelled; 100 before the first assignment), rating 10% (rating / 5 x 100). Ties go
  to fewer open orders, then the lower user id.
- Who: managers (`isp:work_orders:manage`, e.g. isp_manager's `isp:*:*`) create, assign,
  cancel and see every order. Anyone else with `isp:work_orders:read` (the isp_technician)
  sees only the orders assigned to them: another's order is 404 and their list is their own
  index partition. Check-in, check-out and completion are the assigned technician's alone;
  notes and photos also a manager's. Technician profiles are `isp:technicians:*` (managers).
- Photos: `POST .../photos {content_type}` (image/jpeg, image/png, image/heic) records the
  key `tenants/<tid>/work-orders/<id>/photos/<uuid>.<ext>` on the order and answers a
  presigned S3 PUT URL (15 min) for it. At most MAX_NOTES notes and MAX_PHOTOS photos.
- Completing moves the technician's counters (open orders -1, completed +1) in the same
  transaction; assigning adds one open order and one assignment, cancelling or reassigning
  takes them back. Profile writes and assignments are conditional on the profile `version`
  (an assignment also on `available`), order writes on the order's `version`; a lost race
  re-reads and retries (`core.retry.until_won`).
- `ticket_id` is stored as a reference (tickets are another module); `service_number`
  (required for an installation) must name a service of the tenant, and gives the customer.

All keys below are inside the tenant's space (`T#<tid>#...`; items in
`dotmac.isp.work_order_models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create technician | GetItem, TransactWriteItems | the identity user; `ISP_TECHNICIAN` / `<user>` |
| | | if absent, audit |
| get / list technicians | GetItem / Query | `ISP_TECHNICIAN` / `<user>`; `ISP_TECHNICIAN` |
| update technician | GetItem, TransactWriteItems, | the profile if `version` unchanged, audit |
| | GetItem | |
| create work order | (GetItem), TransactWriteItems | the service or customer named; |
| | | `ISP_WORK_ORDER#<id>` / `ROOT` if absent, its creation |
| | | `LOG#<version>`, audit |
| get (+ newest transitions) | Query | `ISP_WORK_ORDER#<id>`, descending, 1 + HISTORY_LIMIT |
| list (manager) | Query | `ISP_WORK_ORDERS`, SK `<created>#<id>` (GSI2) |
| list a technician's (own) | Query | `ISP_TECH_WORK_ORDERS#<user>`, SK `<created>#<id>` (GSI1) |
| assign | GetItem, GetItem or Query, | the order; the named technician or every technician |
| | TransactWriteItems, Query | (`ISP_TECHNICIAN`); order if `version` unchanged, |
| | | technician if available and `version` unchanged (+1 open), |
| | | a reassignment's previous technician (-1 open), `LOG#`, audit |
| check-in/out, note, photo | GetItem, TransactWriteItems, | order if `version` unchanged |
| | Query | (+ `LOG#` for check-in/out), audit; the get's Query |
| complete, cancel | GetItem, TransactWriteItems, | order, its technician's counters, |
| | Query | `LOG#`, audit; the get's Query |
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    field_validator,
)

from dotmac.core.errors import (
    ConflictError,
    FieldError,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
    ValidationError,
)
from dotmac.core.pagination import PageRequest
from dotmac.core.permissions import allowed
from dotmac.core.repository import Page, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp.customers import (
    ID_PATTERN,
    ROOT,
    Reason,
    RecordRepository,
    creation_entry,
    new_transition,
)
from dotmac.isp.models import TransitionItem
from dotmac.isp.work_order_models import TechnicianItem, WorkOrderItem

# Partitions and index partitions (all inside the tenant's key space).
TECHNICIAN = "ISP_TECHNICIAN"
WORK_ORDER, WORK_ORDERS, TECH_WORK_ORDERS = (
    "ISP_WORK_ORDER",
    "ISP_WORK_ORDERS",
    "ISP_TECH_WORK_ORDERS",
)
MANAGE = "isp:work_orders:manage"

REQUIRED_SKILLS: dict[str, frozenset[str]] = {
    "installation": frozenset({"fiber_splicing", "router_config"}),
    "repair": frozenset({"diagnostics"}),
    "maintenance": frozenset({"diagnostics"}),
    "survey": frozenset({"site_survey"}),
}
NEW, ASSIGNED, IN_PROGRESS = "NEW", "ASSIGNED", "IN_PROGRESS"
COMPLETED, CANCELLED = "COMPLETED", "CANCELLED"
STATUSES = (NEW, ASSIGNED, IN_PROGRESS, COMPLETED, CANCELLED)
# action -> (states it may start from, state it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "assign": (frozenset({NEW, ASSIGNED}), ASSIGNED),
    "check_in": (frozenset({ASSIGNED}), IN_PROGRESS),
    "check_out": (frozenset({IN_PROGRESS}), IN_PROGRESS),
    "complete": (frozenset({IN_PROGRESS}), COMPLETED),
    "cancel": (frozenset({NEW, ASSIGNED}), CANCELLED),
}
OPEN = frozenset({ASSIGNED, IN_PROGRESS})
WEIGHTS = {"distance": 0.30, "workload": 0.25, "skill": 0.20, "completion": 0.15, "rating": 0.10}
KM_PENALTY = 2.0  # distance score points lost per km
OPEN_ORDER_PENALTY = 20.0  # workload score points lost per open order
EARTH_RADIUS_KM = 6371.0088
MAX_NOTES, MAX_PHOTOS = 100, 20
PHOTO_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/heic": "heic"}
PHOTO_URL_SECONDS = 900


# --- pure rules: the state machine ---------------------------------------------------------


def next_status(status: str, action: str) -> str:
    """The state `action` leads to from `status`; 409 INVALID_STATE when it may not."""
    sources, target = ACTIONS[action]
    if status not in sources:
        raise ConflictError(f"a {status} work order cannot {action}", code="INVALID_STATE")
    return target


def unchecked(required: Sequence[str], checked: Mapping[str, bool]) -> list[str]:
    """The required checklist items not checked (true) in `checked`, in the list's order."""
    return [item for item in required if checked.get(item) is not True]


# --- pure rules: choosing the technician ---------------------------------------------------


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Candidate:
    """What the score needs to know about one technician."""

    user_id: str
    skills: frozenset[str]
    available: bool
    lat: float
    lon: float
    rating: float = 0.0
    open_orders: int = 0
    assigned_total: int = 0
    completed: int = 0


@dataclass(frozen=True)
class Score:
    """One technician's score for one order: each part 0-100 and the weighted total."""

    user_id: str
    distance_km: float
    parts: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(WEIGHTS[name] * value for name, value in self.parts.items())

    def view(self) -> dict[str, Any]:
        return {
            "technician_id": self.user_id,
            "total": round(self.total, 2),
            "distance_km": round(self.distance_km, 3),
            "parts": {name: round(value, 2) for name, value in self.parts.items()},
            "weights": dict(WEIGHTS),
        }


def eligible(candidate: Candidate, required: Iterable[str]) -> bool:
    """Available and holding every required skill."""
    return candidate.available and set(required) <= candidate.skills


def completion_rate(completed: int, assigned_total: int) -> float:
    """Completed / assignments (not cancelled), 0-100; 100 before the first assignment."""
    if assigned_total <= 0:
        return 100.0
    return max(0.0, min(100.0, 100.0 * completed / assigned_total))


def score(candidate: Candidate, lat: float, lon: float, required: Iterable[str]) -> Score:
    """The best-technician score of `candidate` for an order at (lat, lon)."""
    needed = set(required)
    km = haversine_km(candidate.lat, candidate.lon, lat, lon)
    held = len(needed & candidate.skills)
    parts = {
        "distance": max(0.0, 100.0 - KM_PENALTY * km),
        "workload": max(0.0, 100.0 - OPEN_ORDER_PENALTY * max(0, candidate.open_orders)),
        "skill": 100.0 if not needed else 100.0 * held / len(needed),
        "completion": completion_rate(candidate.completed, candidate.assigned_total),
        "rating": max(0.0, min(100.0, candidate.rating / 5.0 * 100.0)),
    }
    return Score(candidate.user_id, km, parts)


def best(
    candidates: Iterable[Candidate], lat: float, lon: float, required: Iterable[str]
) -> Score | None:
    """The highest-scoring eligible candidate (ties: fewer open orders, then the lower id),
    or None when no candidate is eligible."""
    needed = frozenset(required)
    ranked = [(score(c, lat, lon, needed), c) for c in candidates if eligible(c, needed)]
    if not ranked:
        return None
    ranked.sort(key=lambda pair: (-pair[0].total, pair[1].open_orders, pair[1].user_id))
    return ranked[0][0]


# --- request bodies ------------------------------------------------------------------------


def _storable(value: float) -> float:
    """`value` to 7 decimals (about 1 cm of latitude): DynamoDB stores no number whose
    magnitude is under 1e-130, such as 1e-308 (and no negative zero comes out)."""
    return round(value, 7) + 0.0


Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Skill = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")]
Latitude = Annotated[
    StrictFloat, Field(ge=-90, le=90, allow_inf_nan=False), AfterValidator(_storable)
]
Longitude = Annotated[
    StrictFloat, Field(ge=-180, le=180, allow_inf_nan=False), AfterValidator(_storable)
]
Rating = Annotated[StrictFloat, Field(ge=0, le=5, allow_inf_nan=False), AfterValidator(_storable)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
ChecklistEntry = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
TicketRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
ServiceNumber = Annotated[
    str, StringConstraints(pattern=r"^(INT|PHN|TV|BDL)-[0-9]{8}-[0-9a-f]{6}$")
]
OrderType = Literal["installation", "repair", "maintenance", "survey"]


def _unique(values: list[str], what: str) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must be unique")
    return values


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: Latitude
    lon: Longitude


class TechnicianCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id
    name: Name | None = None
    skills: Annotated[list[Skill], Field(max_length=20)] = []
    available: StrictBool = True
    home: Location
    rating: Rating = 0.0

    @field_validator("skills")
    @classmethod
    def _skills_unique(cls, value: list[str]) -> list[str]:
        return _unique(value, "skills")


class TechnicianUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    skills: Annotated[list[Skill], Field(max_length=20)] | None = None
    available: StrictBool | None = None
    home: Location | None = None
    rating: Rating | None = None

    @field_validator("skills")
    @classmethod
    def _skills_unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value, "skills")


class WorkOrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: OrderType
    customer_id: Id | None = None
    ticket_id: TicketRef | None = None
    service_number: ServiceNumber | None = None
    location: Location
    scheduled_for: AwareDatetime | None = None
    description: Text | None = None
    checklist: Annotated[list[ChecklistEntry], Field(max_length=30)] = []

    @field_validator("checklist")
    @classmethod
    def _checklist_unique(cls, value: list[str]) -> list[str]:
        return _unique(value, "checklist items")


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    technician_id: Id | None = None
    reason: Reason | None = None


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class PhotoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: Literal["image/jpeg", "image/png", "image/heic"]


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checklist: Annotated[dict[ChecklistEntry, StrictBool], Field(max_length=30)] = {}
    note: Text | None = None


# --- views ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def candidate_of(item: TechnicianItem) -> Candidate:
    return Candidate(
        user_id=item.user_id,
        skills=frozenset(str(s) for s in item.skills or []),
        available=bool(item.available),
        lat=float(item.home_lat),
        lon=float(item.home_lon),
        rating=float(item.rating),
        open_orders=int(item.open_orders),
        assigned_total=int(item.assigned_total),
        completed=int(item.completed),
    )


def technician_view(item: TechnicianItem) -> dict[str, Any]:
    return {
        "user_id": item.user_id,
        "name": item.name,
        "skills": sorted(item.skills or []),
        "available": bool(item.available),
        "home": {"lat": float(item.home_lat), "lon": float(item.home_lon)},
        "rating": float(item.rating),
        "open_orders": int(item.open_orders),
        "assigned_total": int(item.assigned_total),
        "completed": int(item.completed),
        "completion_rate": round(completion_rate(int(item.completed), int(item.assigned_total)), 2),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def order_id_of(item: WorkOrderItem) -> str:
    return str(item.PK).rsplit("#", 1)[1]


def work_order_summary(item: WorkOrderItem) -> dict[str, Any]:
    return {
        "type": item.order_type,
        "status": item.status,
        "required_skills": sorted(REQUIRED_SKILLS[item.order_type]),
        "customer_id": item.customer_id,
        "ticket_id": item.ticket_id,
        "service_number": item.service_number,
        "location": {"lat": float(item.lat), "lon": float(item.lon)},
        "scheduled_for": _iso(item.scheduled_for),
        "technician_id": item.technician_id,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def _visit(at: datetime | None, lat: Any, lon: Any) -> dict[str, Any] | None:
    return None if at is None else {"at": _iso(at), "lat": _num(lat), "lon": _num(lon)}


def work_order_view(item: WorkOrderItem, history: Sequence[TransitionItem]) -> dict[str, Any]:
    from dotmac.isp.customers import transition_view

    return {
        **work_order_summary(item),
        "description": item.description,
        "checklist": list(item.checklist or []),
        "checklist_result": None
        if item.checklist_result is None
        else json.loads(item.checklist_result),
        "assignment": None if item.assignment is None else json.loads(item.assignment),
        "check_in": _visit(item.check_in_at, item.check_in_lat, item.check_in_lon),
        "check_out": _visit(item.check_out_at, item.check_out_lat, item.check_out_lon),
        "notes": json.loads(item.notes),
        "photos": json.loads(item.photos),
        "completed_at": _iso(item.completed_at),
        "history": [transition_view(t) for t in history],
    }


# --- data access ---------------------------------------------------------------------------


def _id_or_404(value: str, what: str = "work order") -> str:
    if not re.fullmatch(ID_PATTERN, value or ""):
        raise NotFoundError(f"{what} {value} not found")
    return value


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(message, details=[FieldError(field, message)])


class WorkOrderRepository(RecordRepository[WorkOrderItem]):
    """Technicians and work orders of one tenant; every key is built from the context."""

    model = WorkOrderItem
    kind = WORK_ORDER
    noun = "work order"
    id_pattern = ID_PATTERN

    def orders(self, page: PageRequest, technician: str | None = None) -> Page[WorkOrderItem]:
        if technician is None:
            return query_page(WorkOrderItem, self.key(WORK_ORDERS), page, index="gsi2")
        partition = self.key(TECH_WORK_ORDERS, technician)
        return query_page(WorkOrderItem, partition, page, index="gsi1")

    def technician(self, user_id: str, *, consistent: bool = False) -> TechnicianItem:
        _id_or_404(user_id, "technician")
        try:
            return TechnicianItem.get(self.key(TECHNICIAN), user_id, consistent_read=consistent)
        except TechnicianItem.DoesNotExist as exc:
            raise NotFoundError(f"technician {user_id} not found") from exc

    def technicians(self, page: PageRequest) -> Page[TechnicianItem]:
        return query_page(TechnicianItem, self.key(TECHNICIAN), page)

    def all_technicians(self) -> list[TechnicianItem]:
        """Every technician of the tenant (one Query per 1 MB page: one for any real team)."""
        return list(TechnicianItem.query(self.key(TECHNICIAN), consistent_read=True))


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def is_manager(ctx: TenantContext) -> bool:
    return allowed(ctx.permissions, MANAGE)


def _visible(ctx: TenantContext, item: WorkOrderItem) -> WorkOrderItem:
    """The order if the caller may see it: a manager, or the technician it is assigned to
    (anyone else gets the same 404 as for a missing order)."""
    if is_manager(ctx) or (item.technician_id is not None and item.technician_id == ctx.user_id):
        return item
    raise NotFoundError(f"work order {order_id_of(item)} not found")


def _assignee_only(ctx: TenantContext, item: WorkOrderItem, action: str) -> None:
    """Check-in, check-out and completion are the assigned technician's own."""
    _visible(ctx, item)
    if item.technician_id != ctx.user_id:
        raise ForbiddenError(f"only the assigned technician can {action}", code="NOT_ASSIGNEE")


def _stage_action(
    uow: UnitOfWork,
    item: WorkOrderItem,
    *,
    action: str,
    to_status: str,
    reason: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Stage the transition record (who, why, when, details) and the audit record of an
    action whose order update the caller staged with the read `version` as its condition."""
    version = int(item.version) + 1
    uow.put(
        new_transition(
            uow.ctx,
            item.PK,
            version=version,
            action=action,
            from_status=item.status,
            to_status=to_status,
            reason=reason,
            at=at,
            details=details,
        )
    )
    uow.audit(
        f"isp.work_order.{action}",
        "work_order",
        order_id_of(item),
        before={"status": item.status, "technician_id": item.technician_id},
        after={"status": to_status, "reason": reason, **(details or {})},
    )


def _order_update(item: WorkOrderItem, at: datetime, *extra: Any) -> tuple[Any, list[Any], Any]:
    """The order's key item, its update actions (+ version, updated_at) and the condition."""
    actions = [WorkOrderItem.updated_at.set(at), WorkOrderItem.version.add(1), *extra]
    return (
        WorkOrderItem(item.PK, ROOT),
        actions,
        WorkOrderItem.version == int(item.version),
    )


# --- technicians ---------------------------------------------------------------------------


def create_technician(ctx: TenantContext, body: TechnicianCreate) -> TechnicianItem:
    """A technician profile for an identity user of the tenant (one per user)."""
    from dotmac.identity.repository import UserRepository

    try:
        UserRepository(ctx).get(body.user_id)
    except NotFoundError as exc:
        raise _invalid("user_id", "no such user in this tenant") from exc
    now = _now()
    item = TechnicianItem(
        ctx.key(TECHNICIAN),
        body.user_id,
        user_id=body.user_id,
        name=body.name,
        skills=list(body.skills),
        available=body.available,
        home_lat=body.home.lat,
        home_lon=body.home.lon,
        rating=body.rating,
        open_orders=0,
        assigned_total=0,
        completed=0,
        version=1,
        created_at=now,
        updated_at=now,
    )
    uow = UnitOfWork(ctx)
    uow.put(item, condition=TechnicianItem.SK.does_not_exist())
    uow.audit("isp.technician.create", "technician", body.user_id, after=technician_view(item))
    uow.commit(conflict=f"user {body.user_id} already has a technician profile")
    return item


def get_technician(ctx: TenantContext, user_id: str) -> TechnicianItem:
    return WorkOrderRepository(ctx).technician(user_id)


def list_technicians(ctx: TenantContext, page: PageRequest) -> Page[TechnicianItem]:
    return WorkOrderRepository(ctx).technicians(page)


def update_technician(ctx: TenantContext, user_id: str, body: TechnicianUpdate) -> TechnicianItem:
    """Change a profile's name, skills, availability, home or rating (not its counters)."""
    from dotmac.core.retry import until_won

    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationError("nothing to change", details=[FieldError("", "no fields given")])
    nulls = [f for f in ("skills", "available", "home", "rating") if changes.get(f, 0) is None]
    if nulls:
        raise ValidationError(
            "fields cannot be null", details=[FieldError(f, "cannot be null") for f in nulls]
        )
    repo = WorkOrderRepository(ctx)
    _id_or_404(user_id, "technician")

    def attempt() -> None:
        item = repo.technician(user_id, consistent=True)
        before = technician_view(item)
        now = _now()
        actions: list[Any] = [TechnicianItem.updated_at.set(now), TechnicianItem.version.add(1)]
        if "name" in changes:
            name = changes["name"]
            actions.append(
                TechnicianItem.name.remove() if name is None else TechnicianItem.name.set(name)
            )
        if "skills" in changes:
            actions.append(TechnicianItem.skills.set(list(changes["skills"])))
        if "available" in changes:
            actions.append(TechnicianItem.available.set(changes["available"]))
        if "home" in changes:
            actions += [
                TechnicianItem.home_lat.set(changes["home"]["lat"]),
                TechnicianItem.home_lon.set(changes["home"]["lon"]),
            ]
        if "rating" in changes:
            actions.append(TechnicianItem.rating.set(changes["rating"]))
        uow = UnitOfWork(ctx)
        uow.update(
            TechnicianItem(item.PK, item.SK),
            actions,
            condition=TechnicianItem.version == int(item.version),
        )
        uow.audit(
            "isp.technician.update", "technician", user_id, before=before, after=dict(changes)
        )
        uow.commit(conflict="the technician changed meanwhile; retry")

    until_won(attempt)
    return repo.technician(user_id, consistent=True)


# --- work orders ---------------------------------------------------------------------------


def _source(ctx: TenantContext, body: WorkOrderCreate) -> str | None:
    """Check the source references; the customer (named, or the installed service's, or
    the ticket's)."""
    from dotmac.isp.customers import CustomerRepository
    from dotmac.isp.services import ServiceRepository
    from dotmac.isp.tickets import TicketRepository

    if body.ticket_id is not None:
        try:
            ticket = TicketRepository(ctx).record(body.ticket_id)
        except NotFoundError as exc:
            raise _invalid("ticket_id", "no such ticket") from exc
        if ticket.customer_id is not None:
            if body.customer_id not in (None, ticket.customer_id):
                raise _invalid("customer_id", "not the customer of the ticket")
            body = body.model_copy(update={"customer_id": ticket.customer_id})
    if body.type == "installation" and body.service_number is None:
        raise _invalid("service_number", "an installation names the service it installs")
    if body.service_number is not None:
        try:
            service = ServiceRepository(ctx).record(body.service_number)
        except NotFoundError as exc:
            raise _invalid("service_number", "no such service") from exc
        if body.customer_id is not None and body.customer_id != service.customer_id:
            raise _invalid("customer_id", "not the customer of the service")
        return str(service.customer_id)
    if body.customer_id is not None:
        try:
            CustomerRepository(ctx).customer(body.customer_id)
        except NotFoundError as exc:
            raise _invalid("customer_id", "no such customer") from exc
    return body.customer_id


def create_work_order(
    ctx: TenantContext, body: WorkOrderCreate
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """A NEW work order (managers), with its creation recorded."""
    repo = WorkOrderRepository(ctx)
    customer_id = _source(ctx, body)
    order_id, now = _new_id(), _now()
    partition = repo.partition(order_id)
    item = WorkOrderItem(
        partition,
        ROOT,
        GSI2PK=ctx.key(WORK_ORDERS),
        GSI2SK=f"{now.isoformat(timespec='microseconds')}#{order_id}",
        order_type=body.type,
        status=NEW,
        customer_id=customer_id,
        ticket_id=body.ticket_id,
        service_number=body.service_number,
        lat=body.location.lat,
        lon=body.location.lon,
        scheduled_for=body.scheduled_for,
        description=body.description,
        checklist=list(body.checklist),
        notes="[]",
        photos="[]",
        version=1,
        created_at=now,
        created_by=ctx.user_id,
        updated_at=now,
    )
    log = creation_entry(
        ctx,
        partition,
        NEW,
        now,
    )
    uow = UnitOfWork(ctx)
    uow.put(item, condition=WorkOrderItem.PK.does_not_exist())
    uow.put(log)
    uow.audit("isp.work_order.create", "work_order", order_id, after=work_order_summary(item))
    uow.commit(conflict="a work order with this id exists; retry")
    return item, [log]


def get_work_order(
    ctx: TenantContext, order_id: str, *, consistent: bool = False
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """One order and its history (one Query); another technician's order is 404."""
    item, history = WorkOrderRepository(ctx).with_history(order_id, consistent=consistent)
    return _visible(ctx, item), history


def list_work_orders(
    ctx: TenantContext, page: PageRequest, technician: str | None = None
) -> Page[WorkOrderItem]:
    """Managers: every order, or one technician's (`?technician=`). Anyone else: their own."""
    if technician is not None and not re.fullmatch(ID_PATTERN, technician):
        raise _invalid("technician", "not a user id")
    if not is_manager(ctx):
        if technician is not None and technician != ctx.user_id:
            raise ForbiddenError("a technician sees only their own work orders")
        technician = ctx.user_id
    return WorkOrderRepository(ctx).orders(page, technician)


def _run(
    ctx: TenantContext, order_id: str, stage: Any
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """Read the order, let `stage(uow, item, now)` stage the change, commit; retry a lost
    race; answer the order as written."""
    from dotmac.core.retry import until_won

    repo = WorkOrderRepository(ctx)
    _id_or_404(order_id)

    def attempt() -> None:
        item = repo.record(order_id, consistent=True)
        uow = UnitOfWork(ctx)
        stage(uow, item, _now())
        uow.commit(conflict="the work order or its technician changed meanwhile; retry")

    until_won(attempt)
    return repo.with_history(order_id, consistent=True)


def _counters(user_id: str, ctx: TenantContext, *actions: Any) -> tuple[Any, list[Any]]:
    return TechnicianItem(ctx.key(TECHNICIAN), user_id), list(actions)


def assign(
    ctx: TenantContext, order_id: str, body: AssignRequest
) -> tuple[WorkOrderItem, list[TransitionItem], dict[str, Any]]:
    """Assign the named technician, or the best-scoring eligible one (managers)."""
    repo = WorkOrderRepository(ctx)
    chosen: list[dict[str, Any]] = []

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        target = next_status(item.status, "assign")
        required = REQUIRED_SKILLS[item.order_type]
        lat, lon = float(item.lat), float(item.lon)
        if body.technician_id is not None:
            try:
                technicians = [repo.technician(body.technician_id, consistent=True)]
            except NotFoundError as exc:
                raise _invalid("technician_id", "no such technician") from exc
            candidate = candidate_of(technicians[0])
            if not eligible(candidate, required):
                missing = sorted(required - candidate.skills)
                why = "unavailable" if not candidate.available else f"lacks {', '.join(missing)}"
                raise ConflictError(
                    f"technician {candidate.user_id} is {why}", code="TECHNICIAN_NOT_ELIGIBLE"
                )
            picked: Score | None = score(candidate, lat, lon, required)
        else:
            # A reassignment without a name moves the order to someone else.
            technicians = [t for t in repo.all_technicians() if t.user_id != item.technician_id]
            picked = best((candidate_of(t) for t in technicians), lat, lon, required)
            if picked is None:
                raise ConflictError(
                    f"no available technician has {', '.join(sorted(required))}",
                    code="NO_TECHNICIAN_AVAILABLE",
                )
        assert picked is not None
        tech = next(t for t in technicians if t.user_id == picked.user_id)
        if item.technician_id == tech.user_id:
            raise ConflictError(f"already assigned to {tech.user_id}", code="INVALID_STATE")
        view = picked.view()
        order = f"{item.created_at.isoformat(timespec='microseconds')}#{order_id_of(item)}"
        uow.update(
            *_order_update(
                item,
                now,
                WorkOrderItem.status.set(target),
                WorkOrderItem.technician_id.set(tech.user_id),
                WorkOrderItem.assignment.set(json.dumps(view, sort_keys=True)),
                WorkOrderItem.GSI1PK.set(ctx.key(TECH_WORK_ORDERS, tech.user_id)),
                WorkOrderItem.GSI1SK.set(order),
            )
        )
        key, actions = _counters(
            tech.user_id,
            ctx,
            TechnicianItem.open_orders.add(1),
            TechnicianItem.assigned_total.add(1),
        )
        uow.update(
            key,
            actions,
            condition=(TechnicianItem.version == int(tech.version))
            & (TechnicianItem.available == True),  # noqa: E712 - a condition expression
        )
        if item.technician_id is not None:  # a reassignment takes the order back
            key, actions = _counters(
                item.technician_id,
                ctx,
                TechnicianItem.open_orders.add(-1),
                TechnicianItem.assigned_total.add(-1),
            )
            uow.update(key, actions, condition=TechnicianItem.SK.exists())
        reason = body.reason or ("chosen by score" if body.technician_id is None else "assigned")
        _stage_action(
            uow, item, action="assign", to_status=target, reason=reason, at=now, details=view
        )
        chosen[:] = [view]

    item, history = _run(ctx, order_id, stage)
    return item, history, chosen[0]


def check(
    ctx: TenantContext, order_id: str, action: Literal["check_in", "check_out"], body: Location
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """The assigned technician arrives (ASSIGNED -> IN_PROGRESS) or leaves (once, after the
    check-in): the server's time and the given location are recorded."""

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        _assignee_only(ctx, item, action.replace("_", " "))
        target = next_status(item.status, action)
        if action == "check_out" and item.check_out_at is not None:
            raise ConflictError("already checked out", code="INVALID_STATE")
        if action == "check_in":
            fields = (WorkOrderItem.check_in_at, WorkOrderItem.check_in_lat)
            lon_field = WorkOrderItem.check_in_lon
        else:
            fields = (WorkOrderItem.check_out_at, WorkOrderItem.check_out_lat)
            lon_field = WorkOrderItem.check_out_lon
        uow.update(
            *_order_update(
                item,
                now,
                WorkOrderItem.status.set(target),
                fields[0].set(now),
                fields[1].set(body.lat),
                lon_field.set(body.lon),
            )
        )
        details = {"lat": body.lat, "lon": body.lon}
        reason = action.replace("_", " ")
        _stage_action(
            uow, item, action=action, to_status=target, reason=reason, at=now, details=details
        )

    return _run(ctx, order_id, stage)


def _open_for_notes(ctx: TenantContext, item: WorkOrderItem, what: str) -> None:
    _visible(ctx, item)
    if item.status in (COMPLETED, CANCELLED):
        raise ConflictError(f"a {item.status} work order takes no {what}", code="INVALID_STATE")


def add_note(
    ctx: TenantContext, order_id: str, body: NoteRequest
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """A note on an open order by its technician or a manager (who and when recorded)."""

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        _open_for_notes(ctx, item, "notes")
        notes = json.loads(item.notes)
        if len(notes) >= MAX_NOTES:
            raise ConflictError(f"a work order holds at most {MAX_NOTES} notes")
        notes.append({"text": body.text, "by": ctx.user_id, "at": now.isoformat()})
        uow.update(*_order_update(item, now, WorkOrderItem.notes.set(json.dumps(notes))))
        uow.audit(
            "isp.work_order.note",
            "work_order",
            order_id,
            after={"notes": len(notes), "chars": len(body.text)},
        )

    return _run(ctx, order_id, stage)


def photo_key(tenant_id: str, order_id: str, photo_id: str, content_type: str) -> str:
    return (
        f"tenants/{tenant_id}/work-orders/{order_id}/photos/{photo_id}.{PHOTO_TYPES[content_type]}"
    )


def add_photo(ctx: TenantContext, order_id: str, body: PhotoRequest) -> dict[str, Any]:
    """Record a photo's key on an open order and answer a presigned PUT URL for it."""
    from dotmac.core.aws import client
    from dotmac.core.settings import get_settings

    key = photo_key(ctx.tenant_id, order_id, uuid.uuid4().hex, body.content_type)

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        _open_for_notes(ctx, item, "photos")
        photos = json.loads(item.photos)
        if len(photos) >= MAX_PHOTOS:
            raise ConflictError(f"a work order holds at most {MAX_PHOTOS} photos")
        photos.append(
            {
                "key": key,
                "content_type": body.content_type,
                "by": ctx.user_id,
                "at": now.isoformat(),
            }
        )
        uow.update(*_order_update(item, now, WorkOrderItem.photos.set(json.dumps(photos))))
        uow.audit("isp.work_order.photo", "work_order", order_id, after={"key": key})

    _id_or_404(order_id)
    _run(ctx, order_id, stage)
    url: str = client("s3").generate_presigned_url(
        "put_object",
        Params={"Bucket": get_settings().bucket, "Key": key, "ContentType": body.content_type},
        ExpiresIn=PHOTO_URL_SECONDS,
    )
    return {
        "key": key,
        "upload_url": url,
        "method": "PUT",
        "headers": {"Content-Type": body.content_type},
        "expires_in": PHOTO_URL_SECONDS,
    }


def complete(
    ctx: TenantContext, order_id: str, body: CompleteRequest
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """The assigned technician completes a checked-out order with every checklist item
    checked; their counters move in the same transaction."""

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        _assignee_only(ctx, item, "complete")
        target = next_status(item.status, "complete")
        if item.check_out_at is None:
            raise ConflictError("check out before completing", code="INVALID_STATE")
        required = [str(entry) for entry in item.checklist or []]
        unknown = sorted(set(body.checklist) - set(required))
        if unknown:
            raise ValidationError(
                "unknown checklist items",
                details=[FieldError(f"checklist.{name}", "not on this order") for name in unknown],
            )
        missing = unchecked(required, body.checklist)
        if missing:
            raise UnprocessableError(
                "every checklist item must be checked",
                code="CHECKLIST_INCOMPLETE",
                details=[FieldError(f"checklist.{name}", "not checked") for name in missing],
            )
        result = {name: True for name in required}
        extra = []
        if body.note is not None:
            notes = json.loads(item.notes)[-(MAX_NOTES - 1) :]
            notes.append({"text": body.note, "by": ctx.user_id, "at": now.isoformat()})
            extra.append(WorkOrderItem.notes.set(json.dumps(notes)))
        uow.update(
            *_order_update(
                item,
                now,
                WorkOrderItem.status.set(target),
                WorkOrderItem.completed_at.set(now),
                WorkOrderItem.checklist_result.set(json.dumps(result, sort_keys=True)),
                *extra,
            )
        )
        assert item.technician_id is not None
        key, actions = _counters(
            item.technician_id,
            ctx,
            TechnicianItem.open_orders.add(-1),
            TechnicianItem.completed.add(1),
        )
        uow.update(key, actions, condition=TechnicianItem.SK.exists())
        details = {"checklist": result}
        _stage_action(
            uow,
            item,
            action="complete",
            to_status=target,
            reason="completed",
            at=now,
            details=details,
        )

    return _run(ctx, order_id, stage)


def cancel(
    ctx: TenantContext, order_id: str, body: CancelRequest
) -> tuple[WorkOrderItem, list[TransitionItem]]:
    """A manager cancels a NEW or ASSIGNED order; an assigned technician gets the workload
    (and the assignment, for the completion rate) back."""

    def stage(uow: UnitOfWork, item: WorkOrderItem, now: datetime) -> None:
        target = next_status(item.status, "cancel")
        uow.update(*_order_update(item, now, WorkOrderItem.status.set(target)))
        if item.technician_id is not None:
            key, actions = _counters(
                item.technician_id,
                ctx,
                TechnicianItem.open_orders.add(-1),
                TechnicianItem.assigned_total.add(-1),
            )
            uow.update(key, actions, condition=TechnicianItem.SK.exists())
        _stage_action(uow, item, action="cancel", to_status=target, reason=body.reason, at=now)

    return _run(ctx, order_id, stage)
