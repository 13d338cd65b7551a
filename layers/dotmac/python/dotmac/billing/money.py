"""Money: a Decimal amount in one ISO 4217 currency, exact allocation and exchange rates.

Rules (business-rules.md, "Money and invoices"): Decimal only, never float; amounts are
rounded ROUND_HALF_UP to the currency's minor unit; adding two currencies is an error;
an exchange rate applies from its effective date until the next one for the same pair.

Arithmetic that divides (`Money * Fraction`, `allocate`) is done with exact fractions and
rounded once, so results never depend on the Decimal context's precision.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

DEFAULT_MINOR_UNITS = 2
# ISO 4217 minor units for the currencies that differ from 2 (plus the common 2s, explicit).
MINOR_UNITS: Mapping[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "NGN": 2,
    "KES": 2,
    "GHS": 2,
    "ZAR": 2,
    "TZS": 2,
    "INR": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "CNY": 2,
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "UGX": 0,
    "RWF": 0,
    "XOF": 0,
    "XAF": 0,
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "IQD": 3,
    "LYD": 3,
    "TND": 3,
}
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CurrencyMismatchError(ValueError):
    """Two amounts in different currencies were combined or compared."""


class MissingRateError(LookupError):
    """No exchange rate for a currency pair on or before the requested date."""


def minor_units(currency: str) -> int:
    """The number of decimal places of `currency` (2 unless listed in MINOR_UNITS)."""
    return MINOR_UNITS.get(_currency(currency), DEFAULT_MINOR_UNITS)


def _currency(code: str) -> str:
    """`code` itself if it is three upper-case letters; TypeError/ValueError otherwise."""
    if not isinstance(code, str):
        raise TypeError(f"currency must be a str, not {type(code).__name__}")
    if not _CURRENCY.fullmatch(code):
        raise ValueError(f"currency must be an ISO 4217 code (3 upper-case letters): {code!r}")
    return code


def _to_decimal(value: object, what: str) -> Decimal:
    """`value` as a finite Decimal (Decimal, int or numeric str; float and bool refused)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"{what} must be a Decimal, int or str, not {type(value).__name__}")
    try:
        result = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"{what} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return result


def _round_fraction(value: Fraction, places: int) -> Decimal:
    """`value` rounded ROUND_HALF_UP (ties away from zero) to `places` decimals, exactly."""
    scaled = abs(value) * 10**places
    units = (scaled.numerator * 2 + scaled.denominator) // (scaled.denominator * 2)
    return Decimal(-units if value < 0 else units).scaleb(-places)


def _quantize(amount: Decimal, places: int) -> Decimal:
    """`amount` rounded HALF_UP to `places` decimals, with no negative zero."""
    rounded = _round_fraction(Fraction(amount), places)
    return rounded.copy_abs() if rounded == 0 else rounded


@dataclass(frozen=True, init=False)
class Money:
    """An amount in one currency, always quantised HALF_UP to the currency's minor unit."""

    amount: Decimal
    currency: str

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        """Build from a Decimal, int or str (float refused); rounds HALF_UP to minor units."""
        code = _currency(currency)
        object.__setattr__(self, "currency", code)
        value = _to_decimal(amount, "amount")
        object.__setattr__(self, "amount", _quantize(value, minor_units(code)))

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in `currency`."""
        return cls(0, currency)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Money:
        """The inverse of `to_json`: {"amount": "12.30", "currency": "USD"}."""
        if not isinstance(data, Mapping) or set(data) != {"amount", "currency"}:
            raise ValueError(f"money JSON must be {{amount, currency}}, got {data!r}")
        amount, currency = data["amount"], data["currency"]
        if not isinstance(amount, str):
            raise TypeError(f"money JSON amount must be a string, not {type(amount).__name__}")
        return cls(amount, currency)

    def to_json(self) -> dict[str, str]:
        """{"amount": "12.30", "currency": "USD"} (amount as fixed-point text)."""
        return {"amount": format(self.amount, "f"), "currency": self.currency}

    @property
    def places(self) -> int:
        """The currency's number of decimal places."""
        return minor_units(self.currency)

    @property
    def minor_unit(self) -> Decimal:
        """The smallest representable amount of the currency (0.01, 1, 0.001...)."""
        return Decimal(1).scaleb(-self.places)

    def is_zero(self) -> bool:
        """True when the amount is zero."""
        return self.amount == 0

    def is_negative(self) -> bool:
        """True when the amount is below zero (a credit)."""
        return self.amount < 0

    def clamp_zero(self) -> Money:
        """This amount, or zero if it is negative."""
        return self if self.amount >= 0 else Money.zero(self.currency)

    def _same(self, other: Money) -> None:
        """CurrencyMismatchError unless `other` is in this currency."""
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: object) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, Decimal | int | Fraction):
            return NotImplemented
        if isinstance(factor, Decimal) and not factor.is_finite():
            raise ValueError(f"cannot multiply money by {factor}")
        exact = Fraction(self.amount) * Fraction(factor)
        return Money(_round_fraction(exact, self.places), self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __str__(self) -> str:
        return f"{format(self.amount, 'f')} {self.currency}"


def zero(currency: str) -> Money:
    """Zero in `currency`."""
    return Money.zero(currency)


def sum_money(amounts: Iterable[Money], currency: str) -> Money:
    """The total of `amounts` (zero when empty); CurrencyMismatchError if any differs."""
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total


def allocate(total: Money, weights: list[Decimal]) -> list[Money]:
    """Split `total` by `weights` (largest remainder) into parts that sum to it exactly."""
    if not weights:
        raise ValueError("allocate needs at least one weight")
    exact = [Fraction(_to_decimal(weight, "weight")) for weight in weights]
    if any(weight < 0 for weight in exact):
        raise ValueError("weights cannot be negative")
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        raise ValueError("weights must not all be zero")
    places = total.places
    units = int(total.amount.scaleb(places))
    magnitude = abs(units)
    shares = [magnitude * weight / weight_sum for weight in exact]
    parts = [share.numerator // share.denominator for share in shares]
    leftover = magnitude - sum(parts)
    # Largest fractional remainder first; ties go to the earlier weight.
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for index in order[:leftover]:
        parts[index] += 1
    sign = -1 if units < 0 else 1
    return [Money(Decimal(sign * part).scaleb(-places), total.currency) for part in parts]


@dataclass(frozen=True)
class ExchangeRate:
    """One unit of `source` buys `rate` units of `target` from `effective` onwards."""

    source: str
    target: str
    effective: date
    rate: Decimal

    def __post_init__(self) -> None:
        _currency(self.source)
        _currency(self.target)
        if self.source == self.target:
            raise ValueError(f"an exchange rate needs two currencies, got {self.source} twice")
        _plain_date(self.effective, "effective date")
        if not isinstance(self.rate, Decimal):
            raise TypeError(f"rate must be a Decimal, not {type(self.rate).__name__}")
        if not self.rate.is_finite() or self.rate <= 0:
            raise ValueError(f"rate must be a positive finite Decimal, got {self.rate}")


def _plain_date(value: object, what: str) -> date:
    """`value` if it is a date (a datetime is refused: rates are per day)."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"{what} must be a date, not {type(value).__name__}")
    return value


@dataclass
class RateTable:
    """Exchange rates by (source, target) pair; a lookup uses the latest rate on or before."""

    _pairs: dict[tuple[str, str], list[tuple[date, Decimal]]] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def of(cls, rates: Iterable[ExchangeRate]) -> RateTable:
        """A table holding `rates`."""
        table = cls()
        for rate in rates:
            table.add(rate)
        return table

    def add(self, rate: ExchangeRate) -> None:
        """Record `rate`; ValueError if the pair already has a different rate that day."""
        entries = self._pairs.setdefault((rate.source, rate.target), [])
        index = bisect.bisect_left(entries, rate.effective, key=lambda entry: entry[0])
        if index < len(entries) and entries[index][0] == rate.effective:
            if entries[index][1] != rate.rate:
                raise ValueError(
                    f"{rate.source}->{rate.target} already has rate {entries[index][1]} "
                    f"on {rate.effective}"
                )
            return
        entries.insert(index, (rate.effective, rate.rate))

    def rate(self, source: str, target: str, on: date) -> Decimal:
        """The latest source->target rate effective on or before `on` (1 for one currency)."""
        _currency(source)
        _currency(target)
        _plain_date(on, "date")
        if source == target:
            return Decimal(1)
        entries = self._pairs.get((source, target), [])
        index = bisect.bisect_right(entries, on, key=lambda entry: entry[0])
        if index == 0:
            raise MissingRateError(f"no {source}->{target} rate on or before {on.isoformat()}")
        return entries[index - 1][1]

    def convert(self, money: Money, to: str, on: date) -> Money:
        """`money` in currency `to` at the rate of `on`, rounded HALF_UP to `to`'s minor unit."""
        rate = self.rate(money.currency, to, on)
        exact = Fraction(money.amount) * Fraction(rate)
        return Money(_round_fraction(exact, minor_units(to)), to)
