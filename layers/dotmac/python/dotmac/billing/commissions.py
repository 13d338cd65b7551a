"""Partner commissions: earned once per paid invoice of a tenant a partner referred, at the
partner's tier rates with the new-customer and contract bonuses (pricing.commission_rate),
and paid out from MIN_PAYOUT.

The commission item is put only if absent, in the same transaction that marks the invoice
paid, together with the partner's lifetime revenue and earned total (saved under the
partner's version): an invoice earns once, however the transaction is retried.

| pattern | call | key |
|---|---|---|
| earn (in the paying transaction) | GetItem partner + 2 puts | `PARTNER#<pid>` / `COMMISSION#...` |
| statement | Query (consistent, newest | `PARTNER#<pid>`, SK BETWEEN `COMMISSION#` AND `META` |
| | first) + GetItem after page 1 | (the partner, `META`, comes first on page 1) |
| payouts | Query | `PARTNER#<pid>`, SK begins_with `PAYOUT#` |
| pay out | GetItem partner + TransactWriteItems | put `PAYOUT#<at>` + versioned partner |
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dotmac.billing.money import Money
from dotmac.billing.pricing import MIN_PAYOUT, commission_rate
from dotmac.core.errors import ConflictError
from dotmac.core.pagination import PageRequest
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.management import partners

if TYPE_CHECKING:
    from dotmac.billing.models import InvoiceItem
    from dotmac.core.repository import Page
    from dotmac.management.models import TenantItem


COMMISSION = "COMMISSION#"


def months_between(start: date, period: str) -> int:
    """Whole months from the month of `start` to `period` (YYYY-MM)."""
    year, month = (int(p) for p in period.split("-"))
    return max(0, (year - start.year) * 12 + month - start.month)


def stage_earned(uow: UnitOfWork, tenant: TenantItem, invoice: InvoiceItem) -> None:
    """Stage the commission a paid subscription invoice earns its tenant's partner (none if
    the tenant came without one). The base is what was paid, without its tax share."""
    from dotmac.billing.models import CommissionItem

    if not tenant.partner_id or invoice.category != "SUBSCRIPTION":
        return
    currency = invoice.currency
    total, paid = Money(invoice.total, currency), Money(invoice.paid, currency)
    if paid.is_zero() or currency != partners.CURRENCY:
        return
    net = total - Money(invoice.tax_total, currency)
    base = net * (paid.amount / total.amount)
    partner = partners.get_partner(tenant.partner_id)
    tier = partners.tier_for(Decimal(partner.lifetime_revenue))
    months = months_between(tenant.created_at.date(), invoice.period)
    rate = commission_rate(
        tier.base_rate, tier.bonus_rate, months_active=months, new_customer_first_month=months == 0
    )
    amount = base * rate
    tenant_id = tenant.PK.split("#", 1)[1]
    uow.put(
        CommissionItem(
            partners.partner_pk(tenant.partner_id),
            f"{COMMISSION}{invoice.period}#{tenant_id}#{invoice.SK}",
            tenant_id=tenant_id,
            invoice=invoice.SK,
            period=invoice.period,
            base=str(base.amount),
            rate=str(rate),
            amount=str(amount.amount),
            currency=currency,
            tier=tier.name,
            earned_at=datetime.now(UTC),
        ),
        condition=CommissionItem.PK.does_not_exist(),
    )
    partners.stage_revenue(uow, partner, base.amount, amount.amount)


def unpaid(partner: Any) -> Money:
    """Commission earned and not paid out yet."""
    earned = Money(partner.commission_earned, partners.CURRENCY)
    return earned - Money(partner.commission_paid_out, partners.CURRENCY)


def summary(partner: Any) -> dict[str, Any]:
    """A partner's commission standing."""
    owed = unpaid(partner)
    return {
        "partner_id": partners.partner_id_of(partner),
        "tier": partners.tier_for(Decimal(partner.lifetime_revenue)).name,
        "currency": partners.CURRENCY,
        "earned": partner.commission_earned,
        "paid_out": partner.commission_paid_out,
        "unpaid": str(owed.amount),
        "minimum_payout": str(MIN_PAYOUT.amount),
        "payable": owed >= MIN_PAYOUT,
    }


def commission_view(item: Any) -> dict[str, Any]:
    return {
        "tenant_id": item.tenant_id,
        "invoice": item.invoice,
        "period": item.period,
        "base": item.base,
        "rate": item.rate,
        "amount": item.amount,
        "currency": item.currency,
        "tier": item.tier,
        "earned_at": item.earned_at.isoformat(),
    }


def payout_view(item: Any) -> dict[str, Any]:
    return {
        "payout_id": item.SK.split("#", 1)[1],
        "amount": item.amount,
        "currency": item.currency,
        "paid_at": item.paid_at.isoformat(),
    }


def statement(partner_id: str, page: PageRequest) -> tuple[Any, Page[Any]]:
    """The partner and one page of its commissions, newest first (404 for no such partner).

    One strongly consistent Query from the partner record (`META`, right after the last
    `COMMISSION#` key) down through the commissions; a later page, which starts past the
    record, reads it with a GetItem (so does a partner that is not there, for the 404).
    """
    from dotmac.billing.models import CommissionItem
    from dotmac.core.repository import query_page_with_head
    from dotmac.management.models import PartnerItem

    partner, entries = query_page_with_head(
        PartnerItem,
        CommissionItem,
        partners.partner_pk(partner_id),
        page,
        range_condition=CommissionItem.SK.between(COMMISSION, partners.PARTNER_SK),
        newest_first=True,
        consistent=True,
    )
    return partner or partners.get_partner(partner_id), entries


def payouts(partner_id: str, page: PageRequest) -> Page[Any]:
    """One page of a partner's payouts, newest first."""
    from dotmac.billing.models import PayoutItem
    from dotmac.core.repository import query_page

    return query_page(
        PayoutItem, partners.partner_pk(partner_id), page, sk_prefix="PAYOUT#", newest_first=True
    )


def pay_out(ctx: TenantContext, partner_id: str) -> Any:
    """Pay out everything earned and unpaid; 409 PAYOUT_BELOW_MINIMUM under MIN_PAYOUT."""
    from dotmac.billing.models import PayoutItem
    from dotmac.core.retry import until_won

    def attempt() -> Any:
        partner = partners.get_partner(partner_id)
        owed = unpaid(partner)
        if owed < MIN_PAYOUT:
            raise ConflictError(
                f"unpaid commission {owed} is below the minimum payout {MIN_PAYOUT}",
                code="PAYOUT_BELOW_MINIMUM",
            )
        now = datetime.now(UTC)
        payout = PayoutItem(
            partners.partner_pk(partner_id),
            f"PAYOUT#{now.isoformat(timespec='microseconds')}",
            amount=str(owed.amount),
            currency=partners.CURRENCY,
            paid_at=now,
            paid_by=ctx.user_id,
        )
        partner.commission_paid_out = str(
            (Money(partner.commission_paid_out, partners.CURRENCY) + owed).amount
        )
        uow = UnitOfWork(ctx)
        uow.put(payout, condition=PayoutItem.PK.does_not_exist())
        uow.put(partner)
        uow.audit("platform.partner.payout", "partner", partner_id, after=payout_view(payout))
        uow.commit(conflict=f"partner {partner_id} changed meanwhile; retry")
        return payout

    return until_won(attempt)
