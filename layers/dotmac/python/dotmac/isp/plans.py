"""ISP service plans: speed, price and billing cycle, counted against the plan limit.

Rules (business-rules.md, ISP and "Money and invoices"):
- A price is a Decimal in the plan's currency, given as text with no more decimals than the
  currency's minor unit (`"49.99"` USD; a float or `"49.999"` is a 400), never negative.
- Billing cycle monthly, quarterly or annual (1, 3 or 12 months from the customer's billing
  day). Service type internet, phone, tv or bundle (it names the prefix of the numbers of the
  services on the plan).
- A service records the plan's price when it is created or moved to the plan: a later price
  change applies to new services and plan changes only.
- Creating a plan counts one more "service_plans" against the tenant's plan limit in the same
  transaction; deleting one counts one fewer. A plan with services that are not cancelled
  cannot be deleted (409 PLAN_IN_USE): its `services` counter moves in the transactions that
  create, cancel or move services, and the delete is conditional on it being 0.

All keys below are inside the tenant's space (`T#<tid>#...`):

| pattern | calls | key condition / what is written (index) |
|---|---|---|
| create | GetItem, TransactWriteItems | `ISP_PLAN` / `<id>` if absent, usage counter `USAGE` / |
| | | `service_plans` (read first, conditional), audit |
| get, list | GetItem, Query | `ISP_PLAN` / `<id>` (table) |
| update | GetItem, TransactWriteItems | the plan if `version` unchanged, audit |
| delete | GetItem, GetItem, | the plan if `services = 0`, the usage counter, audit |
| | TransactWriteItems | |
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from dotmac.core.errors import ConflictError, FieldError, NotFoundError, ValidationError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, TenantRepository, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp.models import PlanItem

PLAN = "ISP_PLAN"
ID_PATTERN = r"^[0-9a-f]{16}$"
CYCLE_MONTHS = {"monthly": 1, "quarterly": 3, "annual": 12}
SERVICE_TYPES = ("internet", "phone", "tv", "bundle")
MAX_PRICE = Decimal("1000000")

ServiceType = Literal["internet", "phone", "tv", "bundle"]
BillingCycle = Literal["monthly", "quarterly", "annual"]
Speed = Annotated[StrictInt, Field(ge=1, le=1_000_000)]  # Mbit/s
PlanName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


def parse_price(text: str, currency: str) -> Decimal:
    """`text` as an amount of `currency`: ValueError if not a plain, non-negative number with
    at most the currency's decimals (never rounded silently)."""
    from dotmac.billing.money import Money

    if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,4})?", text):
        raise ValueError('must be a non-negative decimal number as text, e.g. "49.99"')
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already refuses it
        raise ValueError("not a number") from exc
    if value > MAX_PRICE:
        raise ValueError(f"must be at most {MAX_PRICE}")
    if Money(value, currency).amount != value:
        raise ValueError(f"has more decimals than {currency} allows")
    return value


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PlanName
    service_type: ServiceType = "internet"
    download_mbps: Speed | None = None
    upload_mbps: Speed | None = None
    currency: Currency = "USD"  # before `price`: its validator reads it
    price: StrictStr
    billing_cycle: BillingCycle = "monthly"
    description: Text | None = None

    @field_validator("price")
    @classmethod
    def _price(cls, value: str, info: ValidationInfo) -> str:
        currency = info.data.get("currency")
        return value if currency is None else str(parse_price(value, currency))


class PlanUpdate(BaseModel):
    """What a plan may change; its currency, cycle and type are fixed (services rely on them)."""

    model_config = ConfigDict(extra="forbid")

    name: PlanName | None = None
    download_mbps: Speed | None = None
    upload_mbps: Speed | None = None
    price: StrictStr | None = None
    description: Text | None = None


def money_view(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def plan_view(item: PlanItem) -> dict[str, Any]:
    return {
        "name": item.name,
        "service_type": item.service_type,
        "download_mbps": None if item.download_mbps is None else int(item.download_mbps),
        "upload_mbps": None if item.upload_mbps is None else int(item.upload_mbps),
        "price": money_view(item.price, item.currency),
        "billing_cycle": item.billing_cycle,
        "description": item.description,
        "services": int(item.services or 0),
        "created_at": item.created_at.isoformat(),
        "updated_at": item.updated_at.isoformat(),
    }


def _id_or_404(value: str) -> str:
    if not re.fullmatch(ID_PATTERN, value or ""):
        raise NotFoundError(f"service plan {value} not found")
    return value


class PlanRepository(TenantRepository):
    """Service plans of one tenant."""

    def plan_key(self, plan_id: str) -> tuple[str, str]:
        return self.key(PLAN), plan_id

    def plan(self, plan_id: str, *, consistent: bool = False) -> PlanItem:
        _id_or_404(plan_id)
        try:
            return PlanItem.get(*self.plan_key(plan_id), consistent_read=consistent)
        except PlanItem.DoesNotExist as exc:
            raise NotFoundError(f"service plan {plan_id} not found") from exc

    def plans(self, page: PageRequest) -> Page[PlanItem]:
        return query_page(PlanItem, self.key(PLAN), page)


def _now() -> datetime:
    return datetime.now(UTC)


def create_plan(ctx: TenantContext, body: PlanCreate) -> PlanItem:
    """A new plan, counted against the tenant's service-plan limit in the same transaction."""
    from dotmac.core.retry import until_won
    from dotmac.management import entitlements

    repo = PlanRepository(ctx)
    plan_id, now = uuid.uuid4().hex[:16], _now()
    item = PlanItem(
        *repo.plan_key(plan_id),
        name=body.name,
        service_type=body.service_type,
        download_mbps=body.download_mbps,
        upload_mbps=body.upload_mbps,
        price=body.price,
        currency=body.currency,
        billing_cycle=body.billing_cycle,
        description=body.description,
        services=0,
        version=1,
        created_at=now,
        updated_at=now,
    )

    def attempt() -> None:
        uow = UnitOfWork(ctx)
        uow.put(item, condition=PlanItem.PK.does_not_exist())
        entitlements.stage_increment(uow, ctx, "service_plans")
        uow.audit("isp.service_plan.create", "service_plan", plan_id, after=plan_view(item))
        uow.commit()

    until_won(attempt)
    return item


def get_plan(ctx: TenantContext, plan_id: str) -> PlanItem:
    return PlanRepository(ctx).plan(plan_id)


def list_plans(ctx: TenantContext, page: PageRequest) -> Page[PlanItem]:
    return PlanRepository(ctx).plans(page)


def update_plan(ctx: TenantContext, plan_id: str, body: PlanUpdate) -> PlanItem:
    """Change a plan's name, speeds, price or description (not what its services pay)."""
    from dotmac.core.retry import until_won

    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise ValidationError("nothing to change", details=[FieldError("", "no fields given")])
    nulls = [f for f in ("name", "price") if f in changes and changes[f] is None]
    if nulls:
        raise ValidationError(
            "required fields cannot be null",
            details=[FieldError(f, "cannot be null") for f in nulls],
        )
    repo = PlanRepository(ctx)
    _id_or_404(plan_id)
    fields: dict[str, Any] = {
        "name": PlanItem.name,
        "download_mbps": PlanItem.download_mbps,
        "upload_mbps": PlanItem.upload_mbps,
        "price": PlanItem.price,
        "description": PlanItem.description,
    }
    found: list[PlanItem] = []

    def attempt() -> None:
        item = repo.plan(plan_id, consistent=True)
        if "price" in changes:
            try:
                changes["price"] = str(parse_price(changes["price"], item.currency))
            except ValueError as exc:
                raise ValidationError(
                    "invalid price", details=[FieldError("price", str(exc))]
                ) from None
        before = plan_view(item)
        now = _now()
        actions: list[Any] = [PlanItem.updated_at.set(now), PlanItem.version.add(1)]
        for field, value in changes.items():
            attribute = fields[field]
            actions.append(attribute.remove() if value is None else attribute.set(value))
            setattr(item, field, value)
        item.updated_at = now
        uow = UnitOfWork(ctx)
        uow.update(
            PlanItem(*repo.plan_key(plan_id)),
            actions,
            condition=PlanItem.version == int(item.version),
        )
        uow.audit(
            "isp.service_plan.update", "service_plan", plan_id, before=before, after=plan_view(item)
        )
        uow.commit(conflict="the plan changed meanwhile; retry")
        item.version = int(item.version) + 1
        found[:] = [item]

    until_won(attempt)
    return found[0]


def delete_plan(ctx: TenantContext, plan_id: str) -> None:
    """Delete a plan no service uses (else 409 PLAN_IN_USE), counting one plan fewer."""
    from dotmac.core.retry import until_won
    from dotmac.management import entitlements

    repo = PlanRepository(ctx)

    def attempt() -> None:
        item = repo.plan(plan_id, consistent=True)
        if int(item.services or 0):
            raise ConflictError(
                f"{int(item.services)} services are on this plan; move or cancel them first",
                code="PLAN_IN_USE",
            )
        uow = UnitOfWork(ctx)
        uow.delete(item, condition=PlanItem.PK.exists() & (PlanItem.services == 0))
        entitlements.stage_decrement(uow, ctx, "service_plans")
        uow.audit("isp.service_plan.delete", "service_plan", plan_id, before=plan_view(item))
        uow.commit(conflict="the plan changed meanwhile; retry")

    until_won(attempt)
