"""Money: Decimal only, HALF_UP to minor units, one currency per sum, exact allocation, rates."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.billing.money import (
    CurrencyMismatchError,
    ExchangeRate,
    MissingRateError,
    Money,
    RateTable,
    allocate,
    minor_units,
    sum_money,
    zero,
)

CURRENCIES = ["USD", "EUR", "GBP", "NGN", "KES", "JPY", "BHD", "KWD"]


def amounts(currency: str = "USD") -> st.SearchStrategy[Money]:
    """Money in `currency` between -1e9 and 1e9 at the currency's precision."""
    places = minor_units(currency)
    return st.decimals(
        min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=places, allow_nan=False
    ).map(lambda value: Money(value, currency))


raw_decimals = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False
)


# --- construction and quantisation ------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("12.3", "USD", "12.30"),
        ("1.005", "USD", "1.01"),  # HALF_UP, not banker's rounding
        ("1.015", "EUR", "1.02"),
        ("2.675", "GBP", "2.68"),
        ("-1.005", "USD", "-1.01"),  # ties away from zero
        ("-0.004", "USD", "0.00"),  # no negative zero
        ("0.125", "NGN", "0.13"),
        ("99.995", "KES", "100.00"),
        ("1234.5", "JPY", "1235"),
        ("1234.4", "JPY", "1234"),
        ("1.0005", "BHD", "1.001"),
        ("1.0004", "KWD", "1.000"),
        ("7", "XYZ", "7.00"),  # unlisted currency: 2 places
        (5, "USD", "5.00"),
        (Decimal("3.14159"), "USD", "3.14"),
        (" 4.5 ", "USD", "4.50"),
    ],
)
def test_quantised_half_up_to_minor_unit(
    amount: Decimal | int | str, currency: str, expected: str
) -> None:
    money = Money(amount, currency)
    assert money.to_json() == {"amount": expected, "currency": currency}
    assert money.amount == Decimal(expected)


def test_float_and_bool_refused() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "USD")
    with pytest.raises(TypeError):
        Money("1.00", "USD") * 1.5


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "abc", ""])
def test_non_numbers_refused(amount: str) -> None:
    with pytest.raises(ValueError):
        Money(amount, "USD")


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "", "12$"])
def test_bad_currency_refused(currency: str) -> None:
    with pytest.raises(ValueError):
        Money("1", currency)


def test_frozen_and_hashable() -> None:
    money = Money("1.50", "USD")
    with pytest.raises(AttributeError):
        money.amount = Decimal(2)  # type: ignore[misc]
    assert {money, Money("1.5", "USD")} == {money}
    assert Money("1.50", "USD") != Money("1.50", "EUR")


@given(st.sampled_from(CURRENCIES), raw_decimals)
def test_quantisation_idempotent(currency: str, value: Decimal) -> None:
    once = Money(value, currency)
    assert Money(once.amount, currency) == once
    assert Money(once.to_json()["amount"], currency) == once
    assert abs(once.amount - value) <= once.minor_unit / 2
    assert -once.amount.as_tuple().exponent == minor_units(currency)  # type: ignore[operator]


# --- arithmetic -----------------------------------------------------------------------


@given(st.sampled_from(CURRENCIES).flatmap(lambda c: st.tuples(amounts(c), amounts(c), amounts(c))))
def test_addition_associative_and_commutative(triple: tuple[Money, Money, Money]) -> None:
    a, b, c = triple
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + zero(a.currency) == a
    assert (a - b) + b == a
    assert a - a == zero(a.currency)
    negated = -a
    assert -negated == a


@given(amounts("USD"), amounts("EUR"))
def test_currency_mismatch_raises(usd: Money, eur: Money) -> None:
    for operation in (
        lambda: usd + eur,
        lambda: usd - eur,
        lambda: usd < eur,
        lambda: usd >= eur,
        lambda: sum_money([usd, eur], "USD"),
        lambda: sum_money([eur], "USD"),
    ):
        with pytest.raises(CurrencyMismatchError):
            operation()
    assert issubclass(CurrencyMismatchError, ValueError)


def test_multiplication_rounds_half_up() -> None:
    assert Money("10.00", "USD") * Decimal("0.0725") == Money("0.73", "USD")  # 0.725
    assert Money("0.05", "USD") * Decimal("0.5") == Money("0.03", "USD")  # 0.025
    assert Money("-0.05", "USD") * Decimal("0.5") == Money("-0.03", "USD")
    assert 3 * Money("1.10", "USD") == Money("3.30", "USD")
    assert Money("333", "JPY") * Decimal("0.5") == Money("167", "JPY")


@given(amounts("USD"), st.decimals(min_value=-1000, max_value=1000, places=4, allow_nan=False))
def test_multiplication_within_half_a_unit(money: Money, factor: Decimal) -> None:
    product = money * factor
    assert abs(product.amount - money.amount * factor) <= Decimal("0.005")


def test_comparisons_and_helpers() -> None:
    small, big = Money("1.00", "USD"), Money("2.00", "USD")
    assert small < big <= big and big > small >= small
    assert max(small, big) == big
    assert zero("USD").is_zero() and not small.is_zero()
    assert Money.zero("JPY") == Money(0, "JPY")
    assert Money("-5.00", "USD").clamp_zero() == zero("USD")
    assert small.clamp_zero() == small
    assert Money("-5.00", "USD").is_negative()
    assert abs(Money("-5.00", "USD")) == Money("5.00", "USD")
    assert sum_money([], "EUR") == zero("EUR")
    assert sum_money([small, big, -small], "USD") == big
    assert str(Money("12.3", "USD")) == "12.30 USD"


# --- JSON -----------------------------------------------------------------------------


@given(st.sampled_from(CURRENCIES).flatmap(amounts))
def test_json_round_trip(money: Money) -> None:
    data = money.to_json()
    assert isinstance(data["amount"], str)
    assert "E" not in data["amount"]
    assert Money.from_json(data) == money


@pytest.mark.parametrize(
    "data",
    [
        {"amount": 12.3, "currency": "USD"},
        {"amount": "12.30"},
        {"amount": "12.30", "currency": "USD", "extra": 1},
        {"amount": "x", "currency": "USD"},
        {"amount": "1", "currency": "usd"},
    ],
)
def test_from_json_rejects_bad_input(data: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        Money.from_json(data)


def test_json_examples() -> None:
    assert Money("12.3", "USD").to_json() == {"amount": "12.30", "currency": "USD"}
    assert Money("1000000", "JPY").to_json() == {"amount": "1000000", "currency": "JPY"}
    assert Money("0", "KWD").to_json() == {"amount": "0.000", "currency": "KWD"}


# --- allocation -----------------------------------------------------------------------


def test_allocate_examples() -> None:
    usd = Money("100.00", "USD")
    assert allocate(usd, [Decimal(1)] * 3) == [
        Money("33.34", "USD"),
        Money("33.33", "USD"),
        Money("33.33", "USD"),
    ]
    assert allocate(Money("0.05", "USD"), [Decimal(1), Decimal(2)]) == [
        Money("0.02", "USD"),
        Money("0.03", "USD"),
    ]
    assert allocate(Money("10", "JPY"), [Decimal("0.7"), Decimal("0.3")]) == [
        Money("7", "JPY"),
        Money("3", "JPY"),
    ]
    assert allocate(Money("-10.00", "USD"), [Decimal(1)] * 3) == [
        Money("-3.34", "USD"),
        Money("-3.33", "USD"),
        Money("-3.33", "USD"),
    ]
    assert allocate(usd, [Decimal(0), Decimal(1)]) == [zero("USD"), usd]


@pytest.mark.parametrize("weights", [[], [Decimal(0)], [Decimal(-1), Decimal(2)]])
def test_allocate_rejects_bad_weights(weights: list[Decimal]) -> None:
    with pytest.raises(ValueError):
        allocate(Money("1.00", "USD"), weights)


def test_allocate_rejects_float_weights() -> None:
    with pytest.raises(TypeError):
        allocate(Money("1.00", "USD"), [0.5, 0.5])  # type: ignore[list-item]


@given(
    st.sampled_from(CURRENCIES).flatmap(amounts),
    st.lists(
        st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False), min_size=1, max_size=12
    ).filter(lambda ws: sum(ws) > 0),
)
def test_allocate_sums_exactly_and_stays_within_a_unit_of_the_share(
    total: Money, weights: list[Decimal]
) -> None:
    parts = allocate(total, weights)
    assert len(parts) == len(weights)
    assert sum_money(parts, total.currency) == total
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = total.amount * weight / weight_sum
        assert abs(part.amount - exact) < total.minor_unit


@given(st.sampled_from(CURRENCIES).flatmap(amounts), st.integers(min_value=1, max_value=50))
def test_allocate_equal_weights_differ_by_at_most_one_unit(total: Money, count: int) -> None:
    parts = allocate(total, [Decimal(1)] * count)
    assert sum_money(parts, total.currency) == total
    assert max(parts).amount - min(parts).amount <= total.minor_unit


# --- exchange rates -------------------------------------------------------------------


def _table() -> RateTable:
    return RateTable.of(
        [
            ExchangeRate("USD", "NGN", date(2026, 1, 1), Decimal("1500")),
            ExchangeRate("USD", "NGN", date(2026, 2, 1), Decimal("1550.5")),
            ExchangeRate("EUR", "USD", date(2026, 1, 15), Decimal("1.0875")),
            ExchangeRate("USD", "JPY", date(2026, 1, 1), Decimal("155.55")),
        ]
    )


def test_convert_uses_latest_rate_on_or_before() -> None:
    table = _table()
    ten = Money("10.00", "USD")
    assert table.convert(ten, "NGN", date(2026, 1, 1)) == Money("15000.00", "NGN")
    assert table.convert(ten, "NGN", date(2026, 1, 31)) == Money("15000.00", "NGN")
    assert table.convert(ten, "NGN", date(2026, 2, 1)) == Money("15505.00", "NGN")
    assert table.convert(ten, "NGN", date(2030, 1, 1)) == Money("15505.00", "NGN")
    # 10.01 x 1.0875 = 10.885875 -> 10.89; 1.00 x 155.55 -> 156 (0 places, HALF_UP)
    eur = Money("10.01", "EUR")
    assert table.convert(eur, "USD", date(2026, 1, 15)) == Money("10.89", "USD")
    assert table.convert(Money("1.00", "USD"), "JPY", date(2026, 3, 1)) == Money("156", "JPY")
    assert table.convert(ten, "USD", date(2000, 1, 1)) == ten


def test_convert_without_a_rate_raises() -> None:
    table = _table()
    with pytest.raises(MissingRateError):
        table.convert(Money("1", "USD"), "NGN", date(2025, 12, 31))
    with pytest.raises(MissingRateError):  # no implicit inverse
        table.convert(Money("1", "NGN"), "USD", date(2026, 3, 1))
    with pytest.raises(MissingRateError):
        table.convert(Money("1", "GBP"), "USD", date(2026, 3, 1))


def test_rate_table_validation() -> None:
    table = _table()
    with pytest.raises(ValueError):  # conflicting rate for the same day
        table.add(ExchangeRate("USD", "NGN", date(2026, 1, 1), Decimal("1")))
    table.add(ExchangeRate("USD", "NGN", date(2026, 1, 1), Decimal("1500")))  # same: no-op
    with pytest.raises(ValueError):
        ExchangeRate("USD", "NGN", date(2026, 1, 1), Decimal("0"))
    with pytest.raises(ValueError):
        ExchangeRate("USD", "USD", date(2026, 1, 1), Decimal("1"))
    with pytest.raises(TypeError):
        ExchangeRate("USD", "NGN", date(2026, 1, 1), 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        table.convert(Money("1", "USD"), "NGN", datetime(2026, 1, 1))


@given(
    st.lists(
        st.tuples(
            st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
            st.decimals(min_value=Decimal("0.0001"), max_value=10000, places=4, allow_nan=False),
        ),
        min_size=1,
        max_size=20,
        unique_by=lambda entry: entry[0],
    ),
    st.dates(min_value=date(2019, 1, 1), max_value=date(2031, 1, 1)),
)
def test_rate_is_latest_on_or_before(entries: list[tuple[date, Decimal]], on: date) -> None:
    table = RateTable.of(ExchangeRate("USD", "EUR", day, rate) for day, rate in entries)
    eligible = [entry for entry in entries if entry[0] <= on]
    if not eligible:
        with pytest.raises(MissingRateError):
            table.rate("USD", "EUR", on)
    else:
        assert table.rate("USD", "EUR", on) == max(eligible)[1]
