"""ISP customers (subscribers): PII sealed with the tenant's KMS context, counted against
the plan's customer limit, with a recorded state history.

Rules (business-rules.md, ISP; DESIGN §4):
- States NEW, ACTIVE, BLOCKED, INACTIVE. `activate`: NEW, BLOCKED or INACTIVE -> ACTIVE (a
  payment that clears the balance reactivates); `block`: ACTIVE -> BLOCKED; `deactivate`:
  NEW, ACTIVE or BLOCKED -> INACTIVE. Anything else is 409 INVALID_STATE. Every transition
  (and the creation) is an item recording from, to, who (`ctx.user_id`), why and when.
- `email`, `phone` and `address` are PII: each is sealed on its own with `dotmac.core.crypto`
  (KMS envelope encryption, the tenant id in the encryption context) before it reaches the
  table, and opened only to build the single-customer view. Lists show no PII (opening 3
  fields x 50 customers would be 150 KMS calls per page): GET the customer for them.
- Billing day 1-28 (default 1) and billing mode prepaid | postpaid (default postpaid).
- Creating a customer counts one more "customers" against the plan limit in the same
  transaction (`entitlements.stage_increment`: over the limit a 24 h grace period, then 403
  PLAN_LIMIT_EXCEEDED); a failed create counts nothing.
- Writes are conditional on the `version` read; a lost race re-reads and retries
  (`core.retry.until_won`), so a transition is always checked against the current state.
  `stage_transition` stages one in another unit of work (subscriber billing's dunning).
- The dashboard's customers-by-state counts move in the same transactions
  (`dotmac.isp.dashboard`).

All keys below are inside the tenant's space (`T#<tid>#...`; items in `dotmac.isp.models`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create | KMS GenerateDataKey x fields, | customer `ISP_CUSTOMER#<id>` / `ROOT` if absent, its |
| | GetItem, TransactWriteItems | creation `LOG#<version>`, the usage counter `USAGE` / |
| | | `customers` (read first, conditional), dashboard |
| | | `ISP_DASHBOARD` / `CUSTOMERS` (ADD), audit |
| get (+ newest transitions) | Query | `ISP_CUSTOMER#<id>`, descending, 1 + HISTORY_LIMIT items |
| | (+ KMS Decrypt x fields) | (`ROOT` sorts after `LOG#`: the customer comes first) |
| list | Query | `ISP_CUSTOMERS`, SK `<created>#<id>` (GSI2) |
| list by status | Query | `ISP_CUSTOMER_STATUS#<status>`, SK `<created>#<id>` (GSI1) |
| update, transition | GetItem, TransactWriteItems | `ROOT` if `version` unchanged (+ `LOG#`), |
| | (+ the get's Query) | audit; a transition moves GSI1PK to the new status and |
| | | the dashboard's `ISP_DASHBOARD` / `CUSTOMERS` counts (ADD) |
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictInt, StringConstraints

from dotmac.core.errors import ConflictError, FieldError, NotFoundError, ValidationError
from dotmac.core.model import TableItem
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, TenantRepository, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import dashboard
from dotmac.isp.models import CustomerItem, TransitionItem

ItemT = TypeVar("ItemT", bound=TableItem)
RecordT = TypeVar("RecordT", bound=TableItem)

# Partitions and index partitions (all inside the tenant's key space).
CUSTOMER, CUSTOMERS, CUSTOMER_STATUS = "ISP_CUSTOMER", "ISP_CUSTOMERS", "ISP_CUSTOMER_STATUS"
ROOT, LOG = "ROOT", "LOG#"
HISTORY_LIMIT = 100  # newest transitions shown with a customer or a service

NEW, ACTIVE, BLOCKED, INACTIVE = "NEW", "ACTIVE", "BLOCKED", "INACTIVE"
STATUSES = (NEW, ACTIVE, BLOCKED, INACTIVE)
# action -> (states it may start from, state it leads to)
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({NEW, BLOCKED, INACTIVE}), ACTIVE),
    "block": (frozenset({ACTIVE}), BLOCKED),
    "deactivate": (frozenset({NEW, ACTIVE, BLOCKED}), INACTIVE),
}
PII_FIELDS = ("email", "phone", "address")
ID_PATTERN = r"^[0-9a-f]{16}$"


# --- pure rules ------------------------------------------------------------------------


def next_status(status: str, action: str) -> str:
    """The state `action` leads to from `status`; 409 INVALID_STATE when it may not."""
    sources, target = ACTIONS[action]
    if status not in sources:
        raise invalid_state("customer", status, action)
    return target


def invalid_state(what: str, status: str, action: str) -> ConflictError:
    return ConflictError(f"a {status} {what} cannot {action}", code="INVALID_STATE")


def invalid(field: str, message: str) -> ValidationError:
    """A 400 VALIDATION_ERROR about one field."""
    return ValidationError(f"invalid {field}", details=[FieldError(field, message)])


# --- request bodies ------------------------------------------------------------------------

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9 ()./-]{4,32}$")]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
BillingDay = Annotated[StrictInt, Field(ge=1, le=28)]
BillingMode = Literal["prepaid", "postpaid"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: Line
    line2: Line | None = None
    city: Short
    region: Short | None = None
    postal_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{2,12}$")]
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: EmailStr
    phone: Phone | None = None
    address: Address | None = None
    billing_day: BillingDay = 1
    billing_mode: BillingMode = "postpaid"


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    address: Address | None = None
    billing_day: BillingDay | None = None
    billing_mode: BillingMode | None = None


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


# --- views ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def transition_view(item: TransitionItem) -> dict[str, Any]:
    return {
        "action": item.action,
        "from": item.from_status,
        "to": item.to_status,
        "by": item.by,
        "reason": item.reason,
        "at": _iso(item.at),
        **({} if item.details is None else {"details": json.loads(item.details)}),
    }


def customer_summary(item: CustomerItem) -> dict[str, Any]:
    """What a list shows: everything but the PII."""
    return {
        "name": item.name,
        "status": item.status,
        "billing_day": int(item.billing_day),
        "billing_mode": item.billing_mode,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
    }


def _sealed_view(item: CustomerItem) -> dict[str, Any]:
    """The stored state for the audit digest (envelopes, never plaintext PII)."""
    return {
        **customer_summary(item),
        "email": item.email_enc,
        "phone": item.phone_enc,
        "address": item.address_enc,
    }


@dataclass(frozen=True)
class Found:
    """A customer, its newest transitions (oldest first) and, right after it was written
    with them, its PII in plaintext (else the view opens the envelopes)."""

    item: CustomerItem
    history: Sequence[TransitionItem] = ()
    pii: Mapping[str, Any] | None = None

    @property
    def id(self) -> str:
        return customer_id(self.item)


def customer_id(item: CustomerItem) -> str:
    """The customer's id (the last part of its partition key)."""
    return str(item.PK).rsplit("#", 1)[1]


def customer_view(ctx: TenantContext, found: Found) -> dict[str, Any]:
    """One customer with its PII opened (KMS Decrypt per field present) and its transitions."""
    from dotmac.core import crypto

    item = found.item

    def opened(sealed: str | None) -> str | None:
        return None if sealed is None else crypto.decrypt(ctx.tenant_id, sealed)

    if found.pii is not None:
        pii = dict(found.pii)
    else:
        address = opened(item.address_enc)
        pii = {
            "email": opened(item.email_enc),
            "phone": opened(item.phone_enc),
            "address": None if address is None else json.loads(address),
        }
    return {
        **customer_summary(item),
        **pii,
        "history": [transition_view(t) for t in found.history],
    }


# --- data access ---------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex[:16]


def log_sort_key(version: int) -> str:
    """`LOG#<the item's version after the transition>`, zero-padded (sorts in order)."""
    return f"{LOG}{version:010d}"


def new_transition(
    ctx: TenantContext,
    partition: str,
    *,
    version: int,
    action: str,
    from_status: str | None,
    to_status: str,
    reason: str,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> TransitionItem:
    """A transition item in the item collection `partition` (who: the caller), written with
    the item's new `version`."""
    return TransitionItem(
        partition,
        log_sort_key(version),
        action=action,
        from_status=from_status,
        to_status=to_status,
        by=ctx.user_id,
        reason=reason,
        at=at,
        request_id=ctx.request_id or None,
        details=None if details is None else json.dumps(details, sort_keys=True),
    )


def creation_entry(
    ctx: TenantContext,
    partition: str,
    status: str,
    at: datetime,
    *,
    reason: str = "created",
    details: dict[str, Any] | None = None,
) -> TransitionItem:
    """The first transition of a new record (version 1): created in `status`."""
    return new_transition(
        ctx,
        partition,
        version=1,
        action="create",
        from_status=None,
        to_status=status,
        reason=reason,
        at=at,
        details=details,
    )


def stage_status_change(
    uow: UnitOfWork,
    partition: str,
    *,
    resource_type: str,
    resource_id: str,
    version: int,
    action: str,
    from_status: str,
    to_status: str,
    reason: str,
    at: datetime,
) -> None:
    """Stage the transition record (who, why, when) and the audit record of a status change
    whose item update the caller staged with `version - 1` as its condition."""
    uow.put(
        new_transition(
            uow.ctx,
            partition,
            version=version,
            action=action,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            at=at,
        )
    )
    uow.audit(
        f"isp.{resource_type}.{action}",
        resource_type,
        resource_id,
        before={"status": from_status},
        after={"status": to_status, "reason": reason},
    )


def read_collection(
    model: type[ItemT], partition: str, *, consistent: bool = False
) -> tuple[ItemT, list[TransitionItem]] | None:
    """An item (`ROOT`) and its newest transitions, oldest first: one Query, or None."""
    connection: Any = model._get_connection()
    answer = connection.query(
        partition,
        scan_index_forward=False,
        limit=HISTORY_LIMIT + 1,
        consistent_read=consistent,
    )
    raws = answer.get("Items", [])
    if not raws or raws[0]["SK"]["S"] != ROOT:
        return None
    history = [TransitionItem.from_raw_data(raw) for raw in reversed(raws[1:])]
    return model.from_raw_data(raws[0]), history


def check_customer_id(value: str) -> str:
    """`value` itself; 404 (no I/O) for an id no customer can have."""
    if not re.fullmatch(ID_PATTERN, value or ""):
        raise NotFoundError(f"customer {value} not found")
    return value


class RecordRepository(TenantRepository, Generic[RecordT]):
    """A record at `<kind>#<id>` / `ROOT` with its transitions beside it (subclasses name
    the item model, the partition kind and the shape of an id)."""

    model: type[RecordT]
    kind: str
    noun: str
    id_pattern: str

    def check_id(self, record_id: str) -> str:
        """`record_id` itself; 404 (no I/O) for an id no record can have."""
        if not re.fullmatch(self.id_pattern, record_id or ""):
            raise NotFoundError(f"{self.noun} {record_id} not found")
        return record_id

    def partition(self, record_id: str) -> str:
        return self.key(self.kind, record_id)

    def record(self, record_id: str, *, consistent: bool = False) -> RecordT:
        """The record alone: one GetItem."""
        self.check_id(record_id)
        try:
            return self.model.get(self.partition(record_id), ROOT, consistent_read=consistent)
        except self.model.DoesNotExist as exc:
            raise NotFoundError(f"{self.noun} {record_id} not found") from exc

    def with_history(
        self, record_id: str, *, consistent: bool = False
    ) -> tuple[RecordT, list[TransitionItem]]:
        """The record and its newest transitions: one Query."""
        self.check_id(record_id)
        found = read_collection(self.model, self.partition(record_id), consistent=consistent)
        if found is None:
            raise NotFoundError(f"{self.noun} {record_id} not found")
        return found


class CustomerRepository(TenantRepository):
    """Customer items of one tenant; every key is built from the context."""

    def partition(self, customer_id: str) -> str:
        return self.key(CUSTOMER, customer_id)

    def customer(self, customer_id: str, *, consistent: bool = False) -> CustomerItem:
        check_customer_id(customer_id)
        try:
            return CustomerItem.get(self.partition(customer_id), ROOT, consistent_read=consistent)
        except CustomerItem.DoesNotExist as exc:
            raise NotFoundError(f"customer {customer_id} not found") from exc

    def with_history(self, customer_id: str, *, consistent: bool = False) -> Found:
        check_customer_id(customer_id)
        found = read_collection(CustomerItem, self.partition(customer_id), consistent=consistent)
        if found is None:
            raise NotFoundError(f"customer {customer_id} not found")
        return Found(*found)

    def customers(
        self, page: PageRequest, status: str | None = None, *, billing_day: int | None = None
    ) -> Page[CustomerItem]:
        """One page of customers (of one status; of one billing day, filtered)."""
        only_day = None if billing_day is None else CustomerItem.billing_day == billing_day
        if status is None:
            return query_page(
                CustomerItem, self.key(CUSTOMERS), page, index="gsi2", filter_condition=only_day
            )
        return query_page(
            CustomerItem,
            self.key(CUSTOMER_STATUS, status),
            page,
            index="gsi1",
            filter_condition=only_day,
        )


def _seal(ctx: TenantContext, field: str, value: Any) -> str | None:
    """A PII value sealed for the tenant (the address as JSON); None stays None."""
    from dotmac.core import crypto

    if value is None:
        return None
    text = json.dumps(value, sort_keys=True) if field == "address" else str(value)
    return crypto.encrypt(ctx.tenant_id, text)


# --- use cases -----------------------------------------------------------------------------


def create_customer(ctx: TenantContext, body: CustomerCreate) -> Found:
    """A NEW customer, counted against the plan's customer limit in the same transaction."""
    from dotmac.core.retry import until_won
    from dotmac.management import entitlements

    repo = CustomerRepository(ctx)
    data = body.model_dump(mode="json")
    sealed = {field: _seal(ctx, field, data[field]) for field in PII_FIELDS}
    customer_id, now = _new_id(), _now()
    order = f"{now.isoformat(timespec='microseconds')}#{customer_id}"
    partition = repo.partition(customer_id)
    item = CustomerItem(
        partition,
        ROOT,
        GSI1PK=ctx.key(CUSTOMER_STATUS, NEW),
        GSI1SK=order,
        GSI2PK=ctx.key(CUSTOMERS),
        GSI2SK=order,
        name=body.name,
        email_enc=sealed["email"],
        phone_enc=sealed["phone"],
        address_enc=sealed["address"],
        billing_day=body.billing_day,
        billing_mode=body.billing_mode,
        status=NEW,
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

    def attempt() -> None:
        uow = UnitOfWork(ctx)
        uow.put(item, condition=CustomerItem.PK.does_not_exist())
        uow.put(log)
        entitlements.stage_increment(uow, ctx, "customers")
        dashboard.stage_customer(uow, ctx, None, NEW)
        uow.audit("isp.customer.create", "customer", customer_id, after=_sealed_view(item))
        uow.commit()

    until_won(attempt)
    return Found(item, [log], {field: data[field] for field in PII_FIELDS})


def get_customer(ctx: TenantContext, customer_id: str, *, consistent: bool = False) -> Found:
    return CustomerRepository(ctx).with_history(customer_id, consistent=consistent)


def list_customers(
    ctx: TenantContext, page: PageRequest, status: str | None = None
) -> Page[CustomerItem]:
    if status is not None and status not in STATUSES:
        raise ValidationError(
            "invalid status", details=[FieldError("status", f"one of {', '.join(STATUSES)}")]
        )
    return CustomerRepository(ctx).customers(page, status)


def update_customer(ctx: TenantContext, customer_id: str, body: CustomerUpdate) -> Found:
    """Change a customer's profile (not its status: that is a transition)."""
    from dotmac.core.retry import until_won

    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        raise ValidationError("nothing to change", details=[FieldError("", "no fields given")])
    required = ("name", "email", "billing_day", "billing_mode")
    nulls = [f for f in required if f in changes and changes[f] is None]
    if nulls:
        raise ValidationError(
            "required fields cannot be null",
            details=[FieldError(f, "cannot be null") for f in nulls],
        )
    repo = CustomerRepository(ctx)
    check_customer_id(customer_id)
    sealed = {f: _seal(ctx, f, changes[f]) for f in PII_FIELDS if f in changes}
    attributes = {
        "name": CustomerItem.name,
        "billing_day": CustomerItem.billing_day,
        "billing_mode": CustomerItem.billing_mode,
        "email": CustomerItem.email_enc,
        "phone": CustomerItem.phone_enc,
        "address": CustomerItem.address_enc,
    }

    def attempt() -> None:
        item = repo.customer(customer_id, consistent=True)
        before = _sealed_view(item)
        now = _now()
        actions: list[Any] = [CustomerItem.updated_at.set(now), CustomerItem.version.add(1)]
        for field, value in changes.items():
            stored = sealed.get(field, value)
            attribute: Any = attributes[field]
            actions.append(attribute.remove() if stored is None else attribute.set(stored))
            setattr(item, attribute.attr_name, stored)
        uow = UnitOfWork(ctx)
        uow.update(
            CustomerItem(repo.partition(customer_id), ROOT),
            actions,
            condition=CustomerItem.version == int(item.version),
        )
        uow.audit(
            "isp.customer.update", "customer", customer_id, before=before, after=_sealed_view(item)
        )
        uow.commit(conflict="the customer changed meanwhile; retry")

    until_won(attempt)
    return repo.with_history(customer_id, consistent=True)


def stage_transition(
    uow: UnitOfWork, ctx: TenantContext, item: CustomerItem, action: str, reason: str
) -> str:
    """Stage moving the customer `item` (as read) along `ACTIONS[action]` in `uow`: its
    update conditional on the `version` read, the transition record, the audit record
    `isp.customer.<action>` (a later `uow.audit` replaces it) and the dashboard's count.
    Returns the new state; 409 INVALID_STATE when the action is not allowed."""
    target = next_status(item.status, action)
    now = _now()
    partition = str(item.PK)
    uow.update(
        CustomerItem(partition, ROOT),
        [
            CustomerItem.status.set(target),
            CustomerItem.GSI1PK.set(ctx.key(CUSTOMER_STATUS, target)),
            CustomerItem.updated_at.set(now),
            CustomerItem.version.add(1),
        ],
        condition=CustomerItem.version == int(item.version),
    )
    stage_status_change(
        uow,
        partition,
        resource_type="customer",
        resource_id=customer_id(item),
        version=int(item.version) + 1,
        action=action,
        from_status=item.status,
        to_status=target,
        reason=reason,
        at=now,
    )
    dashboard.stage_customer(uow, ctx, item.status, target)
    return target


def transition(ctx: TenantContext, customer_id: str, action: str, body: TransitionRequest) -> Found:
    """Move a customer along `ACTIONS[action]`, recording who and why."""
    from dotmac.core.retry import until_won

    repo = CustomerRepository(ctx)
    check_customer_id(customer_id)

    def attempt() -> None:
        item = repo.customer(customer_id, consistent=True)
        uow = UnitOfWork(ctx)
        stage_transition(uow, ctx, item, action, body.reason)
        uow.commit(conflict="the customer changed meanwhile; retry")

    until_won(attempt)
    return repo.with_history(customer_id, consistent=True)
