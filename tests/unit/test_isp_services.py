"""The pure ISP subscriber rules: service and customer state machines, service numbers,
billing cycles from the billing day (1-28) and the prorated plan-change preview."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.billing.money import Money
from dotmac.core.errors import ConflictError
from dotmac.isp import customers, plans, services
from dotmac.isp.services import (
    ACTIONS,
    ACTIVE,
    CANCELLED,
    MAINTENANCE,
    PENDING,
    SUSPENDED,
    TRANSITIONS,
    can_transition,
    cycle_bounds,
    next_status,
    prorate_change,
    service_number,
)

# --- the service state machine ---------------------------------------------------------------

ALLOWED = {
    (PENDING, ACTIVE),
    (PENDING, CANCELLED),
    (ACTIVE, SUSPENDED),
    (ACTIVE, MAINTENANCE),
    (ACTIVE, CANCELLED),
    (SUSPENDED, ACTIVE),
    (SUSPENDED, CANCELLED),
    (MAINTENANCE, ACTIVE),
}


def test_the_transition_table_is_business_rules_plus_maintenance_back_to_active() -> None:
    states = set(TRANSITIONS)
    assert states == {PENDING, ACTIVE, SUSPENDED, MAINTENANCE, CANCELLED}
    for source in states:
        for target in states:
            assert can_transition(source, target) == ((source, target) in ALLOWED)
    assert TRANSITIONS[CANCELLED] == frozenset()  # terminal


def test_every_action_is_an_edge_and_every_edge_has_an_action() -> None:
    edges = {(s, target) for sources, target in ACTIONS.values() for s in sources}
    assert edges == ALLOWED
    assert next_status(PENDING, "activate") == ACTIVE
    assert next_status(MAINTENANCE, "resume") == ACTIVE
    assert next_status(SUSPENDED, "cancel") == CANCELLED


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (PENDING, "suspend"),
        (PENDING, "resume"),
        (ACTIVE, "activate"),
        (ACTIVE, "resume"),
        (SUSPENDED, "maintenance"),
        (MAINTENANCE, "cancel"),
        (MAINTENANCE, "suspend"),
        (CANCELLED, "activate"),
        (CANCELLED, "cancel"),
    ],
)
def test_a_wrong_transition_is_invalid_state(status: str, action: str) -> None:
    with pytest.raises(ConflictError) as caught:
        next_status(status, action)
    assert caught.value.code == "INVALID_STATE"


def test_customer_states() -> None:
    assert customers.next_status("NEW", "activate") == "ACTIVE"
    assert customers.next_status("ACTIVE", "block") == "BLOCKED"
    assert customers.next_status("BLOCKED", "activate") == "ACTIVE"
    assert customers.next_status("BLOCKED", "deactivate") == "INACTIVE"
    assert customers.next_status("INACTIVE", "activate") == "ACTIVE"
    for status, action in [("NEW", "block"), ("INACTIVE", "block"), ("INACTIVE", "deactivate")]:
        with pytest.raises(ConflictError) as caught:
            customers.next_status(status, action)
        assert caught.value.code == "INVALID_STATE"


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_type", "prefix"),
    [("internet", "INT"), ("phone", "PHN"), ("tv", "TV"), ("bundle", "BDL")],
)
def test_service_numbers(service_type: str, prefix: str) -> None:
    number = service_number(service_type, date(2026, 11, 24))
    assert re.fullmatch(rf"{prefix}-20261124-[0-9a-f]{{6}}", number)
    assert re.fullmatch(services.NUMBER_PATTERN, number)
    assert service_number(service_type, date(2026, 1, 2), "a1b2c3") == f"{prefix}-20260102-a1b2c3"
    with pytest.raises(ValueError):
        service_number(service_type, date(2026, 1, 2), "A1B2C3")


def test_numbers_differ() -> None:
    numbers = {service_number("internet", date(2026, 11, 24)) for _ in range(200)}
    assert len(numbers) > 190  # 6 hex characters: 16.7 million per prefix and day


# --- billing cycles ------------------------------------------------------------------------

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
billing_days = st.integers(min_value=1, max_value=28)
cycles = st.sampled_from([1, 3, 12])


def months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


@given(on=days, billing_day=billing_days, months=cycles, anchor=days)
def test_a_cycle_holds_its_day_and_starts_on_the_billing_day(
    on: date, billing_day: int, months: int, anchor: date
) -> None:
    start, end = cycle_bounds(on, billing_day, months, anchor)
    assert start <= on < end
    assert start.day == end.day == billing_day
    assert months_between(start, end) == months
    # Cycles tile time: the next cycle starts where this one ends.
    assert cycle_bounds(end, billing_day, months, anchor)[0] == end
    assert cycle_bounds(end - timedelta(days=1), billing_day, months, anchor) == (start, end)
    # The anchor's own cycle is one of them.
    anchor_start = cycle_bounds(anchor, billing_day, months, anchor)[0]
    assert months_between(anchor_start, start) % months == 0


@given(on=days, billing_day=billing_days)
def test_a_monthly_cycle_is_28_to_31_days(on: date, billing_day: int) -> None:
    start, end = cycle_bounds(on, billing_day)
    assert 28 <= (end - start).days <= 31


@pytest.mark.parametrize(
    ("on", "billing_day", "expected"),
    [
        (date(2026, 1, 31), 1, (date(2026, 1, 1), date(2026, 2, 1))),
        (date(2026, 2, 28), 28, (date(2026, 2, 28), date(2026, 3, 28))),
        (date(2026, 2, 27), 28, (date(2026, 1, 28), date(2026, 2, 28))),
        (date(2024, 2, 29), 28, (date(2024, 2, 28), date(2024, 3, 28))),  # leap day
        (date(2026, 3, 1), 15, (date(2026, 2, 15), date(2026, 3, 15))),  # 28-day cycle
        (date(2026, 12, 31), 5, (date(2026, 12, 5), date(2027, 1, 5))),  # year end
        (date(2027, 1, 4), 5, (date(2026, 12, 5), date(2027, 1, 5))),
    ],
)
def test_monthly_cycles_across_month_ends(
    on: date, billing_day: int, expected: tuple[date, date]
) -> None:
    assert cycle_bounds(on, billing_day) == expected


def test_quarterly_and_annual_cycles_count_from_the_anchor() -> None:
    anchor = date(2026, 3, 20)  # billing day 10: its cycle starts 2026-03-10
    assert cycle_bounds(date(2026, 5, 9), 10, 3, anchor) == (date(2026, 3, 10), date(2026, 6, 10))
    assert cycle_bounds(date(2026, 6, 10), 10, 3, anchor) == (date(2026, 6, 10), date(2026, 9, 10))
    assert cycle_bounds(date(2027, 3, 9), 10, 12, anchor) == (date(2026, 3, 10), date(2027, 3, 10))
    start, end = cycle_bounds(date(2028, 1, 1), 10, 12, anchor)
    assert (start, end) == (date(2027, 3, 10), date(2028, 3, 10))
    assert (end - start).days == 366  # holds 29 February 2028


def test_cycle_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        cycle_bounds(date(2026, 1, 1), 29)
    with pytest.raises(ValueError):
        cycle_bounds(date(2026, 1, 1), 0)
    with pytest.raises(ValueError):
        cycle_bounds(date(2026, 1, 1), 1, 2)


# --- plan-change proration -----------------------------------------------------------------


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def test_a_mid_cycle_upgrade() -> None:
    # Billing day 1, April (30 days); change on the 11th: 20 of 30 days remain.
    change = prorate_change(
        old_price=usd("30.00"),
        old_months=1,
        new_price=usd("60.00"),
        new_months=1,
        billing_day=1,
        effective=date(2026, 4, 11),
        anchor=date(2026, 1, 15),
    )
    assert change.cycle == (date(2026, 4, 1), date(2026, 5, 1))
    assert (change.credit, change.charge, change.net) == (usd("20.00"), usd("40.00"), usd("20.00"))
    view = change.view()
    assert view["cycle"] == {
        "start": "2026-04-01",
        "end": "2026-05-01",
        "days": 30,
        "remaining_days": 20,
    }
    assert view["net"] == {"amount": "20.00", "currency": "USD"}


def test_rounding_is_half_up_to_the_cent() -> None:
    # 49.99 x 10/31 = 16.1258... -> 16.13 ; 19.99 x 10/31 = 6.4483... -> 6.45
    change = prorate_change(
        old_price=usd("19.99"),
        old_months=1,
        new_price=usd("49.99"),
        new_months=1,
        billing_day=1,
        effective=date(2026, 1, 22),
        anchor=date(2026, 1, 1),
    )
    assert (change.credit, change.charge) == (usd("6.45"), usd("16.13"))
    assert change.net == usd("9.68")
    # A downgrade is a net credit.
    down = prorate_change(
        old_price=usd("49.99"),
        old_months=1,
        new_price=usd("19.99"),
        new_months=1,
        billing_day=1,
        effective=date(2026, 1, 22),
        anchor=date(2026, 1, 1),
    )
    assert down.net == usd("-9.68") and down.net.is_negative()


def test_monthly_to_annual_charges_the_rest_of_the_annual_cycle() -> None:
    change = prorate_change(
        old_price=usd("30.00"),
        old_months=1,
        new_price=usd("365.00"),
        new_months=12,
        billing_day=1,
        effective=date(2026, 7, 1),
        anchor=date(2026, 1, 1),
    )
    assert change.credit == usd("30.00")  # the whole July is unused
    assert change.new_cycle == (date(2026, 1, 1), date(2027, 1, 1))
    assert change.charge == usd("184.00")  # 184 of 365 days


prices = st.decimals(min_value=0, max_value=100_000, places=2).map(lambda d: usd(str(d)))


@given(
    old=prices,
    new=prices,
    billing_day=billing_days,
    old_months=cycles,
    new_months=cycles,
    anchor=days,
    offset=st.integers(min_value=0, max_value=400),
)
def test_proration_properties(
    old: Money,
    new: Money,
    billing_day: int,
    old_months: int,
    new_months: int,
    anchor: date,
    offset: int,
) -> None:
    from dotmac.billing.pricing import prorate

    effective = anchor + timedelta(days=offset)
    change = prorate_change(
        old_price=old,
        old_months=old_months,
        new_price=new,
        new_months=new_months,
        billing_day=billing_day,
        effective=effective,
        anchor=anchor,
    )
    zero = Money.zero("USD")
    assert zero <= change.credit <= old
    assert zero <= change.charge <= new
    assert change.net == change.charge - change.credit
    start, end = change.cycle or (effective, effective)
    assert start <= effective < end
    # The credit is the unused part: used + unused = the price, within a cent of rounding.
    used = prorate(old, start, effective, start, end)
    assert abs((used + change.credit - old).amount) <= Decimal("0.01")
    if effective == start:
        assert change.credit == old
    if old_months == new_months:
        # Same cycle: moving to an equally priced plan costs nothing, and the charge grows
        # with the price.
        same = prorate_change(
            old_price=old,
            old_months=old_months,
            new_price=old,
            new_months=old_months,
            billing_day=billing_day,
            effective=effective,
            anchor=anchor,
        )
        assert same.net.is_zero()
        if old <= new:
            assert change.credit <= change.charge


# --- prices --------------------------------------------------------------------------------


def test_prices_are_exact_decimal_text() -> None:
    assert plans.parse_price("49.99", "USD") == Decimal("49.99")
    assert plans.parse_price("5000", "JPY") == Decimal("5000")
    for bad, currency in [
        ("49.999", "USD"),
        ("1.5", "JPY"),
        ("-1.00", "USD"),
        ("1e3", "USD"),
        ("", "USD"),
        ("99999999", "USD"),
    ]:
        with pytest.raises(ValueError):
            plans.parse_price(bad, currency)
