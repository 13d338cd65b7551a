"""Billing: runs, invoices, payments, credit notes, dunning, partner commissions (HTTP
routes only)."""

from typing import TYPE_CHECKING, Any

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.billing import commissions, invoicing, ledger, runs, schemas, tenant_billing
    from dotmac.management import service as management
else:  # imported on first use: keeps this module's import (the cold start) cheap
    commissions = lazy_module("dotmac.billing.commissions")
    invoicing = lazy_module("dotmac.billing.invoicing")
    ledger = lazy_module("dotmac.billing.ledger")
    runs = lazy_module("dotmac.billing.runs")
    schemas = lazy_module("dotmac.billing.schemas")
    tenant_billing = lazy_module("dotmac.billing.tenant_billing")
    management = lazy_module("dotmac.management.service")

api = Api("billing")
app = api.app
RUNS = "/api/v1/platform/billing/runs"
DUNNING = "/api/v1/platform/billing/dunning"
TENANT_ACCOUNT = "/api/v1/platform/tenants/{tenant_id}/billing-account"
TENANT_PAYMENTS = "/api/v1/platform/tenants/{tenant_id}/payments"
CREDIT_NOTES_OF = "/api/v1/platform/tenants/{tenant_id}/invoices/{number}/credit-notes"
PARTNER = "/api/v1/platform/partners/{partner_id}"
INVOICES = "/api/v1/tenant/invoices"
PAYMENTS = "/api/v1/tenant/payments"
OWN_ACCOUNT = "/api/v1/tenant/billing-account"
OWN_CREDIT_NOTES = "/api/v1/tenant/credit-notes"
MANAGE, READ = "platform:billing:manage", "platform:billing:read"
PARTNERS_MANAGE, PARTNERS_READ = "platform:partners:manage", "platform:partners:read"


def _one(call: Call, kind: str, key: str, view: dict[str, Any], status: int = 200) -> Reply:
    return Reply(single(resource(kind, key, view), call.request.path), status)


def _in_tenant(call: Call, tenant_id: str) -> Any:
    """The operator's context inside `tenant_id` (404 for no such tenant, before any write)."""
    from dotmac.management.repository import get_tenant_item

    get_tenant_item(tenant_id)
    return management.acting_in(call.ctx, tenant_id)


def _page(call: Call, kind: str, page: Any, key: Any, view: Any) -> Reply:
    items = [resource(kind, key(i), view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


# --- billing runs and dunning (operators) ----------------------------------------------


def _run(run_id: str, item: object, status: int = 200) -> Reply:
    link = f"{RUNS}/{run_id}"
    headers = {"Location": link} if status == 202 else {}
    return Reply(
        single(resource("billing_run", run_id, runs.run_view(item)), link), status, headers
    )


@api.route(RUNS, ["POST"], permission=MANAGE, absolute=True, summary="Start a billing run")
def start_run(call: Call) -> Reply:
    import uuid

    body = call.body(schemas.RunRequest)
    key = call.idempotency_key(required=False) or uuid.uuid4().hex
    item, _ = runs.start_run(call.ctx, body.period, key)
    return _run(runs.run_id_for(body.period, key), item, status=202)


@api.route(f"{RUNS}/{{run_id}}", permission=READ, absolute=True)
def get_run(call: Call, run_id: str) -> Reply:
    return _run(run_id, runs.get_run(run_id))


@api.route(f"{RUNS}/{{run_id}}/redrive", ["POST"], permission=MANAGE, absolute=True)
def redrive_run(call: Call, run_id: str) -> Reply:
    runs.redrive(call.ctx, run_id)
    return _run(run_id, runs.get_run(run_id))


@api.route(DUNNING, ["POST"], permission=MANAGE, absolute=True, summary="Run the dunning ladder")
def start_dunning(call: Call) -> Reply:
    from datetime import UTC, datetime

    from dotmac.core import audit_trail

    body = call.body(schemas.DunningRequest)
    as_of = body.as_of or datetime.now(UTC).date()
    queued = tenant_billing.start_dunning(as_of)
    view = {"as_of": as_of.isoformat(), "queued": queued}
    audit_trail.record(call.ctx, "billing.dunning.start", "dunning", as_of.isoformat(), after=view)
    return _one(call, "dunning_run", as_of.isoformat(), view, status=202)


# --- a tenant's account, seen by operators ---------------------------------------------


@api.route(TENANT_ACCOUNT, permission=READ, absolute=True, summary="A tenant's billing account")
def get_tenant_account(call: Call, tenant_id: str) -> Reply:
    account = tenant_billing.checked_account(management.acting_in(call.ctx, tenant_id))
    return _one(call, "billing_account", tenant_id, ledger.account_view(account))


@api.route(TENANT_ACCOUNT, ["PUT"], permission=MANAGE, absolute=True)
def configure_tenant_account(call: Call, tenant_id: str) -> Reply:
    body = call.body(schemas.AccountSettings)
    account = tenant_billing.configure(_in_tenant(call, tenant_id), body)
    return _one(call, "billing_account", tenant_id, ledger.account_view(account))


@api.route(TENANT_PAYMENTS, ["POST"], permission=MANAGE, absolute=True)
def record_payment(call: Call, tenant_id: str) -> Reply:
    """A payment received outside the API (e.g. a bank transfer), recorded by an operator."""
    key = call.idempotency_key(required=True)
    body = call.body(schemas.PaymentRequest)
    return _payment(call, tenant_billing.pay(_in_tenant(call, tenant_id), body, key))


@api.route(CREDIT_NOTES_OF, ["POST"], permission=MANAGE, absolute=True, summary="Credit note")
def issue_credit_note(call: Call, tenant_id: str, number: str) -> Reply:
    key = call.idempotency_key(required=False)
    body = call.body(schemas.CreditNoteRequest)
    note, replayed = tenant_billing.credit(_in_tenant(call, tenant_id), number, body, key)
    return _one(
        call, "credit_note", note.SK, ledger.credit_note_view(note), 200 if replayed else 201
    )


# --- partner commissions (operators) ---------------------------------------------------


@api.route(f"{PARTNER}/commissions", permission=PARTNERS_READ, absolute=True)
def commission_statement(call: Call, partner_id: str) -> Reply:
    """One page of the partner's commissions, newest first; the standing in `meta.summary`."""
    partner, page = commissions.statement(partner_id, PageRequest.from_query(call.query))
    reply = _page(call, "commission", page, lambda i: i.invoice, commissions.commission_view)
    reply.body["meta"]["summary"] = commissions.summary(partner)
    return reply


@api.route(f"{PARTNER}/payouts", permission=PARTNERS_READ, absolute=True)
def list_payouts(call: Call, partner_id: str) -> Reply:
    page = commissions.payouts(partner_id, PageRequest.from_query(call.query))
    return _page(call, "payout", page, lambda i: i.SK.split("#", 1)[1], commissions.payout_view)


@api.route(f"{PARTNER}/payouts", ["POST"], permission=PARTNERS_MANAGE, absolute=True)
def pay_out(call: Call, partner_id: str) -> Reply:
    """Pay out the unpaid commission (only from the $50 minimum)."""
    payout = commissions.pay_out(call.ctx, partner_id)
    view = commissions.payout_view(payout)
    return _one(call, "payout", view["payout_id"], view, status=201)


# --- a tenant's own invoices, payments and account -------------------------------------


@api.route(
    INVOICES,
    permission="tenant:invoices:read",
    absolute=True,
    summary="Invoices",
    while_suspended=True,
)
def list_invoices(call: Call) -> Reply:
    page = invoicing.list_invoices(call.ctx, PageRequest.from_query(call.query))
    return _page(call, "invoice", page, lambda i: i.SK, invoicing.invoice_view)


@api.route(
    f"{INVOICES}/{{number}}",
    permission="tenant:invoices:read",
    absolute=True,
    while_suspended=True,
)
def get_invoice(call: Call, number: str) -> Reply:
    item = invoicing.get_invoice(call.ctx, number)
    return _one(call, "invoice", number, invoicing.invoice_view(item))


@api.route(
    f"{INVOICES}/{{number}}/pdf",
    permission="tenant:invoices:read",
    absolute=True,
    while_suspended=True,
)
def invoice_pdf(call: Call, number: str) -> Reply:
    from dotmac.billing import documents

    invoicing.get_invoice(call.ctx, number)  # 404 unless it is the caller's tenant's
    url = documents.pdf_url(call.ctx.tenant_id, number)
    return _one(call, "invoice_pdf", number, {"url": url, "expires_in": 300})


@api.route(OWN_CREDIT_NOTES, permission="tenant:invoices:read", absolute=True, while_suspended=True)
def list_credit_notes(call: Call) -> Reply:
    page = ledger.list_credit_notes(ledger.Book(call.ctx), PageRequest.from_query(call.query))
    return _page(call, "credit_note", page, lambda i: i.SK, ledger.credit_note_view)


@api.route(
    OWN_ACCOUNT,
    permission="tenant:billing:read",
    absolute=True,
    while_suspended=True,
    summary="The tenant's balance, credit and billing settings",
)
def get_own_account(call: Call) -> Reply:
    account = tenant_billing.account(call.ctx)
    return _one(call, "billing_account", call.ctx.tenant_id, ledger.account_view(account))


def _payment(call: Call, result: tuple[Any, bool]) -> Reply:
    payment, replayed = result
    return _one(call, "payment", payment.SK, ledger.payment_view(payment), 200 if replayed else 201)


@api.route(
    PAYMENTS,
    ["POST"],
    permission="tenant:payments:write",
    absolute=True,
    while_suspended=True,
    summary="Pay (Idempotency-Key required): open invoices oldest first, the rest is credit",
)
def pay(call: Call) -> Reply:
    key = call.idempotency_key(required=True)
    body = call.body(schemas.PaymentRequest)
    return _payment(call, tenant_billing.pay(call.ctx, body, key))


@api.route(PAYMENTS, permission="tenant:payments:read", absolute=True, while_suspended=True)
def list_payments(call: Call) -> Reply:
    page = ledger.list_payments(ledger.Book(call.ctx), PageRequest.from_query(call.query))
    return _page(call, "payment", page, lambda i: i.SK, ledger.payment_view)


@api.route(
    f"{PAYMENTS}/{{payment_id}}",
    permission="tenant:payments:read",
    absolute=True,
    while_suspended=True,
)
def get_payment(call: Call, payment_id: str) -> Reply:
    payment = ledger.get_payment(ledger.Book(call.ctx), payment_id)
    return _one(call, "payment", payment_id, ledger.payment_view(payment))
