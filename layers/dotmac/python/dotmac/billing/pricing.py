"""Pricing: proration, taxes, discounts, invoice totals and partner commissions (pure).

Rules (business-rules.md, "Money and invoices" and "Partner commissions"):

- Proration is days used / days in the cycle. Every date range here is half-open:
  `[start, end)` and `[period_start, period_end)`, i.e. the end dates are *exclusive*. A
  monthly cycle for March is `[2026-03-01, 2026-04-01)` (31 days); an annual cycle is
  `[2026-01-01, 2027-01-01)` (365 days, 366 when it holds 29 February).
- Tax and discount rates are Decimals in [0, 1]; compound taxes apply to the net plus the
  (rounded) taxes listed before them; totals are never below 0.
- Commission tiers live in `dotmac.management.partners` (`TIERS`, `tier_for`); this module
  only turns a tier's rates into an effective rate and an amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from dotmac.billing.money import CurrencyMismatchError, Money, sum_money

if TYPE_CHECKING:
    from dotmac.management.partners import Tier

MAX_COMMISSION_RATE = Decimal("0.50")
NEW_CUSTOMER_BONUS = Decimal("0.50")  # of the first month's base commission
CONTRACT_BONUSES: tuple[tuple[int, Decimal], ...] = (  # (months active, share of base)
    (24, Decimal("0.10")),
    (12, Decimal("0.05")),
)
MIN_PAYOUT = Money("50.00", "USD")
# Walking to the exact inclusive net never needs more than a few minor units; this only
# guards against a bug turning the walk into an endless loop.
_MAX_INCLUSIVE_STEPS = 10_000


def _rate(value: object, what: str) -> Decimal:
    """`value` if it is a Decimal in [0, 1] (float refused)."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{what} must be a Decimal, not {type(value).__name__}")
    if not value.is_finite() or not Decimal(0) <= value <= Decimal(1):
        raise ValueError(f"{what} must be in [0, 1], got {value}")
    return value


def _plain_date(value: object, what: str) -> date:
    """`value` if it is a date (a datetime is refused: proration counts whole days)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{what} must be a date, not {type(value).__name__}")
    return value


# --- proration ------------------------------------------------------------------------


def prorate(amount: Money, start: date, end: date, period_start: date, period_end: date) -> Money:
    """`amount` x days of [start, end) inside [period_start, period_end) / days of the period."""
    for value, what in (
        (start, "start"),
        (end, "end"),
        (period_start, "period_start"),
        (period_end, "period_end"),
    ):
        _plain_date(value, what)
    if period_end <= period_start:
        raise ValueError(f"empty billing period [{period_start}, {period_end})")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    period_days = (period_end - period_start).days
    used_days = max(0, (min(end, period_end) - max(start, period_start)).days)
    if used_days == 0:
        return Money.zero(amount.currency)
    if used_days == period_days:
        return amount
    return amount * Fraction(used_days, period_days)


# --- taxes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaxRate:
    """A named tax; a compound tax applies to the net plus the taxes listed before it."""

    name: str
    rate: Decimal
    compound: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError("a tax needs a name")
        _rate(self.rate, f"tax rate {self.name!r}")


@dataclass(frozen=True)
class TaxResult:
    """Net, the tax lines in the order given, and gross (net + taxes == gross exactly)."""

    net: Money
    taxes: list[tuple[str, Money]]
    gross: Money

    @property
    def tax_total(self) -> Money:
        """The sum of the tax lines."""
        return sum_money((amount for _, amount in self.taxes), self.net.currency)


def _exclusive_taxes(net: Money, rates: Sequence[TaxRate]) -> list[tuple[str, Money]]:
    """Each tax on `net` (compound ones on net + the rounded taxes before them)."""
    lines: list[tuple[str, Money]] = []
    so_far = Money.zero(net.currency)
    for tax in rates:
        base = net + so_far if tax.compound else net
        amount = base * tax.rate
        lines.append((tax.name, amount))
        so_far = so_far + amount
    return lines


def _gross_factor(rates: Sequence[TaxRate]) -> Fraction:
    """gross / net with no rounding: 1 + simple rates + compound rates on what precedes them."""
    taxes = Fraction(0)
    for tax in rates:
        rate = Fraction(tax.rate)
        taxes += rate * (1 + taxes) if tax.compound else rate
    return 1 + taxes


def _gross_of(net: Money, rates: Sequence[TaxRate]) -> Money:
    """`net` plus its exclusive taxes."""
    return sum_money((amount for _, amount in _exclusive_taxes(net, rates)), net.currency) + net


def apply_taxes(net: Money, rates: Sequence[TaxRate], *, inclusive: bool) -> TaxResult:
    """Taxes on `net` (exclusive), or, when `inclusive`, `net` is the gross to split."""
    for tax in rates:
        if not isinstance(tax, TaxRate):
            raise TypeError(f"taxes must be TaxRate, not {type(tax).__name__}")
    if not inclusive:
        lines = _exclusive_taxes(net, rates)
        gross = net + sum_money((amount for _, amount in lines), net.currency)
        return TaxResult(net=net, taxes=lines, gross=gross)
    gross = net
    # Start from gross / factor and walk (by minor units) to the largest net whose exclusive
    # gross does not exceed `gross`: the exclusive gross grows by at least one minor unit
    # per unit of net, so when some net reproduces `gross` exactly it is found.
    step = Money(gross.minor_unit, gross.currency)
    below = gross * (1 / _gross_factor(rates))
    for _ in range(_MAX_INCLUSIVE_STEPS):
        if _gross_of(below, rates) >= gross:
            break
        below = below + step
    for _ in range(_MAX_INCLUSIVE_STEPS):
        if _gross_of(below, rates) <= gross:
            break
        below = below - step
    # When no net reproduces `gross`, the taxes come from a net next to it and the rounding
    # remainder stays on the net (net + taxes == gross exactly); of the neighbours, keep the
    # one whose net, taxed again, lands closest to `gross` (an exact net always wins).
    best: tuple[tuple[Decimal, Decimal, int], TaxResult] | None = None
    for offset in (0, 1, -1, 2, -2):
        base = below + step * offset
        lines = _exclusive_taxes(base, rates)
        backed_out = gross - sum_money((amount for _, amount in lines), gross.currency)
        miss = abs((_gross_of(backed_out, rates) - gross).amount)
        rank = (miss, abs((_gross_of(base, rates) - gross).amount), abs(offset))
        if best is None or rank < best[0]:
            best = (rank, TaxResult(net=backed_out, taxes=lines, gross=gross))
    assert best is not None
    return best[1]


# --- discounts and invoices -------------------------------------------------------------


@dataclass(frozen=True)
class Discount:
    """A line discount: `percent` (Decimal in [0, 1]) or `fixed` (a Money amount >= 0)."""

    kind: Literal["percent", "fixed"]
    value: Decimal | Money

    def __post_init__(self) -> None:
        if self.kind == "percent":
            _rate(self.value, "discount percent")
        elif self.kind == "fixed":
            if not isinstance(self.value, Money):
                raise TypeError(f"a fixed discount is Money, not {type(self.value).__name__}")
            if self.value.is_negative():
                raise ValueError(f"a fixed discount cannot be negative, got {self.value}")
        else:
            raise ValueError(f"discount kind must be 'percent' or 'fixed', got {self.kind!r}")

    def amount_off(self, amount: Money) -> Money:
        """How much comes off `amount` (never more than `amount`, never below 0)."""
        ceiling = amount.clamp_zero()
        if isinstance(self.value, Money):
            off = self.value
            if off.currency != amount.currency:
                raise CurrencyMismatchError(
                    f"discount in {off.currency} on an amount in {amount.currency}"
                )
        else:
            off = ceiling * self.value
        return min(off, ceiling)


@dataclass(frozen=True)
class InvoiceLine:
    """One invoice line: quantity (Decimal >= 0) x unit price (Money >= 0), less a discount."""

    description: str
    quantity: Decimal
    unit_price: Money
    discount: Discount | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, Decimal | int):
            raise TypeError(f"quantity must be a Decimal, not {type(self.quantity).__name__}")
        if not Decimal(self.quantity).is_finite() or self.quantity < 0:
            raise ValueError(f"quantity must be a finite Decimal >= 0, got {self.quantity}")
        if not isinstance(self.unit_price, Money):
            raise TypeError(f"unit price must be Money, not {type(self.unit_price).__name__}")
        if self.unit_price.is_negative():
            raise ValueError(f"unit price cannot be negative, got {self.unit_price}")

    @property
    def amount(self) -> Money:
        """Quantity x unit price, rounded HALF_UP to the currency's minor unit."""
        return self.unit_price * Decimal(self.quantity)

    @property
    def discount_amount(self) -> Money:
        """What the line's discount takes off its amount (zero without a discount)."""
        if self.discount is None:
            return Money.zero(self.unit_price.currency)
        return self.discount.amount_off(self.amount)


@dataclass(frozen=True)
class InvoiceTotals:
    """Invoice figures: subtotal, discounts, tax lines and the total payable (all >= 0)."""

    subtotal: Money
    discount_total: Money
    tax_lines: list[tuple[str, Money]]
    total: Money

    @property
    def tax_total(self) -> Money:
        """The sum of the tax lines."""
        return sum_money((amount for _, amount in self.tax_lines), self.total.currency)

    @property
    def net(self) -> Money:
        """The total without taxes."""
        return self.total - self.tax_total


def price_invoice(
    lines: Sequence[InvoiceLine],
    taxes: Sequence[TaxRate],
    *,
    inclusive: bool,
    currency: str,
) -> InvoiceTotals:
    """Totals for `lines` in `currency`; with `inclusive` the line prices already hold tax."""
    for line in lines:
        if line.unit_price.currency != currency:
            found = line.unit_price.currency
            raise CurrencyMismatchError(f"line {line.description!r} is in {found}, not {currency}")
    subtotal = sum_money((line.amount for line in lines), currency)
    discount_total = sum_money((line.discount_amount for line in lines), currency)
    taxable = (subtotal - discount_total).clamp_zero()
    result = apply_taxes(taxable, taxes, inclusive=inclusive)
    return InvoiceTotals(
        subtotal=subtotal,
        discount_total=discount_total,
        tax_lines=result.taxes,
        total=result.gross.clamp_zero(),
    )


# --- partner commissions --------------------------------------------------------------


def commission_rate(
    tier_base: Decimal,
    tier_bonus: Decimal,
    *,
    months_active: int,
    new_customer_first_month: bool,
) -> Decimal:
    """The effective commission rate (fraction of the paid amount) for one paid invoice.

    Interpretation of business-rules.md "Partner commissions":

    - the tier's *bonus* ("+1%", "+2%", "+3%") is extra percentage points on top of the
      tier's base rate: Silver earns 7% + 1% = 8% of the amount;
    - the *base commission* is the amount x the tier's base rate (the tier bonus excluded);
    - the new-customer bonus is 50% OF the base commission (not 50 points) and applies only
      to the customer's first month;
    - the contract bonus is 5% OF the base commission once the customer has been active
      12+ whole months, 10% at 24+ (not cumulative, and not points either).

    So rate = base x (1 + new-customer share + contract share) + tier bonus; e.g. Gold
    (10% + 2%) in a first month = 10% x 1.5 + 2% = 17%, Gold at 24 months = 10% x 1.1 + 2%
    = 13%. Rates are Decimals in [0, 1]; ValueError if the result exceeds 50%.
    """
    base = _rate(tier_base, "tier base rate")
    bonus = _rate(tier_bonus, "tier bonus rate")
    if isinstance(months_active, bool) or not isinstance(months_active, int):
        raise TypeError(f"months_active must be an int, not {type(months_active).__name__}")
    if months_active < 0:
        raise ValueError(f"months_active cannot be negative, got {months_active}")
    if not isinstance(new_customer_first_month, bool):
        raise TypeError("new_customer_first_month must be a bool")
    share = Decimal(1)
    if new_customer_first_month:
        share += NEW_CUSTOMER_BONUS
    for months, contract_share in CONTRACT_BONUSES:
        if months_active >= months:
            share += contract_share
            break
    effective = base * share + bonus
    if effective > MAX_COMMISSION_RATE:
        raise ValueError(f"effective commission rate {effective} exceeds {MAX_COMMISSION_RATE}")
    return effective


def commission(
    amount: Money,
    tier: Tier,
    *,
    months_active: int,
    new_customer_first_month: bool,
) -> Money:
    """The commission on a paid `amount` at `tier`'s rates, HALF_UP (see commission_rate)."""
    rate = commission_rate(
        tier.base_rate,
        tier.bonus_rate,
        months_active=months_active,
        new_customer_first_month=new_customer_first_month,
    )
    return amount * rate


def payable(balance: Money) -> bool:
    """True when a partner's commission balance reaches MIN_PAYOUT (50.00 USD)."""
    return balance >= MIN_PAYOUT
