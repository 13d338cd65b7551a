"""The dunning ladder's and commissions' pure rules, and the billing request bodies."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pydantic
import pytest

from dotmac.billing.commissions import months_between
from dotmac.billing.dunning import DEFAULT_LADDER, due_steps, late_fee
from dotmac.billing.money import Money
from dotmac.billing.schemas import AccountSettings, LateFeeSetting, PaymentRequest


def test_due_steps_are_the_untaken_ones_whose_day_has_come() -> None:
    assert due_steps(DEFAULT_LADDER, 0, 0) == []
    assert due_steps(DEFAULT_LADDER, 0, 1) == [(0, "remind")]
    assert due_steps(DEFAULT_LADDER, 1, 1) == []
    assert due_steps(DEFAULT_LADDER, 1, 20) == [(1, "remind"), (2, "late_fee")]
    assert due_steps(DEFAULT_LADDER, 0, 365) == [
        (0, "remind"),
        (1, "remind"),
        (2, "late_fee"),
        (3, "suspend"),
    ]
    assert due_steps(DEFAULT_LADDER, 4, 365) == []


def test_late_fees_are_flat_or_a_share_rounded_half_up() -> None:
    overdue = Money("447.05", "USD")
    assert late_fee({"kind": "flat", "amount": "25.00"}, overdue) == Money("25.00", "USD")
    assert late_fee({"kind": "percent", "rate": "0.10"}, overdue) == Money("44.71", "USD")
    assert late_fee({"kind": "percent", "rate": "0.015"}, Money("1.00", "JPY")) == Money("0", "JPY")


def test_months_active_count_calendar_months_from_the_start() -> None:
    start = date(2026, 1, 31)
    periods = ("2026-01", "2026-02", "2026-12", "2027-01", "2028-01")
    assert [months_between(start, p) for p in periods] == [0, 1, 11, 12, 24]


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "flat"},
        {"kind": "flat", "amount": "5", "rate": "0.1"},
        {"kind": "percent", "amount": "5"},
        {"kind": "percent", "rate": "1.5"},
        {"kind": "weekly", "amount": "5"},
    ],
)
def test_a_late_fee_is_flat_with_an_amount_or_percent_with_a_rate(body: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        LateFeeSetting.model_validate(body)


def test_a_ladder_must_be_in_day_order_and_amounts_positive() -> None:
    with pytest.raises(pydantic.ValidationError):
        AccountSettings.model_validate(
            {
                "dunning": [
                    {"after_days": 9, "action": "remind"},
                    {"after_days": 2, "action": "suspend"},
                ]
            }
        )
    with pytest.raises(pydantic.ValidationError):
        AccountSettings.model_validate({"dunning": [{"after_days": 1, "action": "block"}]})
    for amount in ("0", "-1", "NaN", "Infinity", "1e20"):
        with pytest.raises(pydantic.ValidationError):
            PaymentRequest.model_validate({"amount": amount})
    assert PaymentRequest.model_validate({"amount": "12.5"}).amount == Decimal("12.5")
