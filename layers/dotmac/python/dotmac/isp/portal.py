"""The ISP customer portal (role `isp_customer`): what a subscriber sees of himself.

Rules:
- A portal user is linked to one customer record: the `customer_id` of his user, signed
  into his access token (`cust` claim) and so into `TenantContext.customer_id`. Every
  portal read and write is of that customer only; a user without the link gets 403
  NOT_LINKED_TO_CUSTOMER, and another customer's service, invoice, payment or ticket is a
  404 (the same answer as an id that does not exist: the portal never confirms that
  another customer's record exists).
- He sees his profile (PII opened), services with their history, invoices, payments and
  billing account, and his tickets; he pays his invoices (Idempotency-Key, the ledger's
  rules: oldest first, the rest is credit, a payment clearing a dunning block reconnects
  him) and opens tickets (any priority but `critical`, which staff set).

| pattern | calls |
|---|---|
| profile | Query (`ISP_CUSTOMER#<id>` collection) + KMS Decrypt per PII field |
| services | Query `ISP_CUSTOMER_SERVICES#<id>` (GSI1) |
| one service | Query (its collection; 404 unless it is his) |
| invoices, payments, account | as `subscriber_billing` (one Query or GetItem) |
| tickets | Query `ISP_CUSTOMER_TICKETS#<id>` (the customer's copies of the tickets) |
| one ticket | Query (its collection; 404 unless it is his) |
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from dotmac.core.errors import ForbiddenError, NotFoundError
from dotmac.core.tenancy import TenantContext
from dotmac.isp.models import ServiceItem, TransitionItem
from dotmac.isp.ticket_models import TicketItem

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class PortalTicket(BaseModel):
    """A ticket a customer opens about his own service."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject
    description: Text
    priority: Literal["urgent", "high", "normal", "low"] = "normal"
    category: Literal["outage", "slow", "billing", "installation", "general"] = "general"


def customer_of(ctx: TenantContext) -> str:
    """The caller's own customer id; 403 when his user is not linked to one."""
    if ctx.customer_id is None:
        raise ForbiddenError(
            "this user is not linked to a customer record", code="NOT_LINKED_TO_CUSTOMER"
        )
    return ctx.customer_id


def service(ctx: TenantContext, number: str) -> tuple[ServiceItem, list[TransitionItem]]:
    """One of the caller's services with its history (404 for anyone else's)."""
    from dotmac.isp import services

    mine = customer_of(ctx)
    item, history = services.get_service(ctx, number)
    if item.customer_id != mine:
        raise NotFoundError(f"service {number} not found")
    return item, history


def ticket(ctx: TenantContext, number: str) -> tuple[TicketItem, list[TransitionItem]]:
    """One of the caller's tickets with its history (404 for anyone else's)."""
    from dotmac.isp import tickets

    mine = customer_of(ctx)
    item, history = tickets.get_ticket(ctx, number)
    if item.customer_id != mine:
        raise NotFoundError(f"ticket {number} not found")
    return item, history


def open_ticket(ctx: TenantContext, body: PortalTicket) -> tuple[TicketItem, list[TransitionItem]]:
    """Open a ticket for the caller's own customer record."""
    from dotmac.isp import tickets

    request = tickets.TicketCreate(customer_id=customer_of(ctx), **body.model_dump())
    return tickets.create_ticket(ctx, request)
