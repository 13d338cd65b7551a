"""Pricing: proration by days, exclusive/inclusive/compound taxes, discounts, invoice
totals and partner commissions, with hand-computed figures and properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dotmac.billing.money import CurrencyMismatchError, Money, sum_money, zero
from dotmac.billing.pricing import (
    MIN_PAYOUT,
    Discount,
    InvoiceLine,
    TaxRate,
    apply_taxes,
    commission,
    commission_rate,
    payable,
    price_invoice,
    prorate,
)
from dotmac.management.partners import TIERS, tier_for

D = Decimal
VAT = TaxRate("VAT", D("0.10"))
LEVY = TaxRate("Levy", D("0.05"), compound=True)


def usd(amount: str) -> Money:
    return Money(amount, "USD")


money_amounts = st.decimals(min_value=0, max_value=D("1e7"), places=2, allow_nan=False).map(
    lambda value: Money(value, "USD")
)
rates = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False)
tax_rates = st.builds(
    TaxRate, name=st.sampled_from(["A", "B", "C"]), rate=rates, compound=st.booleans()
)


@st.composite
def periods(draw: st.DrawFn) -> tuple[date, date]:
    """A monthly or annual billing period [start, end)."""
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1)))
    if draw(st.booleans()):
        month_start = start.replace(day=1)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        return month_start, next_month
    return start.replace(month=1, day=1), start.replace(year=start.year + 1, month=1, day=1)


# --- proration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "start", "end", "period", "expected"),
    [
        # 30 of 31 days of 49.00 = 47.419... -> 47.42
        (
            "49.00",
            date(2026, 1, 2),
            date(2026, 2, 1),
            (date(2026, 1, 1), date(2026, 2, 1)),
            "47.42",
        ),
        # 14 of 28 days (February 2026)
        (
            "49.00",
            date(2026, 2, 15),
            date(2026, 3, 1),
            (date(2026, 2, 1), date(2026, 3, 1)),
            "24.50",
        ),
        # 1 of 29 days (February 2028, leap): 100/29 = 3.448 -> 3.45
        (
            "100.00",
            date(2028, 2, 1),
            date(2028, 2, 2),
            (date(2028, 2, 1), date(2028, 3, 1)),
            "3.45",
        ),
        # 1 of 30 days of 0.15 = 0.005 -> 0.01 (HALF_UP)
        ("0.15", date(2026, 4, 30), date(2026, 5, 1), (date(2026, 4, 1), date(2026, 5, 1)), "0.01"),
        # annual: 100 of 365 days of 1000.00 = 273.972... -> 273.97
        (
            "1000.00",
            date(2026, 1, 1),
            date(2026, 4, 11),
            (date(2026, 1, 1), date(2027, 1, 1)),
            "273.97",
        ),
        # annual leap: 100 of 366 days = 273.224... -> 273.22
        (
            "1000.00",
            date(2028, 1, 1),
            date(2028, 4, 10),
            (date(2028, 1, 1), date(2029, 1, 1)),
            "273.22",
        ),
        # clipped: the range starts before and ends after the period -> the full amount
        (
            "49.00",
            date(2025, 12, 1),
            date(2026, 3, 1),
            (date(2026, 1, 1), date(2026, 2, 1)),
            "49.00",
        ),
        # clipped on one side: Jan 20 .. Feb 10 inside January = 12 of 31 -> 18.967 -> 18.97
        (
            "49.00",
            date(2026, 1, 20),
            date(2026, 2, 10),
            (date(2026, 1, 1), date(2026, 2, 1)),
            "18.97",
        ),
        # entirely outside -> zero; empty range -> zero
        ("49.00", date(2026, 3, 1), date(2026, 3, 5), (date(2026, 1, 1), date(2026, 2, 1)), "0.00"),
        ("49.00", date(2026, 1, 5), date(2026, 1, 5), (date(2026, 1, 1), date(2026, 2, 1)), "0.00"),
    ],
)
def test_prorate_examples(
    amount: str, start: date, end: date, period: tuple[date, date], expected: str
) -> None:
    assert prorate(usd(amount), start, end, *period) == usd(expected)


def test_prorate_other_currencies_and_credits() -> None:
    jan = (date(2026, 1, 1), date(2026, 2, 1))
    # 10 of 31 days of 5000 JPY = 1612.9 -> 1613
    assert prorate(Money("5000", "JPY"), date(2026, 1, 1), date(2026, 1, 11), *jan) == Money(
        "1613", "JPY"
    )
    assert prorate(usd("-49.00"), date(2026, 1, 2), date(2026, 2, 1), *jan) == usd("-47.42")


def test_prorate_rejects_bad_ranges() -> None:
    jan = (date(2026, 1, 1), date(2026, 2, 1))
    with pytest.raises(ValueError):
        prorate(usd("1"), date(2026, 1, 5), date(2026, 1, 4), *jan)
    with pytest.raises(ValueError):
        prorate(usd("1"), date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 1), date(2026, 1, 1))
    with pytest.raises(TypeError):
        prorate(usd("1"), datetime(2026, 1, 5), date(2026, 1, 6), *jan)


@given(money_amounts, periods())
def test_prorate_full_period_is_the_amount(amount: Money, period: tuple[date, date]) -> None:
    assert prorate(amount, *period, *period) == amount


@given(money_amounts, periods(), st.data())
def test_prorate_monotonic_in_days(
    amount: Money, period: tuple[date, date], data: st.DataObject
) -> None:
    start, end = period
    length = (end - start).days
    fewer = data.draw(st.integers(min_value=0, max_value=length))
    more = data.draw(st.integers(min_value=fewer, max_value=length))
    used_fewer = prorate(amount, start, start + timedelta(days=fewer), start, end)
    used_more = prorate(amount, start, start + timedelta(days=more), start, end)
    assert zero("USD") <= used_fewer <= used_more <= amount


@given(money_amounts, periods(), st.data())
def test_prorations_over_a_partition_sum_to_the_amount(
    amount: Money, period: tuple[date, date], data: st.DataObject
) -> None:
    start, end = period
    length = (end - start).days
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=length - 1), max_size=10))
    bounds = [start, *(start + timedelta(days=cut) for cut in sorted(set(cuts))), end]
    parts = [prorate(amount, a, b, start, end) for a, b in pairwise(bounds)]
    difference = abs(sum_money(parts, "USD").amount - amount.amount)
    assert difference <= len(parts) * D("0.01")


# --- taxes ----------------------------------------------------------------------------


def test_exclusive_simple_then_compound() -> None:
    # VAT 10% on 100.00 = 10.00; Levy 5% compound on 110.00 = 5.50
    result = apply_taxes(usd("100.00"), [VAT, LEVY], inclusive=False)
    assert result.net == usd("100.00")
    assert result.taxes == [("VAT", usd("10.00")), ("Levy", usd("5.50"))]
    assert result.gross == usd("115.50")
    assert result.tax_total == usd("15.50")


def test_exclusive_simple_only() -> None:
    simple = TaxRate("Levy", D("0.05"))
    result = apply_taxes(usd("100.00"), [VAT, simple], inclusive=False)
    assert result.gross == usd("115.00")
    # order matters for compound taxes: compound first sees only the net
    first = apply_taxes(usd("100.00"), [LEVY, VAT], inclusive=False)
    assert first.taxes == [("Levy", usd("5.00")), ("VAT", usd("10.00"))]


def test_inclusive_backs_out_the_net() -> None:
    result = apply_taxes(usd("115.50"), [VAT, LEVY], inclusive=True)
    assert result.net == usd("100.00")
    assert result.taxes == [("VAT", usd("10.00")), ("Levy", usd("5.50"))]
    assert result.gross == usd("115.50")


def test_inclusive_rounding_remainder_goes_on_the_net() -> None:
    # At 10%, a net of 0.94 grosses 1.03 (tax 0.094 -> 0.09) and 0.95 grosses 1.05
    # (0.095 -> 0.10): no net grosses 1.04. The taxes of the largest net not overshooting
    # (0.94 -> 0.09) are kept and the remainder lands on the net: 1.04 - 0.09 = 0.95.
    ten = TaxRate("T", D("0.10"))
    result = apply_taxes(usd("1.04"), [ten], inclusive=True)
    assert result.taxes == [("T", usd("0.09"))]
    assert result.net == usd("0.95")
    assert result.net + result.tax_total == result.gross == usd("1.04")


def test_no_taxes_and_zero() -> None:
    assert apply_taxes(usd("9.99"), [], inclusive=True).net == usd("9.99")
    assert apply_taxes(usd("9.99"), [], inclusive=False).gross == usd("9.99")
    assert apply_taxes(usd("0"), [VAT, LEVY], inclusive=True).gross == usd("0")


def test_tax_rate_validation() -> None:
    with pytest.raises(ValueError):
        TaxRate("X", D("1.01"))
    with pytest.raises(ValueError):
        TaxRate("X", D("-0.01"))
    with pytest.raises(TypeError):
        TaxRate("X", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TaxRate("", D("0.1"))


@given(money_amounts, st.lists(tax_rates, max_size=4))
def test_exclusive_then_inclusive_round_trip(net: Money, taxes: list[TaxRate]) -> None:
    exclusive = apply_taxes(net, taxes, inclusive=False)
    assert exclusive.net + exclusive.tax_total == exclusive.gross
    inclusive = apply_taxes(exclusive.gross, taxes, inclusive=True)
    assert inclusive.net == net
    assert inclusive.taxes == exclusive.taxes


@given(money_amounts, st.lists(tax_rates, max_size=4))
def test_inclusive_parts_sum_exactly_and_reapply_within_rounding(
    gross: Money, taxes: list[TaxRate]
) -> None:
    result = apply_taxes(gross, taxes, inclusive=True)
    assert result.gross == gross
    assert result.net + result.tax_total == gross
    assert zero("USD") <= result.net <= gross
    again = apply_taxes(result.net, taxes, inclusive=False)
    # With F = gross/net unrounded and k taxes, the remainder r put on the net is at most a
    # step of the exclusive gross (<= F + k units) and re-taxing it adds (F - 1) r plus up to
    # k rounding units: |miss| <= (F - 1)(F + k) + k minor units.
    factor = Fraction(1)
    for tax in taxes:
        factor += Fraction(tax.rate) * (factor if tax.compound else 1)
    k = len(taxes)
    miss = abs(again.gross.amount - gross.amount) / D("0.01")
    assert miss <= (factor - 1) * (factor + k) + k


@given(st.decimals(min_value=0, max_value=D("1e7"), places=2, allow_nan=False))
def test_inclusive_reapplies_within_two_units_at_realistic_rates(amount: Decimal) -> None:
    # the bound above for 10% + compound 5%: 0.155 x 3.155 + 2 = 2.49 -> 2 cents
    gross = usd(str(amount))
    result = apply_taxes(gross, [VAT, LEVY], inclusive=True)
    again = apply_taxes(result.net, [VAT, LEVY], inclusive=False)
    assert abs(again.gross.amount - gross.amount) <= D("0.02")


@given(
    st.decimals(min_value=1000, max_value=D("1e7"), places=2, allow_nan=False),
    st.lists(
        st.decimals(min_value=D("0.05"), max_value=1, places=4, allow_nan=False),
        min_size=2,
        max_size=4,
    ),
)
def test_compound_exceeds_simple_for_the_same_rates(amount: Decimal, values: list[Decimal]) -> None:
    net = usd(str(amount))
    simple = [TaxRate(f"T{i}", value) for i, value in enumerate(values)]
    compound = [TaxRate(f"T{i}", value, compound=i > 0) for i, value in enumerate(values)]
    simple_gross = apply_taxes(net, simple, inclusive=False).gross
    compound_gross = apply_taxes(net, compound, inclusive=False).gross
    assert compound_gross > simple_gross
    # and for any rates and amounts, compounding never lowers the gross
    assert (
        apply_taxes(net, compound, inclusive=True).net
        <= apply_taxes(net, simple, inclusive=True).net
    )


# --- discounts and invoices -------------------------------------------------------------


def test_discounts() -> None:
    assert Discount("percent", D("0.15")).amount_off(usd("49.99")) == usd("7.50")  # 7.4985
    assert Discount("fixed", usd("5.00")).amount_off(usd("3.00")) == usd("3.00")  # capped
    assert Discount("fixed", usd("5.00")).amount_off(usd("30.00")) == usd("5.00")
    assert Discount("percent", D("1")).amount_off(usd("30.00")) == usd("30.00")
    with pytest.raises(CurrencyMismatchError):
        Discount("fixed", Money("5", "EUR")).amount_off(usd("30.00"))
    for kind, value in (
        ("percent", D("1.5")),
        ("percent", D("-0.1")),
        ("fixed", usd("-1")),
        ("other", D("0.1")),
    ):
        with pytest.raises(ValueError):
            Discount(kind, value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Discount("fixed", D("5"))
    with pytest.raises(TypeError):
        Discount("percent", 0.1)  # type: ignore[arg-type]


def test_price_invoice_exclusive_example() -> None:
    lines = [
        # 3 x 19.99 = 59.97, 10% off = 6.00 (5.997)
        InvoiceLine("Seats", D(3), usd("19.99"), Discount("percent", D("0.10"))),
        # 1.5 x 10.00 = 15.00, 20.00 off capped at 15.00
        InvoiceLine("Overage", D("1.5"), usd("10.00"), Discount("fixed", usd("20.00"))),
        InvoiceLine("Support", D(1), usd("46.03")),
    ]
    totals = price_invoice(lines, [VAT, LEVY], inclusive=False, currency="USD")
    assert totals.subtotal == usd("121.00")
    assert totals.discount_total == usd("21.00")
    # taxable 100.00 -> VAT 10.00, Levy 5.50
    assert totals.tax_lines == [("VAT", usd("10.00")), ("Levy", usd("5.50"))]
    assert totals.total == usd("115.50")
    assert totals.net == usd("100.00")


def test_price_invoice_inclusive_example() -> None:
    lines = [InvoiceLine("Plan", D(1), usd("115.50"))]
    totals = price_invoice(lines, [VAT, LEVY], inclusive=True, currency="USD")
    assert totals.subtotal == usd("115.50")
    assert totals.tax_lines == [("VAT", usd("10.00")), ("Levy", usd("5.50"))]
    assert totals.total == usd("115.50")
    assert totals.net == usd("100.00")


def test_price_invoice_empty_and_mismatch() -> None:
    empty = price_invoice([], [VAT], inclusive=False, currency="EUR")
    assert empty.total == zero("EUR") and empty.subtotal == zero("EUR")
    with pytest.raises(CurrencyMismatchError):
        price_invoice(
            [InvoiceLine("x", D(1), Money("1", "EUR"))], [VAT], inclusive=False, currency="USD"
        )
    with pytest.raises(CurrencyMismatchError):
        price_invoice(
            [InvoiceLine("x", D(1), usd("10"), Discount("fixed", Money("1", "EUR")))],
            [],
            inclusive=False,
            currency="USD",
        )


def test_invoice_line_validation() -> None:
    with pytest.raises(ValueError):
        InvoiceLine("x", D(-1), usd("1"))
    with pytest.raises(ValueError):
        InvoiceLine("x", D(1), usd("-1"))
    with pytest.raises(TypeError):
        InvoiceLine("x", 1.5, usd("1"))  # type: ignore[arg-type]


discounts = st.one_of(
    st.none(),
    st.builds(Discount, kind=st.just("percent"), value=rates),
    st.builds(Discount, kind=st.just("fixed"), value=money_amounts),
)
invoice_lines = st.builds(
    InvoiceLine,
    description=st.just("line"),
    quantity=st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False),
    unit_price=st.decimals(min_value=0, max_value=10000, places=2, allow_nan=False).map(
        lambda value: Money(value, "USD")
    ),
    discount=discounts,
)


@given(st.lists(invoice_lines, max_size=8), st.lists(tax_rates, max_size=3), st.booleans())
def test_invoice_totals_never_negative_and_consistent(
    lines: list[InvoiceLine], taxes: list[TaxRate], inclusive: bool
) -> None:
    totals = price_invoice(lines, taxes, inclusive=inclusive, currency="USD")
    nothing = zero("USD")
    assert totals.subtotal >= nothing
    assert nothing <= totals.discount_total <= totals.subtotal
    assert all(amount >= nothing for _, amount in totals.tax_lines)
    assert totals.total >= nothing
    assert totals.net >= nothing
    taxable = totals.subtotal - totals.discount_total
    if inclusive:
        assert totals.total == taxable
    else:
        assert totals.total == taxable + totals.tax_total


# --- commissions ----------------------------------------------------------------------


def test_tier_rates_come_from_partners() -> None:
    silver = tier_for(D("50000"))
    assert (silver.base_rate, silver.bonus_rate) == (D("0.07"), D("0.01"))
    rate = commission_rate(
        silver.base_rate, silver.bonus_rate, months_active=3, new_customer_first_month=False
    )
    assert rate == D("0.08")


@pytest.mark.parametrize(
    ("revenue", "months", "first_month", "expected_rate"),
    [
        ("0", 3, False, "0.05"),  # Bronze 5%
        ("0", 0, True, "0.075"),  # Bronze 5% + 50% of 5%
        ("0", 12, False, "0.0525"),  # Bronze 5% + 5% of 5%
        ("0", 24, False, "0.055"),  # Bronze 5% + 10% of 5% (not cumulative)
        ("150000", 0, True, "0.17"),  # Gold 10% x 1.5 + 2%
        ("150000", 11, False, "0.12"),  # Gold 10% + 2%, no contract bonus yet
        ("150000", 24, False, "0.13"),  # Gold 10% x 1.1 + 2%
        ("500000", 36, True, "0.222"),  # Platinum 12% x 1.6 + 3%
    ],
)
def test_commission_rate_examples(
    revenue: str, months: int, first_month: bool, expected_rate: str
) -> None:
    tier = tier_for(D(revenue))
    rate = commission_rate(
        tier.base_rate, tier.bonus_rate, months_active=months, new_customer_first_month=first_month
    )
    assert rate == D(expected_rate)


def test_commission_amounts() -> None:
    gold = tier_for(D("150000"))
    # 17% of 299.99 = 50.9983 -> 51.00
    assert commission(usd("299.99"), gold, months_active=0, new_customer_first_month=True) == usd(
        "51.00"
    )
    bronze = TIERS[0]
    # 5.25% of 10.10 = 0.53025 -> 0.53
    assert commission(
        usd("10.10"), bronze, months_active=12, new_customer_first_month=False
    ) == usd("0.53")
    assert commission(
        Money("1000", "JPY"), bronze, months_active=0, new_customer_first_month=False
    ) == Money("50", "JPY")


def test_commission_rate_over_half_is_an_error() -> None:
    with pytest.raises(ValueError):
        commission_rate(D("0.30"), D("0.10"), months_active=0, new_customer_first_month=True)
    with pytest.raises(ValueError):
        commission_rate(D("0.40"), D("0.11"), months_active=0, new_customer_first_month=False)
    # exactly 50% is allowed
    assert commission_rate(
        D("0.40"), D("0.10"), months_active=0, new_customer_first_month=False
    ) == D("0.50")


def test_commission_rate_validation() -> None:
    with pytest.raises(ValueError):
        commission_rate(D("0.05"), D("0"), months_active=-1, new_customer_first_month=False)
    with pytest.raises(TypeError):
        commission_rate(0.05, D("0"), months_active=1, new_customer_first_month=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        commission_rate(D("-0.05"), D("0"), months_active=1, new_customer_first_month=False)


@given(
    st.sampled_from(TIERS),
    st.integers(min_value=0, max_value=120),
    st.booleans(),
    money_amounts,
)
def test_every_tier_rate_is_valid_and_commission_bounded(
    tier: object, months: int, first_month: bool, amount: Money
) -> None:
    from dotmac.management.partners import Tier

    assert isinstance(tier, Tier)
    rate = commission_rate(
        tier.base_rate, tier.bonus_rate, months_active=months, new_customer_first_month=first_month
    )
    assert tier.base_rate + tier.bonus_rate <= rate <= D("0.50")
    earned = commission(amount, tier, months_active=months, new_customer_first_month=first_month)
    assert zero("USD") <= earned <= amount
    assume(amount.amount > 0)
    more = commission(
        amount + usd("1.00"), tier, months_active=months, new_customer_first_month=first_month
    )
    assert more >= earned


def test_payable_threshold() -> None:
    assert usd("50.00") == MIN_PAYOUT
    assert payable(usd("50.00"))
    assert payable(usd("1000"))
    assert not payable(usd("49.99"))
    assert not payable(usd("-10"))
    with pytest.raises(CurrencyMismatchError):
        payable(Money("100", "EUR"))
