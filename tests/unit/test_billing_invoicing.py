"""Which app was billed under which plan, when: reconstructed from the subscription log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from dotmac.billing.invoicing import Segment, lines_for, period_bounds, segments
from dotmac.billing.runs import previous_period
from dotmac.core.errors import ValidationError

NOVEMBER = (date(2026, 11, 1), date(2026, 12, 1))


@dataclass(frozen=True)
class Event:
    app: str
    action: str
    at: datetime
    previous_plan: str | None = None


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def test_period_bounds_and_bad_periods() -> None:
    assert period_bounds("2026-11") == NOVEMBER
    assert period_bounds("2024-02") == (date(2024, 2, 1), date(2024, 3, 1))
    for bad in ("2026-13", "2026-1", "26-11", "2026-11-01", ""):
        with pytest.raises(ValidationError):
            period_bounds(bad)


def test_previous_period_is_the_month_before() -> None:
    assert previous_period(date(2026, 1, 15)) == "2025-12"
    assert previous_period(date(2026, 3, 1)) == "2026-02"


def test_a_subscription_from_before_the_period_is_billed_in_full() -> None:
    events = [Event("isp", "subscribed", at(3, 10))]
    assert segments(events, "starter", *NOVEMBER) == [
        Segment("isp", "starter", date(2026, 11, 1), date(2026, 12, 1))
    ]


def test_mid_period_subscribe_and_unsubscribe_are_prorated() -> None:
    events = [
        Event("crm", "subscribed", at(11)),
        Event("isp", "subscribed", at(1, 9)),
        Event("isp", "unsubscribed", at(16)),
    ]
    found = segments(sorted(events, key=lambda e: e.at), "professional", *NOVEMBER)
    assert found == [
        Segment("crm", "professional", date(2026, 11, 11), date(2026, 12, 1)),
        Segment("isp", "professional", date(2026, 11, 1), date(2026, 11, 16)),
    ]
    amounts = [str(line.amount.amount) for line in lines_for(found, *NOVEMBER)]
    assert amounts == ["99.33", "74.50"]  # 20/30 and 15/30 of 149.00


def test_a_plan_change_splits_the_month_between_the_plans() -> None:
    events = [
        Event("isp", "subscribed", at(1, 8)),
        Event("*", "plan_changed", at(21), previous_plan="starter"),
    ]
    found = segments(events, "professional", *NOVEMBER)
    assert found == [
        Segment("isp", "starter", date(2026, 11, 1), date(2026, 11, 21)),
        Segment("isp", "professional", date(2026, 11, 21), date(2026, 12, 1)),
    ]
    amounts = [str(line.amount.amount) for line in lines_for(found, *NOVEMBER)]
    assert amounts == ["32.67", "49.67"]  # 20/30 of 49.00 and 10/30 of 149.00


def test_a_later_plan_change_tells_the_plan_of_the_period() -> None:
    events = [
        Event("crm", "subscribed", at(1, 8)),
        Event("*", "plan_changed", at(5, 12), previous_plan="enterprise"),
    ]
    assert [s.plan for s in segments(events, "starter", *NOVEMBER)] == ["enterprise"]


def test_nothing_subscribed_is_nothing_to_bill() -> None:
    events = [Event("crm", "subscribed", at(1, 8)), Event("crm", "unsubscribed", at(2, 10))]
    assert segments(events, "starter", *NOVEMBER) == []
    assert segments([Event("crm", "subscribed", at(3, 12))], "starter", *NOVEMBER) == []
