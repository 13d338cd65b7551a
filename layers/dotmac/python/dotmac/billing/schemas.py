"""Request bodies of the billing API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

Amount = Annotated[Decimal, Field(gt=0, max_digits=14, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=1, max_digits=8, allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RunRequest(_Body):
    """Start a billing run for one month."""

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")


class PaymentRequest(_Body):
    """A payment received: applied to open invoices oldest first, the rest kept as credit."""

    amount: Amount
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    method: Literal["card", "bank_transfer", "direct_debit", "cash", "check"] = "bank_transfer"
    reference: str | None = Field(default=None, min_length=1, max_length=100)


class CreditNoteRequest(_Body):
    """Credit part or all of an invoice's balance."""

    amount: Amount
    reason: str = Field(min_length=1, max_length=500)


class TaxRateSetting(_Body):
    name: str = Field(min_length=1, max_length=50)
    rate: Rate
    compound: bool = False


class LateFeeSetting(_Body):
    """A flat fee, or a share of the overdue balance."""

    kind: Literal["flat", "percent"]
    amount: Amount | None = None
    rate: Rate | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LateFeeSetting:
        if self.kind == "flat" and (self.amount is None or self.rate is not None):
            raise ValueError("a flat late fee has an amount and no rate")
        if self.kind == "percent" and (self.rate is None or self.amount is not None):
            raise ValueError("a percent late fee has a rate and no amount")
        return self


class DunningStep(_Body):
    after_days: int = Field(ge=0, le=365)
    action: Literal["remind", "late_fee", "suspend"]


class AccountSettings(_Body):
    """An operator's changes to a tenant's billing account (omitted fields stay)."""

    billing_email: EmailStr | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)
    tax_inclusive: bool | None = None
    tax_rates: list[TaxRateSetting] | None = Field(default=None, max_length=5)
    late_fee: LateFeeSetting | None = None
    dunning: list[DunningStep] | None = Field(default=None, min_length=1, max_length=10)

    @field_validator("payment_terms_days", "tax_inclusive")
    @classmethod
    def _not_cleared(cls, value: int | bool | None) -> int | bool:
        # Only a given value is validated: null clears the others, these have no "unset".
        if value is None:
            raise ValueError("cannot be null")
        return value

    @field_validator("dunning")
    @classmethod
    def _ordered(cls, steps: list[DunningStep] | None) -> list[DunningStep] | None:
        if steps is not None:
            days = [s.after_days for s in steps]
            if days != sorted(days):
                raise ValueError("steps must be in order of after_days")
        return steps


class SubscriberDunningStep(DunningStep):
    """An ISP's ladder may also end billing a blocked subscriber (`deactivate`)."""

    action: Literal["remind", "late_fee", "suspend", "deactivate"]  # type: ignore[assignment]


class SubscriberAccountSettings(AccountSettings):
    """An ISP's changes to one subscriber's billing account (omitted fields stay)."""

    dunning: list[SubscriberDunningStep] | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=10
    )


class DunningRequest(_Body):
    """Run the dunning ladder as of a day (default: today)."""

    as_of: date | None = None
