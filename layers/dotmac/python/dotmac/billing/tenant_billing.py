"""The platform's ledger with each tenant: payments and credit notes on the tenant's
invoices, the dunning ladder (reminders to the billing email, late fees, suspension through
the management lifecycle), partner commissions on paid invoices, and reactivation when a
payment clears the balance of a tenant that dunning suspended.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from dotmac.billing import dunning, ledger
from dotmac.billing.ledger import Book
from dotmac.core.errors import NotFoundError
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from dotmac.billing.models import (
        BillingAccountItem,
        CreditNoteItem,
        InvoiceItem,
        PaymentItem,
    )
    from dotmac.billing.schemas import AccountSettings, CreditNoteRequest, PaymentRequest
    from dotmac.management.models import TenantItem

SUSPENSION_REASON = "dunning"
REACTIVATION_REASON = "payment cleared the balance"
WORKER = "dunning"


class TenantSettlement(ledger.NoSettlement):
    """Paid invoices earn the referring partner's commission; a cleared balance lifts a
    dunning suspension. Remembers whether it changed the tenant's status."""

    def __init__(self, ctx: TenantContext) -> None:
        self.tenant_id = ctx.tenant_id
        self._tenant: TenantItem | None = None
        self.status_changed = False

    def tenant(self) -> TenantItem:
        from dotmac.management.repository import get_tenant_item

        if self._tenant is None:
            self._tenant = get_tenant_item(self.tenant_id)
        return self._tenant

    def stage_paid(self, uow: UnitOfWork, book: Book, invoice: InvoiceItem) -> None:
        from dotmac.billing import commissions

        commissions.stage_earned(uow, self.tenant(), invoice)

    def stage_cleared(self, uow: UnitOfWork, book: Book, account: BillingAccountItem) -> None:
        from dotmac.management.service import stage_change

        if not account.dunning_suspended:
            return
        account.dunning_suspended = False
        tenant = self.tenant()
        if tenant.status == "SUSPENDED" and tenant.status_reason == SUSPENSION_REASON:
            stage_change(uow, tenant, "reactivate", REACTIVATION_REASON)
            self.status_changed = True


class TenantEscalation:
    """Reminders go to the account's billing email; `suspend` suspends an ACTIVE tenant."""

    def __init__(self, settlement: TenantSettlement) -> None:
        self.settlement = settlement

    def remind(
        self, book: Book, account: BillingAccountItem, invoice: InvoiceItem, step: int
    ) -> None:
        from dotmac.core import queues

        if not account.billing_email:
            return
        queues.send(
            "notifications",
            {
                "id": dunning.reminder_id(book, invoice.SK, step),
                "tenant_id": book.ctx.tenant_id,
                "channel": "email",
                "recipient": account.billing_email,
                "template": "billing.reminder",
                "data": {
                    "invoice": invoice.SK,
                    "balance": invoice.balance,
                    "currency": invoice.currency,
                    "due_on": invoice.due_on,
                    "reminder": step + 1,
                },
            },
        )

    def stage_escalate(
        self,
        uow: UnitOfWork,
        book: Book,
        account: BillingAccountItem,
        invoice: InvoiceItem,
        action: str,
    ) -> None:
        from dotmac.management.service import stage_change

        tenant = self.settlement.tenant()
        if action == "suspend" and tenant.status == "ACTIVE":
            stage_change(uow, tenant, "suspend", SUSPENSION_REASON)
            account.dunning_suspended = True
            self.settlement.status_changed = True


def _settled(settlement: TenantSettlement) -> None:
    """After a commit that moved the tenant's status, drop this container's cached copy."""
    from dotmac.management.repository import cached_tenants

    if settlement.status_changed:
        cached_tenants.forget(settlement.tenant_id)


def pay(ctx: TenantContext, request: PaymentRequest, key: str) -> tuple[PaymentItem, bool]:
    """A payment on the tenant's account (see ledger.pay)."""
    settlement = TenantSettlement(ctx)
    result = ledger.pay(Book(ctx), request, key, settlement)
    _settled(settlement)
    return result


def credit(
    ctx: TenantContext, number: str, request: CreditNoteRequest, key: str | None
) -> tuple[CreditNoteItem, bool]:
    """A credit note on one of the tenant's invoices (see ledger.credit_note)."""
    settlement = TenantSettlement(ctx)
    result = ledger.credit_note(Book(ctx), number, request, key, settlement)
    _settled(settlement)
    return result


def dun(tenant_id: str, as_of: date) -> list[dunning.Taken]:
    """Run the tenant's dunning ladder as of `as_of`."""
    ctx = TenantContext(tenant_id, WORKER, request_id=f"dunning-{as_of.isoformat()}")
    settlement = TenantSettlement(ctx)
    taken = dunning.dun(Book(ctx), as_of, TenantEscalation(settlement), settlement)
    _settled(settlement)
    return taken


def account(ctx: TenantContext) -> BillingAccountItem:
    """The tenant's billing account: one GetItem."""
    return ledger.load_account(Book(ctx))


def checked_account(ctx: TenantContext) -> BillingAccountItem:
    """The billing account of `ctx`'s tenant, 404 if there is no such tenant (an operator
    names it in the path): one TransactGetItems of the tenant record and the account."""
    from dotmac.management.models import TENANT_SK, TenantItem
    from dotmac.management.repository import tenant_pk

    tenant_id = ctx.tenant_id
    tenant, found = ledger.owner_and_account(Book(ctx), TenantItem, tenant_pk(tenant_id), TENANT_SK)
    if tenant is None:
        raise NotFoundError(f"tenant {tenant_id} not found")
    return found


def configure(ctx: TenantContext, settings: AccountSettings) -> BillingAccountItem:
    """Change the tenant's account settings (see ledger.configure)."""
    return ledger.configure(Book(ctx), settings, ctx.tenant_id)


def start_dunning(as_of: date) -> int:
    """Queue one dunning job per ACTIVE or SUSPENDED tenant; returns how many."""
    from dotmac.billing.runs import enqueue
    from dotmac.management.repository import customer_tenant_ids

    tenants = customer_tenant_ids("ACTIVE", "SUSPENDED")
    enqueue([{"kind": "dunning", "tenant_id": t, "as_of": as_of.isoformat()} for t in tenants])
    return len(tenants)
