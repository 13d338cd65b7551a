"""Partners (resellers and referrers): records, referred tenants, lifetime revenue and tiers.

| pattern | call | key condition / key | index |
|---|---|---|---|
| create a partner | TransactWriteItems | put `PARTNER#<pid>`/`META` if absent + audit | table |
| get a partner | GetItem | `PARTNER#<pid>` / `META` | table |
| list partners | Query | `GSI1PK = PARTNER` (sorted by pid) | GSI1 |
| a partner's referred tenants | Query | `GSI2PK = PARTNER#<pid>`: the partner (`#`), then | GSI2 |
| | | its tenants by id (+ GetItem when the index has no partner) | |
| record revenue | GetItem + TransactWriteItems | version-checked put + audit | table |

Commission amounts (rates applied to paid invoices, bonuses, payouts) belong to billing;
this module only knows the tier table of business-rules.md.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

from dotmac.core.errors import ConflictError, NotFoundError, ValidationError
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, query_page
from dotmac.core.tenancy import TenantContext, platform_key

if TYPE_CHECKING:
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management.models import PartnerItem, TenantItem

PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,40}$"
PARTNERS_INDEX_PK = "PARTNER"
PARTNER_SK = "META"
CURRENCY = "USD"
CENTS = Decimal("0.01")
_PARTNER_ID = re.compile(PARTNER_ID_PATTERN)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Tier:
    """A commission tier: the lifetime revenue that reaches it and its rates (fractions)."""

    name: str
    threshold: Decimal
    base_rate: Decimal
    bonus_rate: Decimal


TIERS: tuple[Tier, ...] = (
    Tier("Bronze", Decimal("0.00"), Decimal("0.05"), Decimal("0.00")),
    Tier("Silver", Decimal("50000.00"), Decimal("0.07"), Decimal("0.01")),
    Tier("Gold", Decimal("150000.00"), Decimal("0.10"), Decimal("0.02")),
    Tier("Platinum", Decimal("500000.00"), Decimal("0.12"), Decimal("0.03")),
)


def _decimal(amount: Decimal, what: str) -> Decimal:
    """`amount` itself; TypeError unless a Decimal (float is refused), ValueError if NaN/inf."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise ValueError(f"{what} must be finite, got {amount}")
    return amount


def _money(amount: Decimal, what: str) -> Decimal:
    """`amount` rounded HALF_UP to cents (Decimal only)."""
    return _decimal(amount, what).quantize(CENTS, rounding=ROUND_HALF_UP)


def tier_for(lifetime_revenue: Decimal) -> Tier:
    """The highest tier whose threshold `lifetime_revenue` reaches (Decimal only)."""
    revenue = _decimal(lifetime_revenue, "lifetime revenue")
    if revenue < 0:
        raise ValueError(f"lifetime revenue cannot be negative, got {revenue}")
    reached = TIERS[0]
    for tier in TIERS:
        if revenue >= tier.threshold:
            reached = tier
    return reached


def next_tier(lifetime_revenue: Decimal) -> Tier | None:
    """The tier after the one `lifetime_revenue` reaches, or None at the top."""
    index = TIERS.index(tier_for(lifetime_revenue))
    return TIERS[index + 1] if index + 1 < len(TIERS) else None


def revenue_to_next_tier(lifetime_revenue: Decimal) -> Decimal | None:
    """How much more lifetime revenue reaches the next tier (None at the top)."""
    upcoming = next_tier(lifetime_revenue)
    if upcoming is None:
        return None
    return _money(upcoming.threshold - lifetime_revenue, "revenue to next tier")


class PartnerCreate(BaseModel):
    """Body of `POST /api/v1/platform/partners`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: EmailStr
    partner_id: Annotated[str, StringConstraints(pattern=PARTNER_ID_PATTERN)] | None = None


def generate_partner_id(name: str) -> str:
    """A slug of `name` plus random hex (matches PARTNER_ID_PATTERN)."""
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:32].strip("-")
    candidate = f"{slug}-{secrets.token_hex(3)}" if slug else f"partner-{secrets.token_hex(4)}"
    return candidate if _PARTNER_ID.fullmatch(candidate) else f"partner-{secrets.token_hex(4)}"


def partner_pk(partner_id: str) -> str:
    """`PARTNER#<pid>`; NotFoundError (no I/O) for an id no partner can have."""
    if not _PARTNER_ID.fullmatch(partner_id):
        raise NotFoundError(f"partner {partner_id} not found")
    return platform_key("PARTNER", partner_id)


def partner_id_of(item: PartnerItem) -> str:
    """The partner id of a partner record."""
    return item.PK.split("#", 1)[1]


def partner_view(item: PartnerItem) -> dict[str, Any]:
    """The API view: the record, its tier, rates and the revenue still needed for the next."""
    revenue = Decimal(item.lifetime_revenue)
    tier = tier_for(revenue)
    upcoming = next_tier(revenue)
    needed = revenue_to_next_tier(revenue)
    return {
        "partner_id": partner_id_of(item),
        "name": item.name,
        "email": item.email,
        "status": item.status,
        "currency": CURRENCY,
        "lifetime_revenue": str(_money(revenue, "lifetime revenue")),
        "tier": tier.name,
        "base_rate": str(tier.base_rate),
        "bonus_rate": str(tier.bonus_rate),
        "next_tier": upcoming.name if upcoming else None,
        "next_tier_threshold": str(upcoming.threshold) if upcoming else None,
        "revenue_to_next_tier": str(needed) if needed is not None else None,
        "commission_earned": item.commission_earned,
        "commission_paid_out": item.commission_paid_out,
        "created_at": item.created_at.isoformat(),
        "version": item.version,
    }


def create_partner(ctx: TenantContext, data: PartnerCreate) -> PartnerItem:
    """Create a partner: one TransactWriteItems (conditional put + audit); 409 if it exists."""
    from dotmac.core.model import ensure_bound
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management.models import REFERRALS_HEAD_SK, PartnerItem

    ensure_bound()
    attempts = 1 if data.partner_id else 3  # a generated id may (very rarely) collide
    for attempt in range(attempts):
        partner_id = data.partner_id or generate_partner_id(data.name)
        item = PartnerItem(
            partner_pk(partner_id),
            PARTNER_SK,
            GSI1PK=PARTNERS_INDEX_PK,
            GSI1SK=partner_id,
            GSI2PK=partner_pk(partner_id),
            GSI2SK=REFERRALS_HEAD_SK,
            name=data.name,
            email=str(data.email),
            status="ACTIVE",
            lifetime_revenue="0.00",
            created_at=datetime.now(UTC),
        )
        uow = UnitOfWork(ctx)
        uow.put(item, condition=PartnerItem.PK.does_not_exist())
        uow.audit("platform.partner.create", "partner", partner_id, after=partner_view(item))
        try:
            uow.commit(conflict=f"partner {partner_id} already exists")
        except ConflictError:
            if attempt + 1 == attempts:
                raise
            continue
        return item
    raise AssertionError("unreachable")  # pragma: no cover


def get_partner(partner_id: str) -> PartnerItem:
    """One GetItem (strongly consistent); NotFoundError if there is none."""
    from dotmac.core.model import ensure_bound
    from dotmac.management.models import PartnerItem

    pk = partner_pk(partner_id)
    ensure_bound()
    try:
        return PartnerItem.get(pk, PARTNER_SK, consistent_read=True)
    except PartnerItem.DoesNotExist as exc:
        raise NotFoundError(f"partner {partner_id} not found") from exc


def list_partners(page: PageRequest) -> Page[PartnerItem]:
    """One page of partners ordered by id: one Query on GSI1."""
    from dotmac.management.models import PartnerItem

    return query_page(PartnerItem, PARTNERS_INDEX_PK, page, index="gsi1")


def referred_tenants(partner_id: str, page: PageRequest) -> Page[TenantItem]:
    """One page of the tenants `partner_id` referred (404 for no such partner): one Query on
    GSI2, whose first page starts with the partner itself.

    A first page without the partner (none, or not in the index yet) reads the partner record
    too. A later page is bound to the partition its cursor came from, which only a page of an
    existing partner issued (partners are never deleted).
    """
    from dotmac.management.repository import partner_tenants

    partner_pk(partner_id)  # an impossible id is a 404 before any I/O
    partner, tenants = partner_tenants(partner_id, page)
    if partner is None and page.cursor is None:
        get_partner(partner_id)
    return tenants


def record_revenue(ctx: TenantContext, partner_id: str, amount: Decimal) -> PartnerItem:
    """Add `amount` (a positive Decimal, rounded HALF_UP to cents) to lifetime revenue.

    Read-modify-write under optimistic locking: a GetItem, then a TransactWriteItems that
    saves only if `version` is unchanged (with the audit record); a lost race re-reads and
    retries, so concurrent calls lose no update. Calls: 2 per attempt.
    """
    from dotmac.core.retry import until_won
    from dotmac.core.unit_of_work import UnitOfWork

    added = _money(amount, "amount")
    if added <= 0:
        raise ValidationError("revenue to record must be positive")

    def attempt() -> PartnerItem:
        item = get_partner(partner_id)
        uow = UnitOfWork(ctx)
        before = stage_revenue(uow, item, added)
        uow.audit(
            "platform.partner.record_revenue",
            "partner",
            partner_id,
            before={"lifetime_revenue": str(before)},
            after={"lifetime_revenue": item.lifetime_revenue},
        )
        uow.commit(conflict=f"partner {partner_id} changed concurrently")
        return item

    return until_won(attempt)


def stage_revenue(
    uow: UnitOfWork, item: PartnerItem, revenue: Decimal, commission: Decimal = Decimal(0)
) -> Decimal:
    """Stage adding `revenue` to the partner's lifetime revenue (and `commission` to what it
    earned) into `uow`, conditional on the version read; returns the revenue before."""
    before = Decimal(item.lifetime_revenue)
    item.lifetime_revenue = str(_money(before + revenue, "lifetime revenue"))
    earned = Decimal(item.commission_earned) + commission
    item.commission_earned = str(_money(earned, "commission earned"))
    uow.put(item)
    return before
