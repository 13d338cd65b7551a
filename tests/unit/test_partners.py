"""Partner tiers: exact boundaries, Decimal only, next-tier figures, the create schema."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pydantic
import pytest

from dotmac.management.models import PartnerItem
from dotmac.management.partners import (
    PARTNER_ID_PATTERN,
    TIERS,
    PartnerCreate,
    Tier,
    generate_partner_id,
    next_tier,
    partner_view,
    revenue_to_next_tier,
    tier_for,
)


@pytest.mark.parametrize(
    ("revenue", "tier"),
    [
        ("0", "Bronze"),
        ("0.00", "Bronze"),
        ("49999.99", "Bronze"),
        ("49999.999", "Bronze"),  # below the threshold even if it would round up to it
        ("50000", "Silver"),
        ("50000.00", "Silver"),
        ("149999.99", "Silver"),
        ("150000.00", "Gold"),
        ("499999.99", "Gold"),
        ("500000.00", "Platinum"),
        ("12345678.90", "Platinum"),
    ],
)
def test_tier_boundaries(revenue: str, tier: str) -> None:
    assert tier_for(Decimal(revenue)).name == tier


def test_tier_table_matches_the_business_rules() -> None:
    assert (
        Tier("Bronze", Decimal("0"), Decimal("0.05"), Decimal("0")),
        Tier("Silver", Decimal("50000"), Decimal("0.07"), Decimal("0.01")),
        Tier("Gold", Decimal("150000"), Decimal("0.10"), Decimal("0.02")),
        Tier("Platinum", Decimal("500000"), Decimal("0.12"), Decimal("0.03")),
    ) == TIERS
    for tier in TIERS:
        for field in (tier.threshold, tier.base_rate, tier.bonus_rate):
            assert isinstance(field, Decimal)


@pytest.mark.parametrize("value", [50000.0, 50000, "50000", None, True])
def test_only_decimals_are_accepted(value: object) -> None:
    with pytest.raises(TypeError, match="Decimal"):
        tier_for(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Decimal"):
        revenue_to_next_tier(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-0.01"])
def test_non_finite_or_negative_revenue_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        tier_for(Decimal(value))


@pytest.mark.parametrize(
    ("revenue", "upcoming", "needed"),
    [
        ("0", "Silver", "50000.00"),
        ("49999.99", "Silver", "0.01"),
        ("50000.00", "Gold", "100000.00"),
        ("149999.99", "Gold", "0.01"),
        ("150000.00", "Platinum", "350000.00"),
        ("499999.99", "Platinum", "0.01"),
        ("1234.565", "Silver", "48765.44"),  # 48765.435 rounds HALF_UP
    ],
)
def test_next_tier_figures(revenue: str, upcoming: str, needed: str) -> None:
    following = next_tier(Decimal(revenue))
    assert following is not None and following.name == upcoming
    gap = revenue_to_next_tier(Decimal(revenue))
    assert gap == Decimal(needed) and str(gap) == needed


@pytest.mark.parametrize("revenue", ["500000.00", "999999999.99"])
def test_platinum_has_no_next_tier(revenue: str) -> None:
    assert next_tier(Decimal(revenue)) is None
    assert revenue_to_next_tier(Decimal(revenue)) is None


def _item(revenue: str) -> PartnerItem:
    """A partner record in memory (no table needed)."""
    return PartnerItem(
        "PARTNER#acme-resellers",
        "META",
        name="Acme Resellers",
        email="ops@acme.example",
        status="ACTIVE",
        lifetime_revenue=revenue,
        commission_earned="120.50",
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
        version=3,
    )


def test_partner_view_reports_tier_rates_and_the_gap() -> None:
    view = partner_view(_item("150000.00"))
    assert view == {
        "partner_id": "acme-resellers",
        "name": "Acme Resellers",
        "email": "ops@acme.example",
        "status": "ACTIVE",
        "currency": "USD",
        "lifetime_revenue": "150000.00",
        "tier": "Gold",
        "base_rate": "0.10",
        "bonus_rate": "0.02",
        "next_tier": "Platinum",
        "next_tier_threshold": "500000.00",
        "revenue_to_next_tier": "350000.00",
        "commission_earned": "120.50",
        "commission_paid_out": "0.00",
        "created_at": "2026-01-02T00:00:00+00:00",
        "version": 3,
    }
    top = partner_view(_item("500000.00"))
    assert (top["tier"], top["next_tier"], top["revenue_to_next_tier"]) == ("Platinum", None, None)


def test_partner_create_validates_slug_and_email() -> None:
    body = PartnerCreate(name="  Acme  ", email="ops@acme.example", partner_id="acme-1")
    assert (body.name, body.partner_id) == ("Acme", "acme-1")
    assert PartnerCreate(name="Acme", email="ops@acme.example").partner_id is None
    for bad in ("Acme", "-acme", "a", "a" * 42, "acme_1", "acme#1"):
        with pytest.raises(pydantic.ValidationError):
            PartnerCreate(name="Acme", email="ops@acme.example", partner_id=bad)
    with pytest.raises(pydantic.ValidationError):
        PartnerCreate(name="Acme", email="not-an-email")
    with pytest.raises(pydantic.ValidationError):
        PartnerCreate(name="", email="ops@acme.example")
    with pytest.raises(pydantic.ValidationError):
        PartnerCreate(name="Acme", email="ops@acme.example", extra="x")  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["Acme Resellers Ltd.", "  ", "ÜBER 🚀", "x" * 300, "a"])
def test_generated_partner_ids_are_valid_slugs(name: str) -> None:
    import re

    pid = generate_partner_id(name)
    assert re.fullmatch(PARTNER_ID_PATTERN, pid), pid
