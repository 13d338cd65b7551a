"""Subscriber billing's pure rules: how far a service is invoiced on a day (prepaid ahead,
postpaid behind) and the cycle-by-cycle prorated charges."""

from __future__ import annotations

from datetime import date

import pytest

from dotmac.billing.money import Money
from dotmac.isp.subscriber_billing import billed_until, charges

PRICE = Money("30.00", "USD")


@pytest.mark.parametrize(
    ("mode", "as_of", "expected"),
    [
        ("prepaid", date(2026, 4, 10), date(2026, 4, 15)),  # the current cycle's end
        ("prepaid", date(2026, 4, 15), date(2026, 5, 15)),  # billing day: the cycle ahead
        ("postpaid", date(2026, 4, 10), date(2026, 3, 15)),  # the current cycle's start
        ("postpaid", date(2026, 4, 15), date(2026, 4, 15)),  # billing day: the one that ended
    ],
)
def test_billed_until_is_ahead_for_prepaid_and_behind_for_postpaid(
    mode: str, as_of: date, expected: date
) -> None:
    assert billed_until(mode, as_of, 15, 1, date(2026, 3, 20)) == expected


def test_a_first_partial_cycle_is_prorated_by_days() -> None:
    (charge,) = charges(
        price=PRICE,
        months=1,
        billing_day=15,
        anchor=date(2026, 4, 10),
        since=date(2026, 4, 10),
        until=date(2026, 4, 15),
    )
    # 5 of the 31 days of [2026-03-15, 2026-04-15)
    assert (charge.cycle_start, charge.cycle_end) == (date(2026, 3, 15), date(2026, 4, 15))
    assert charge.amount == Money("4.84", "USD")


def test_a_missed_run_catches_up_one_charge_per_cycle() -> None:
    found = charges(
        price=PRICE,
        months=1,
        billing_day=1,
        anchor=date(2026, 1, 20),
        since=date(2026, 1, 20),
        until=date(2026, 4, 1),
    )
    assert [(c.start, c.end) for c in found] == [
        (date(2026, 1, 20), date(2026, 2, 1)),
        (date(2026, 2, 1), date(2026, 3, 1)),
        (date(2026, 3, 1), date(2026, 4, 1)),
    ]
    # 12 of January's 31 days, then two whole months
    assert [c.amount for c in found] == [Money("11.61", "USD"), PRICE, PRICE]


def test_quarterly_cycles_are_counted_from_the_start() -> None:
    found = charges(
        price=Money("90.00", "USD"),
        months=3,
        billing_day=1,
        anchor=date(2026, 2, 1),
        since=date(2026, 2, 1),
        until=date(2026, 8, 1),
    )
    assert [(c.start, c.end, c.amount) for c in found] == [
        (date(2026, 2, 1), date(2026, 5, 1), Money("90.00", "USD")),
        (date(2026, 5, 1), date(2026, 8, 1), Money("90.00", "USD")),
    ]


def test_nothing_is_charged_for_an_empty_span() -> None:
    day = date(2026, 4, 1)
    assert charges(price=PRICE, months=1, billing_day=1, anchor=day, since=day, until=day) == []
