"""Billing: runs, invoices, payments, dunning (HTTP routes only)."""

from typing import TYPE_CHECKING

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.billing import invoicing, runs
else:  # imported on first use: keeps this module's import (the cold start) cheap
    invoicing = lazy_module("dotmac.billing.invoicing")
    runs = lazy_module("dotmac.billing.runs")

api = Api("billing")
app = api.app
RUNS = "/api/v1/platform/billing/runs"
INVOICES = "/api/v1/tenant/invoices"


def _run(run_id: str, item: object, status: int = 200) -> Reply:
    link = f"{RUNS}/{run_id}"
    headers = {"Location": link} if status == 202 else {}
    return Reply(
        single(resource("billing_run", run_id, runs.run_view(item)), link), status, headers
    )


@api.route(RUNS, ["POST"], permission="platform:billing:manage", absolute=True)
def start_run(call: Call) -> Reply:
    import uuid

    from dotmac.billing.schemas import RunRequest

    body = call.body(RunRequest)
    key = call.request.headers.get("idempotency-key") or uuid.uuid4().hex
    item, _ = runs.start_run(call.ctx, body.period, key)
    return _run(runs.run_id_for(body.period, key), item, status=202)


@api.route(f"{RUNS}/{{run_id}}", permission="platform:billing:read", absolute=True)
def get_run(call: Call, run_id: str) -> Reply:
    return _run(run_id, runs.get_run(run_id))


@api.route(
    f"{RUNS}/{{run_id}}/redrive", ["POST"], permission="platform:billing:manage", absolute=True
)
def redrive_run(call: Call, run_id: str) -> Reply:
    runs.redrive(call.ctx, run_id)
    return _run(run_id, runs.get_run(run_id))


@api.route(INVOICES, permission="tenant:invoices:read", absolute=True, summary="Invoices")
def list_invoices(call: Call) -> Reply:
    page = invoicing.list_invoices(call.ctx, PageRequest.from_query(call.query))
    items = [resource("invoice", i.SK, invoicing.invoice_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(f"{INVOICES}/{{number}}", permission="tenant:invoices:read", absolute=True)
def get_invoice(call: Call, number: str) -> Reply:
    item = invoicing.get_invoice(call.ctx, number)
    return Reply(
        single(resource("invoice", number, invoicing.invoice_view(item)), call.request.path)
    )


@api.route(f"{INVOICES}/{{number}}/pdf", permission="tenant:invoices:read", absolute=True)
def invoice_pdf(call: Call, number: str) -> Reply:
    from dotmac.billing import documents

    invoicing.get_invoice(call.ctx, number)  # 404 unless it is the caller's tenant's
    url = documents.pdf_url(call.ctx.tenant_id, number)
    view = {"url": url, "expires_in": 300}
    return Reply(single(resource("invoice_pdf", number, view), call.request.path))
