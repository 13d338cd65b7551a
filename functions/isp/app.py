"""ISP Framework: subscribers, services, IPAM, network, field work (HTTP routes only)."""

from typing import TYPE_CHECKING, Any

from dotmac.core.api import Api, Call, Reply
from dotmac.core.envelope import collection, resource, single
from dotmac.core.lazy import lazy_module
from dotmac.core.pagination import PageRequest

if TYPE_CHECKING:
    from dotmac.isp import customers, ipam, plans, services
else:  # imported on first use: keeps this module's import (the cold start) cheap
    ipam = lazy_module("dotmac.isp.ipam")
    customers = lazy_module("dotmac.isp.customers")
    plans = lazy_module("dotmac.isp.plans")
    services = lazy_module("dotmac.isp.services")

api = Api("isp")
app = api.app

# --- IPAM ----------------------------------------------------------------------------------

IPAM_READ, IPAM_WRITE = "isp:ipam:read", "isp:ipam:write"
VRFS, PREFIXES, ADDRESSES = "/ipam/vrfs", "/ipam/prefixes", "/ipam/ip-addresses"


def _link(path: str) -> str:
    return f"{api.base}{path}"


def _vrf(item: Any, status: int = 200) -> Reply:
    link = _link(f"{VRFS}/{item.SK}")
    headers = {"Location": link} if status == 201 else {}
    return Reply(single(resource("vrf", item.SK, ipam.vrf_view(item)), link), status, headers)


def _prefix(item: Any, status: int = 200) -> Reply:
    link = _link(f"{PREFIXES}/{item.SK}")
    headers = {"Location": link} if status == 201 else {}
    return Reply(single(resource("prefix", item.SK, ipam.prefix_view(item)), link), status, headers)


def _address(view: dict[str, Any]) -> dict[str, Any]:
    return resource("ip_address", view["address"], view)


def _addresses(call: Call, page: Any) -> Reply:
    items = [_address(ipam.address_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(VRFS, permission=IPAM_READ, summary="VRFs")
def list_vrfs(call: Call) -> Reply:
    page = ipam.list_vrfs(call.ctx, PageRequest.from_query(call.query))
    items = [resource("vrf", i.SK, ipam.vrf_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(VRFS, ["POST"], permission=IPAM_WRITE, summary="Create a VRF")
def create_vrf(call: Call) -> Reply:
    return _vrf(ipam.create_vrf(call.ctx, call.body(ipam.VrfCreate)), status=201)


@api.route(f"{VRFS}/{{vrf_id}}", permission=IPAM_READ, summary="A VRF")
def get_vrf(call: Call, vrf_id: str) -> Reply:
    return _vrf(ipam.get_vrf(call.ctx, vrf_id))


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses", permission=IPAM_READ, summary="A VRF's addresses")
def list_vrf_addresses(call: Call, vrf_id: str) -> Reply:
    page = ipam.list_vrf_addresses(call.ctx, vrf_id, PageRequest.from_query(call.query))
    return _addresses(call, page)


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}", permission=IPAM_READ)
def get_address(call: Call, vrf_id: str, address: str) -> Reply:
    view = ipam.address_view(ipam.get_address(call.ctx, vrf_id, address))
    return Reply(single(_address(view), call.request.path))


@api.route(f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}", ["DELETE"], permission=IPAM_WRITE)
def delete_address(call: Call, vrf_id: str, address: str) -> Reply:
    ipam.release(call.ctx, vrf_id, address)
    return Reply(None, status=204)


@api.route(
    f"{VRFS}/{{vrf_id}}/ip-addresses/{{address}}/release",
    ["POST"],
    permission=IPAM_WRITE,
    summary="Release an address",
)
def release_address(call: Call, vrf_id: str, address: str) -> Reply:
    view = {**ipam.address_view(ipam.release(call.ctx, vrf_id, address)), "status": "RELEASED"}
    return Reply(single(_address(view), call.request.path))


@api.route(PREFIXES, permission=IPAM_READ, summary="Prefixes (?vrf_id=)")
def list_prefixes(call: Call) -> Reply:
    query = call.query
    page = ipam.list_prefixes(call.ctx, PageRequest.from_query(query), query.get("vrf_id"))
    items = [resource("prefix", i.SK, ipam.prefix_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(PREFIXES, ["POST"], permission=IPAM_WRITE, summary="Create a prefix")
def create_prefix(call: Call) -> Reply:
    return _prefix(ipam.create_prefix(call.ctx, call.body(ipam.PrefixCreate)), status=201)


@api.route(f"{PREFIXES}/{{prefix_id}}", permission=IPAM_READ, summary="A prefix + utilisation")
def get_prefix(call: Call, prefix_id: str) -> Reply:
    return _prefix(ipam.get_prefix(call.ctx, prefix_id))


@api.route(f"{PREFIXES}/{{prefix_id}}", ["PATCH"], permission=IPAM_WRITE)
def update_prefix(call: Call, prefix_id: str) -> Reply:
    body = call.body(ipam.PrefixUpdate)
    return _prefix(ipam.update_prefix(call.ctx, prefix_id, body))


@api.route(f"{PREFIXES}/{{prefix_id}}", ["DELETE"], permission=IPAM_WRITE)
def delete_prefix(call: Call, prefix_id: str) -> Reply:
    ipam.delete_prefix(call.ctx, prefix_id)
    return Reply(None, status=204)


@api.route(f"{PREFIXES}/{{prefix_id}}/ip-addresses", permission=IPAM_READ)
def list_prefix_addresses(call: Call, prefix_id: str) -> Reply:
    page = ipam.list_prefix_addresses(call.ctx, prefix_id, PageRequest.from_query(call.query))
    return _addresses(call, page)


@api.route(f"{PREFIXES}/{{prefix_id}}/available-ips", permission=IPAM_READ, summary="Next free")
def available_ips(call: Call, prefix_id: str) -> Reply:
    """The next free usable addresses of a leaf prefix, not allocated.

    Calls: 2, the prefix (GetItem), then the allocated addresses in its range (Query): that
    range and its VRF's partition are only known from the prefix.
    """
    limit = PageRequest.from_query({"limit": call.query.get("limit", "10")}).limit
    found = ipam.available(call.ctx, prefix_id, limit)
    items = [
        resource("available_ip", str(a), {"address": str(a), "family": a.version}) for a in found
    ]
    return Reply(collection(items, call.request.path, None))


@api.route(
    f"{PREFIXES}/{{prefix_id}}/available-ips",
    ["POST"],
    permission=IPAM_WRITE,
    summary="Allocate the next N free addresses (Idempotency-Key honoured)",
)
def allocate_ips(call: Call, prefix_id: str) -> Reply:
    body = call.body(ipam.AllocationRequest)
    key = call.idempotency_key(required=False)
    done = ipam.allocate(call.ctx, prefix_id, body, key)
    headers = {"Idempotent-Replayed": "true"} if done.replayed else {}
    items = [_address(view) for view in done.addresses]
    return Reply(collection(items, call.request.path, None), status=201, headers=headers)


@api.route(ADDRESSES, permission=IPAM_READ, summary="Addresses assigned to ?assigned_to=")
def list_assigned(call: Call) -> Reply:
    assigned_to = call.query.get("assigned_to", "")
    page = ipam.list_assigned(call.ctx, assigned_to, PageRequest.from_query(call.query))
    return _addresses(call, page)


# --- customers -----------------------------------------------------------------------------

CUSTOMERS_READ, CUSTOMERS_WRITE = "isp:customers:read", "isp:customers:write"
CUSTOMERS = "/customers"


def _customer(call: Call, found: Any, status: int = 200) -> Reply:
    link = _link(f"{CUSTOMERS}/{found.id}")
    headers = {"Location": link} if status == 201 else {}
    view = customers.customer_view(call.ctx, found)
    return Reply(single(resource("customer", found.id, view), link), status, headers)


@api.route(CUSTOMERS, permission=CUSTOMERS_READ, summary="Customers (?status=), without PII")
def list_customers(call: Call) -> Reply:
    query = call.query
    page = customers.list_customers(call.ctx, PageRequest.from_query(query), query.get("status"))
    items = [
        resource("customer", str(i.PK).rsplit("#", 1)[1], customers.customer_summary(i))
        for i in page.items
    ]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(CUSTOMERS, ["POST"], permission=CUSTOMERS_WRITE, summary="Create a customer")
def create_customer(call: Call) -> Reply:
    body = call.body(customers.CustomerCreate)
    return _customer(call, customers.create_customer(call.ctx, body), status=201)


@api.route(f"{CUSTOMERS}/{{customer_id}}", permission=CUSTOMERS_READ, summary="A customer")
def get_customer(call: Call, customer_id: str) -> Reply:
    return _customer(call, customers.get_customer(call.ctx, customer_id))


@api.route(f"{CUSTOMERS}/{{customer_id}}", ["PATCH"], permission=CUSTOMERS_WRITE)
def update_customer(call: Call, customer_id: str) -> Reply:
    body = call.body(customers.CustomerUpdate)
    return _customer(call, customers.update_customer(call.ctx, customer_id, body))


def _customer_action(call: Call, customer_id: str, action: str) -> Reply:
    body = call.body(customers.TransitionRequest)
    return _customer(call, customers.transition(call.ctx, customer_id, action, body))


@api.route(f"{CUSTOMERS}/{{customer_id}}/activate", ["POST"], permission=CUSTOMERS_WRITE)
def activate_customer(call: Call, customer_id: str) -> Reply:
    return _customer_action(call, customer_id, "activate")


@api.route(f"{CUSTOMERS}/{{customer_id}}/block", ["POST"], permission=CUSTOMERS_WRITE)
def block_customer(call: Call, customer_id: str) -> Reply:
    return _customer_action(call, customer_id, "block")


@api.route(f"{CUSTOMERS}/{{customer_id}}/deactivate", ["POST"], permission=CUSTOMERS_WRITE)
def deactivate_customer(call: Call, customer_id: str) -> Reply:
    return _customer_action(call, customer_id, "deactivate")


# --- service plans -------------------------------------------------------------------------

PLANS_READ, PLANS_WRITE = "isp:service_plans:read", "isp:service_plans:write"
PLANS = "/service-plans"


def _plan(item: Any, status: int = 200) -> Reply:
    link = _link(f"{PLANS}/{item.SK}")
    headers = {"Location": link} if status == 201 else {}
    view = plans.plan_view(item)
    return Reply(single(resource("service_plan", item.SK, view), link), status, headers)


@api.route(PLANS, permission=PLANS_READ, summary="Service plans")
def list_plans(call: Call) -> Reply:
    page = plans.list_plans(call.ctx, PageRequest.from_query(call.query))
    items = [resource("service_plan", i.SK, plans.plan_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(PLANS, ["POST"], permission=PLANS_WRITE, summary="Create a service plan")
def create_plan(call: Call) -> Reply:
    return _plan(plans.create_plan(call.ctx, call.body(plans.PlanCreate)), status=201)


@api.route(f"{PLANS}/{{plan_id}}", permission=PLANS_READ, summary="A service plan")
def get_plan(call: Call, plan_id: str) -> Reply:
    return _plan(plans.get_plan(call.ctx, plan_id))


@api.route(f"{PLANS}/{{plan_id}}", ["PATCH"], permission=PLANS_WRITE, summary="Price, speeds")
def update_plan(call: Call, plan_id: str) -> Reply:
    return _plan(plans.update_plan(call.ctx, plan_id, call.body(plans.PlanUpdate)))


@api.route(f"{PLANS}/{{plan_id}}", ["DELETE"], permission=PLANS_WRITE, summary="If unused")
def delete_plan(call: Call, plan_id: str) -> Reply:
    plans.delete_plan(call.ctx, plan_id)
    return Reply(None, status=204)


# --- services ------------------------------------------------------------------------------

SERVICES_READ, SERVICES_WRITE = "isp:services:read", "isp:services:write"
SERVICES = "/services"


def _service(found: Any, status: int = 200, base: str = SERVICES, **extra: Any) -> Reply:
    item, history = found
    link = _link(f"{base}/{item.number}")
    headers = {"Location": link} if status == 201 else {}
    view = {**services.service_view(item, history), **extra}
    return Reply(single(resource("service", item.number, view), link), status, headers)


@api.route(SERVICES, permission=SERVICES_READ, summary="Services (?customer=)")
def list_services(call: Call) -> Reply:
    query = call.query
    page = services.list_services(call.ctx, PageRequest.from_query(query), query.get("customer"))
    items = [resource("service", i.number, services.service_summary(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(SERVICES, ["POST"], permission=SERVICES_WRITE, summary="Create a PENDING service")
def create_service(call: Call) -> Reply:
    body = call.body(services.ServiceCreate)
    return _service(services.create_service(call.ctx, body), status=201)


@api.route(f"{SERVICES}/{{service_id}}", permission=SERVICES_READ, summary="A service + history")
def get_service(call: Call, service_id: str) -> Reply:
    return _service(services.get_service(call.ctx, service_id))


def _service_action(call: Call, service_id: str, action: str) -> Reply:
    body = call.body(customers.TransitionRequest)
    return _service(services.transition(call.ctx, service_id, action, body))


@api.route(f"{SERVICES}/{{service_id}}/suspend", ["POST"], permission=SERVICES_WRITE)
def suspend_service(call: Call, service_id: str) -> Reply:
    return _service_action(call, service_id, "suspend")


@api.route(f"{SERVICES}/{{service_id}}/resume", ["POST"], permission=SERVICES_WRITE)
def resume_service(call: Call, service_id: str) -> Reply:
    return _service_action(call, service_id, "resume")


@api.route(f"{SERVICES}/{{service_id}}/maintenance", ["POST"], permission=SERVICES_WRITE)
def maintenance_service(call: Call, service_id: str) -> Reply:
    return _service_action(call, service_id, "maintenance")


@api.route(
    f"{SERVICES}/{{service_id}}/cancel",
    ["POST"],
    permission=SERVICES_WRITE,
    summary="Cancel (releases the service's IP addresses)",
)
def cancel_service(call: Call, service_id: str) -> Reply:
    return _service_action(call, service_id, "cancel")


@api.route(
    f"{SERVICES}/{{service_id}}/plan-change/preview",
    ["POST"],
    permission=SERVICES_READ,
    summary="Prorated credit and charge of a plan change (changes nothing; audited quote)",
)
def preview_plan_change(call: Call, service_id: str) -> Reply:
    body = call.body(services.PlanChange)
    view = services.preview_plan_change(call.ctx, service_id, body)
    return Reply(single(resource("plan_change", service_id, view), call.request.path))


@api.route(
    f"{SERVICES}/{{service_id}}/plan-change",
    ["POST"],
    permission=SERVICES_WRITE,
    summary="Move the service to another plan (prorated)",
)
def change_plan(call: Call, service_id: str) -> Reply:
    body = call.body(services.PlanChange)
    item, history, change = services.change_plan(call.ctx, service_id, body)
    return _service((item, history), plan_change=change)


# --- field work: technicians and work orders -----------------------------------------------

if TYPE_CHECKING:
    from dotmac.isp import work_orders
else:
    work_orders = lazy_module("dotmac.isp.work_orders")

TECHS_READ, TECHS_WRITE = "isp:technicians:read", "isp:technicians:write"
ORDERS_READ, ORDERS_WRITE = "isp:work_orders:read", "isp:work_orders:write"
ORDERS_MANAGE = "isp:work_orders:manage"  # isp_manager (isp:*:*), not isp_technician
TECHNICIANS, WORK_ORDERS = "/technicians", "/work-orders"


def _technician(item: Any, status: int = 200) -> Reply:
    link = _link(f"{TECHNICIANS}/{item.user_id}")
    headers = {"Location": link} if status == 201 else {}
    view = work_orders.technician_view(item)
    return Reply(single(resource("technician", item.user_id, view), link), status, headers)


def _work_order(found: Any, status: int = 200, **extra: Any) -> Reply:
    item, history = found
    order_id = work_orders.order_id_of(item)
    link = _link(f"{WORK_ORDERS}/{order_id}")
    headers = {"Location": link} if status == 201 else {}
    view = {**work_orders.work_order_view(item, history), **extra}
    return Reply(single(resource("work_order", order_id, view), link), status, headers)


@api.route(TECHNICIANS, permission=TECHS_READ, summary="Technicians")
def list_technicians(call: Call) -> Reply:
    page = work_orders.list_technicians(call.ctx, PageRequest.from_query(call.query))
    items = [resource("technician", i.user_id, work_orders.technician_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(TECHNICIANS, ["POST"], permission=TECHS_WRITE, summary="A user's technician profile")
def create_technician(call: Call) -> Reply:
    body = call.body(work_orders.TechnicianCreate)
    return _technician(work_orders.create_technician(call.ctx, body), status=201)


@api.route(f"{TECHNICIANS}/{{user_id}}", permission=TECHS_READ, summary="A technician")
def get_technician(call: Call, user_id: str) -> Reply:
    return _technician(work_orders.get_technician(call.ctx, user_id))


@api.route(f"{TECHNICIANS}/{{user_id}}", ["PATCH"], permission=TECHS_WRITE)
def update_technician(call: Call, user_id: str) -> Reply:
    body = call.body(work_orders.TechnicianUpdate)
    return _technician(work_orders.update_technician(call.ctx, user_id, body))


@api.route(WORK_ORDERS, permission=ORDERS_READ, summary="Work orders (a technician: their own)")
def list_work_orders(call: Call) -> Reply:
    query = call.query
    page = work_orders.list_work_orders(
        call.ctx, PageRequest.from_query(query), query.get("technician")
    )
    items = [
        resource("work_order", work_orders.order_id_of(i), work_orders.work_order_summary(i))
        for i in page.items
    ]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(WORK_ORDERS, ["POST"], permission=ORDERS_MANAGE, summary="Create a work order")
def create_work_order(call: Call) -> Reply:
    body = call.body(work_orders.WorkOrderCreate)
    return _work_order(work_orders.create_work_order(call.ctx, body), status=201)


@api.route(f"{WORK_ORDERS}/{{order_id}}", permission=ORDERS_READ, summary="A work order")
def get_work_order(call: Call, order_id: str) -> Reply:
    return _work_order(work_orders.get_work_order(call.ctx, order_id))


@api.route(
    f"{WORK_ORDERS}/{{order_id}}/assign",
    ["POST"],
    permission=ORDERS_MANAGE,
    summary="Assign a technician (or the best-scoring one)",
)
def assign_work_order(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.AssignRequest)
    item, history, score = work_orders.assign(call.ctx, order_id, body)
    return _work_order((item, history), score=score)


@api.route(f"{WORK_ORDERS}/{{order_id}}/cancel", ["POST"], permission=ORDERS_MANAGE)
def cancel_work_order(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.CancelRequest)
    return _work_order(work_orders.cancel(call.ctx, order_id, body))


@api.route(f"{WORK_ORDERS}/{{order_id}}/check-in", ["POST"], permission=ORDERS_WRITE)
def check_in_work_order(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.Location)
    return _work_order(work_orders.check(call.ctx, order_id, "check_in", body))


@api.route(f"{WORK_ORDERS}/{{order_id}}/check-out", ["POST"], permission=ORDERS_WRITE)
def check_out_work_order(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.Location)
    return _work_order(work_orders.check(call.ctx, order_id, "check_out", body))


@api.route(f"{WORK_ORDERS}/{{order_id}}/notes", ["POST"], permission=ORDERS_WRITE)
def add_work_order_note(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.NoteRequest)
    return _work_order(work_orders.add_note(call.ctx, order_id, body))


@api.route(
    f"{WORK_ORDERS}/{{order_id}}/photos",
    ["POST"],
    permission=ORDERS_WRITE,
    summary="Record a photo and get a presigned S3 PUT URL for it",
)
def add_work_order_photo(call: Call, order_id: str) -> Reply:
    upload = work_orders.add_photo(call.ctx, order_id, call.body(work_orders.PhotoRequest))
    return Reply(single(resource("photo_upload", upload["key"], upload), call.request.path), 201)


@api.route(f"{WORK_ORDERS}/{{order_id}}/complete", ["POST"], permission=ORDERS_WRITE)
def complete_work_order(call: Call, order_id: str) -> Reply:
    body = call.body(work_orders.CompleteRequest)
    return _work_order(work_orders.complete(call.ctx, order_id, body))


# --- support tickets with SLA timers -------------------------------------------------------

if TYPE_CHECKING:
    from dotmac.isp import tickets
else:
    tickets = lazy_module("dotmac.isp.tickets")

TICKETS_READ, TICKETS_WRITE = "isp:tickets:read", "isp:tickets:write"
TICKETS = "/tickets"


def _ticket(found: Any, status: int = 200, base: str = TICKETS) -> Reply:
    item, history = found
    link = _link(f"{base}/{item.number}")
    headers = {"Location": link} if status == 201 else {}
    view = tickets.ticket_view(item, history)
    return Reply(single(resource("ticket", item.number, view), link), status, headers)


@api.route(TICKETS, permission=TICKETS_READ, summary="Tickets (?status=, ?sla=ok|at_risk|breached)")
def list_tickets(call: Call) -> Reply:
    query = call.query
    page = tickets.list_tickets(
        call.ctx, PageRequest.from_query(query), query.get("status"), query.get("sla")
    )
    items = [resource("ticket", i.number, tickets.ticket_summary(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(TICKETS, ["POST"], permission=TICKETS_WRITE, summary="Open a ticket (SLA from priority)")
def create_ticket(call: Call) -> Reply:
    body = call.body(tickets.TicketCreate)
    return _ticket(tickets.create_ticket(call.ctx, body), status=201)


@api.route(
    f"{TICKETS}/sweep",
    ["POST"],
    permission=TICKETS_WRITE,
    summary="Record the caller's tenant's SLA breaches as of now or a past as_of",
)
def sweep_tickets(call: Call) -> Reply:
    view = tickets.sweep(call.ctx, call.body(tickets.SweepRequest))
    return Reply(single(resource("ticket_sweep", view["as_of"], view), call.request.path))


@api.route(f"{TICKETS}/{{ticket_id}}", permission=TICKETS_READ, summary="A ticket + history")
def get_ticket(call: Call, ticket_id: str) -> Reply:
    return _ticket(tickets.get_ticket(call.ctx, ticket_id))


@api.route(
    f"{TICKETS}/{{ticket_id}}",
    ["PATCH"],
    permission=TICKETS_WRITE,
    summary="Subject, description, category, priority (recomputes the deadlines)",
)
def update_ticket(call: Call, ticket_id: str) -> Reply:
    body = call.body(tickets.TicketUpdate)
    return _ticket(tickets.update_ticket(call.ctx, ticket_id, body))


@api.route(f"{TICKETS}/{{ticket_id}}/respond", ["POST"], permission=TICKETS_WRITE)
def respond_ticket(call: Call, ticket_id: str) -> Reply:
    body = call.body(tickets.RespondRequest)
    return _ticket(tickets.respond(call.ctx, ticket_id, body))


def _ticket_action(call: Call, ticket_id: str, action: str) -> Reply:
    body = call.body(tickets.TicketTransition)
    return _ticket(tickets.transition(call.ctx, ticket_id, action, body))


@api.route(f"{TICKETS}/{{ticket_id}}/resolve", ["POST"], permission=TICKETS_WRITE)
def resolve_ticket(call: Call, ticket_id: str) -> Reply:
    return _ticket_action(call, ticket_id, "resolve")


@api.route(f"{TICKETS}/{{ticket_id}}/close", ["POST"], permission=TICKETS_WRITE)
def close_ticket(call: Call, ticket_id: str) -> Reply:
    return _ticket_action(call, ticket_id, "close")


@api.route(f"{TICKETS}/{{ticket_id}}/reopen", ["POST"], permission=TICKETS_WRITE)
def reopen_ticket(call: Call, ticket_id: str) -> Reply:
    return _ticket_action(call, ticket_id, "reopen")


# --- subscriber billing (staff) and the customer portal ------------------------------------

if TYPE_CHECKING:
    from dotmac.billing import invoicing, ledger, schemas
    from dotmac.isp import portal, subscriber_billing
else:
    invoicing = lazy_module("dotmac.billing.invoicing")
    ledger = lazy_module("dotmac.billing.ledger")
    schemas = lazy_module("dotmac.billing.schemas")
    portal = lazy_module("dotmac.isp.portal")
    subscriber_billing = lazy_module("dotmac.isp.subscriber_billing")

BILLING_READ, BILLING_WRITE = "isp:billing:read", "isp:billing:write"
PORTAL_READ, PORTAL_WRITE = "isp:portal:read", "isp:portal:write"
OF_CUSTOMER, PORTAL = f"{CUSTOMERS}/{{customer_id}}", "/portal"


def _one(call: Call, kind: str, key: str, view: dict[str, Any], status: int = 200) -> Reply:
    return Reply(single(resource(kind, key, view), call.request.path), status)


def _invoices(call: Call, customer_id: str) -> Reply:
    request = PageRequest.from_query(call.query)
    page = subscriber_billing.list_invoices(call.ctx, customer_id, request)
    items = [resource("invoice", i.SK, invoicing.invoice_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


def _invoice(call: Call, customer_id: str, number: str) -> Reply:
    item = subscriber_billing.get_invoice(call.ctx, customer_id, number)
    return _one(call, "invoice", number, invoicing.invoice_view(item))


def _account(call: Call, customer_id: str) -> Reply:
    account = subscriber_billing.account(call.ctx, customer_id)
    return _one(call, "billing_account", customer_id, ledger.account_view(account))


def _pay(call: Call, customer_id: str) -> Reply:
    key = call.idempotency_key(required=True)
    body = call.body(schemas.PaymentRequest)
    payment, replayed = subscriber_billing.pay(call.ctx, customer_id, body, key)
    view = ledger.payment_view(payment)
    return _one(call, "payment", payment.SK, view, 200 if replayed else 201)


def _payments(call: Call, customer_id: str) -> Reply:
    page = subscriber_billing.list_payments(
        call.ctx, customer_id, PageRequest.from_query(call.query)
    )
    items = [resource("payment", i.SK, ledger.payment_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


def _payment(call: Call, customer_id: str, payment_id: str) -> Reply:
    payment = ledger.get_payment(subscriber_billing.book(call.ctx, customer_id), payment_id)
    return _one(call, "payment", payment_id, ledger.payment_view(payment))


@api.route(f"{OF_CUSTOMER}/billing-account", permission=BILLING_READ, summary="Balance, settings")
def get_billing_account(call: Call, customer_id: str) -> Reply:
    return _account(call, customer_id)


@api.route(
    f"{OF_CUSTOMER}/billing-account",
    ["PUT"],
    permission=BILLING_WRITE,
    summary="Terms, taxes, late fee, dunning ladder (remind, late_fee, suspend, deactivate)",
)
def configure_billing_account(call: Call, customer_id: str) -> Reply:
    body = call.body(schemas.SubscriberAccountSettings)
    subscriber_billing.account(call.ctx, customer_id)  # 404 unless the customer exists
    target = subscriber_billing.book(call.ctx, customer_id)
    account = ledger.configure(target, body, customer_id)
    return _one(call, "billing_account", customer_id, ledger.account_view(account))


@api.route(f"{OF_CUSTOMER}/invoices", permission=BILLING_READ, summary="A customer's invoices")
def list_customer_invoices(call: Call, customer_id: str) -> Reply:
    return _invoices(call, customer_id)


@api.route(f"{OF_CUSTOMER}/invoices/{{number}}", permission=BILLING_READ)
def get_customer_invoice(call: Call, customer_id: str, number: str) -> Reply:
    return _invoice(call, customer_id, number)


@api.route(
    f"{OF_CUSTOMER}/invoices/{{number}}/credit-notes",
    ["POST"],
    permission=BILLING_WRITE,
    summary="Credit part of an invoice's balance (Idempotency-Key optional)",
)
def credit_customer_invoice(call: Call, customer_id: str, number: str) -> Reply:
    key = call.idempotency_key(required=False)
    body = call.body(schemas.CreditNoteRequest)
    note, replayed = subscriber_billing.credit(call.ctx, customer_id, number, body, key)
    view = ledger.credit_note_view(note)
    return _one(call, "credit_note", note.SK, view, 200 if replayed else 201)


@api.route(
    f"{OF_CUSTOMER}/payments",
    ["POST"],
    permission=BILLING_WRITE,
    summary="Record a payment (Idempotency-Key required): oldest invoices first, rest is credit",
)
def record_customer_payment(call: Call, customer_id: str) -> Reply:
    return _pay(call, customer_id)


@api.route(f"{OF_CUSTOMER}/payments", permission=BILLING_READ, summary="A customer's payments")
def list_customer_payments(call: Call, customer_id: str) -> Reply:
    return _payments(call, customer_id)


@api.route(f"{OF_CUSTOMER}/payments/{{payment_id}}", permission=BILLING_READ)
def get_customer_payment(call: Call, customer_id: str, payment_id: str) -> Reply:
    return _payment(call, customer_id, payment_id)


@api.route(
    "/billing/days",
    ["POST"],
    permission=BILLING_WRITE,
    summary="Queue the daily subscriber billing (invoices due, dunning) as of a day",
)
def start_billing_day(call: Call) -> Reply:
    body = call.body(schemas.DunningRequest)
    view = subscriber_billing.start_day(call.ctx, body.as_of)
    return Reply(single(resource("billing_day", view["as_of"], view), call.request.path), 202)


@api.route(f"{PORTAL}/profile", permission=PORTAL_READ, summary="The portal user's customer record")
def portal_profile(call: Call) -> Reply:
    return _customer(call, customers.get_customer(call.ctx, portal.customer_of(call.ctx)))


@api.route(f"{PORTAL}/services", permission=PORTAL_READ, summary="The portal user's services")
def portal_services(call: Call) -> Reply:
    mine = portal.customer_of(call.ctx)
    page = services.list_services(call.ctx, PageRequest.from_query(call.query), mine)
    items = [resource("service", i.number, services.service_summary(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(f"{PORTAL}/services/{{service_id}}", permission=PORTAL_READ)
def portal_service(call: Call, service_id: str) -> Reply:
    return _service(portal.service(call.ctx, service_id), base=f"{PORTAL}/services")


@api.route(f"{PORTAL}/invoices", permission=PORTAL_READ, summary="The portal user's invoices")
def portal_invoices(call: Call) -> Reply:
    return _invoices(call, portal.customer_of(call.ctx))


@api.route(f"{PORTAL}/invoices/{{number}}", permission=PORTAL_READ)
def portal_invoice(call: Call, number: str) -> Reply:
    return _invoice(call, portal.customer_of(call.ctx), number)


@api.route(f"{PORTAL}/billing-account", permission=PORTAL_READ, summary="Balance and credit")
def portal_account(call: Call) -> Reply:
    return _account(call, portal.customer_of(call.ctx))


@api.route(
    f"{PORTAL}/payments",
    ["POST"],
    permission=PORTAL_WRITE,
    summary="Pay (Idempotency-Key required); clearing a dunning block reconnects the services",
)
def portal_pay(call: Call) -> Reply:
    return _pay(call, portal.customer_of(call.ctx))


@api.route(f"{PORTAL}/payments", permission=PORTAL_READ, summary="The portal user's payments")
def portal_payments(call: Call) -> Reply:
    return _payments(call, portal.customer_of(call.ctx))


@api.route(f"{PORTAL}/payments/{{payment_id}}", permission=PORTAL_READ)
def portal_payment(call: Call, payment_id: str) -> Reply:
    return _payment(call, portal.customer_of(call.ctx), payment_id)


@api.route(f"{PORTAL}/tickets", permission=PORTAL_READ, summary="The portal user's tickets")
def portal_tickets(call: Call) -> Reply:
    mine = portal.customer_of(call.ctx)
    page = tickets.customer_tickets(call.ctx, mine, PageRequest.from_query(call.query))
    items = [resource("ticket", i.number, tickets.ticket_summary(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(f"{PORTAL}/tickets", ["POST"], permission=PORTAL_WRITE, summary="Open a ticket")
def portal_open_ticket(call: Call) -> Reply:
    opened = portal.open_ticket(call.ctx, call.body(portal.PortalTicket))
    return _ticket(opened, status=201, base=f"{PORTAL}/tickets")


@api.route(f"{PORTAL}/tickets/{{ticket_id}}", permission=PORTAL_READ)
def portal_ticket(call: Call, ticket_id: str) -> Reply:
    return _ticket(portal.ticket(call.ctx, ticket_id), base=f"{PORTAL}/tickets")


# --- dashboard -----------------------------------------------------------------------------

if TYPE_CHECKING:
    from dotmac.isp import dashboard
else:
    dashboard = lazy_module("dotmac.isp.dashboard")

DASHBOARD_READ = "isp:dashboard:read"  # isp_manager (isp:*:*), not technicians or customers


@api.route(
    "/dashboard",
    permission=DASHBOARD_READ,
    summary="Customers by state, MRR, receivables, open tickets by SLA, address utilisation",
)
def get_dashboard(call: Call) -> Reply:
    view = dashboard.get_dashboard(call.ctx)
    return Reply(single(resource("isp_dashboard", call.ctx.tenant_id, view), call.request.path))


# --- service activation (Step Functions) and the network adapter ---------------------------

if TYPE_CHECKING:
    from dotmac.isp import adapter, provisioning
else:
    adapter = lazy_module("dotmac.isp.adapter")
    provisioning = lazy_module("dotmac.isp.provisioning")


@app.lambda_function(name="isp_activation_step")
def isp_activation_step(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Step Functions task: one step of the service activation workflow."""
    return provisioning.run_step(event)


def _activation(item: Any, status: int = 200) -> Reply:
    link = _link(f"{SERVICES}/{item.number}/activation")
    headers = {"Location": link} if status == 202 else {}
    view = provisioning.activation_view(item)
    return Reply(single(resource("service_activation", item.number, view), link), status, headers)


@api.route(
    f"{SERVICES}/{{service_id}}/activation",
    ["POST"],
    permission=SERVICES_WRITE,
    summary="Activate a PENDING service (workflow: address, network, ACTIVE, first invoice)",
)
def start_activation(call: Call, service_id: str) -> Reply:
    body = call.body(provisioning.ActivationStart)
    key = call.idempotency_key(required=False)
    item, _ = provisioning.start(call.ctx, service_id, body, key)
    return _activation(item, status=202)


@api.route(f"{SERVICES}/{{service_id}}/activation", permission=SERVICES_READ, summary="Its steps")
def get_activation(call: Call, service_id: str) -> Reply:
    return _activation(provisioning.get_activation(call.ctx, service_id))


@api.route(
    f"{SERVICES}/{{service_id}}/network-commands",
    permission=SERVICES_READ,
    summary="Commands pushed to the network for the service (recording adapter)",
)
def list_network_commands(call: Call, service_id: str) -> Reply:
    page = adapter.list_commands(call.ctx, service_id, PageRequest.from_query(call.query))
    views = [adapter.command_view(i) for i in page.items]
    items = [resource("network_command", v["sequence"], v) for v in views]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(
    f"{SERVICES}/{{service_id}}/network-sync",
    ["POST"],
    permission=SERVICES_WRITE,
    summary="Push the service's current state to the network again (clears network_error)",
)
def sync_service_network(call: Call, service_id: str) -> Reply:
    return _service(adapter.resync(call.ctx, service_id))


# --- network inventory: devices, interfaces, circuits, device status reports ----------------

if TYPE_CHECKING:
    from dotmac.isp import network
else:
    network = lazy_module("dotmac.isp.network")

NETWORK_READ, NETWORK_WRITE = "isp:network:read", "isp:network:write"
DEVICES, CIRCUITS = "/devices", "/circuits"
INTERFACE = f"{DEVICES}/{{device_id}}/interfaces/{{interface}}"  # the name percent-encoded


def _device(found: Any, status: int = 200) -> Reply:
    item, interfaces = found
    device_id = network.id_of(item)
    link = _link(f"{DEVICES}/{device_id}")
    headers = {"Location": link} if status == 201 else {}
    view = network.device_view(item, interfaces)
    return Reply(single(resource("device", device_id, view), link), status, headers)


def _interface(item: Any, status: int = 200) -> Reply:
    segment = network.interface_segment(item.name)
    link = _link(f"{DEVICES}/{item.device_id}/interfaces/{segment}")
    headers = {"Location": link} if status == 201 else {}
    view = network.interface_view(item)
    return Reply(single(resource("interface", item.name, view), link), status, headers)


def _circuit(item: Any, status: int = 200) -> Reply:
    circuit_id = network.id_of(item)
    link = _link(f"{CIRCUITS}/{circuit_id}")
    headers = {"Location": link} if status == 201 else {}
    view = network.circuit_view(item)
    return Reply(single(resource("circuit", circuit_id, view), link), status, headers)


def _circuits(call: Call, page: Any) -> Reply:
    items = [resource("circuit", network.id_of(i), network.circuit_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(DEVICES, permission=NETWORK_READ, summary="Devices by name (?status=)")
def list_devices(call: Call) -> Reply:
    query = call.query
    page = network.list_devices(call.ctx, PageRequest.from_query(query), query.get("status"))
    items = [resource("device", network.id_of(i), network.device_summary(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(DEVICES, ["POST"], permission=NETWORK_WRITE, summary="Create a device (plan limit)")
def create_device(call: Call) -> Reply:
    body = call.body(network.DeviceCreate)
    return _device(network.create_device(call.ctx, body), status=201)


@api.route(f"{DEVICES}/{{device_id}}", permission=NETWORK_READ, summary="A device + interfaces")
def get_device(call: Call, device_id: str) -> Reply:
    return _device(network.get_device(call.ctx, device_id))


@api.route(
    f"{DEVICES}/{{device_id}}",
    ["PATCH"],
    permission=NETWORK_WRITE,
    summary="Profile, rename, maintenance on/off",
)
def update_device(call: Call, device_id: str) -> Reply:
    body = call.body(network.DeviceUpdate)
    return _device(network.update_device(call.ctx, device_id, body))


@api.route(f"{DEVICES}/{{device_id}}", ["DELETE"], permission=NETWORK_WRITE, summary="Decommission")
def delete_device(call: Call, device_id: str) -> Reply:
    network.delete_device(call.ctx, device_id)
    return Reply(None, status=204)


@api.route(
    f"{DEVICES}/{{device_id}}/status-history",
    permission=NETWORK_READ,
    summary="The device's status changes, newest first",
)
def device_status_history(call: Call, device_id: str) -> Reply:
    page = network.device_history(call.ctx, device_id, PageRequest.from_query(call.query))
    items = [
        resource("device_transition", str(i.SK), customers.transition_view(i)) for i in page.items
    ]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(
    f"{DEVICES}/{{device_id}}/status-events",
    ["POST"],
    permission=NETWORK_WRITE,
    summary="Queue a status report (applied by the device-events worker)",
)
def report_device_status(call: Call, device_id: str) -> Reply:
    body = call.body(network.StatusReport)
    message_id, event = network.report_status(
        call.ctx, device_id, body.status, body.at, body.detail
    )
    view = event.model_dump(mode="json")
    return Reply(single(resource("device_status_event", message_id, view), call.request.path), 202)


@api.route(f"{DEVICES}/{{device_id}}/interfaces", ["POST"], permission=NETWORK_WRITE)
def create_interface(call: Call, device_id: str) -> Reply:
    body = call.body(network.InterfaceCreate)
    return _interface(network.add_interface(call.ctx, device_id, body), status=201)


@api.route(INTERFACE, permission=NETWORK_READ, summary="An interface (name percent-encoded)")
def get_interface(call: Call, device_id: str, interface: str) -> Reply:
    return _interface(network.get_interface(call.ctx, device_id, interface))


@api.route(INTERFACE, ["PATCH"], permission=NETWORK_WRITE)
def update_interface(call: Call, device_id: str, interface: str) -> Reply:
    body = call.body(network.InterfaceUpdate)
    return _interface(network.update_interface(call.ctx, device_id, interface, body))


@api.route(INTERFACE, ["DELETE"], permission=NETWORK_WRITE, summary="If no circuit ends on it")
def delete_interface(call: Call, device_id: str, interface: str) -> Reply:
    network.delete_interface(call.ctx, device_id, interface)
    return Reply(None, status=204)


@api.route(CIRCUITS, permission=NETWORK_READ, summary="Circuits by provider and circuit id")
def list_circuits(call: Call) -> Reply:
    return _circuits(call, network.list_circuits(call.ctx, PageRequest.from_query(call.query)))


@api.route(CIRCUITS, ["POST"], permission=NETWORK_WRITE, summary="Create a circuit")
def create_circuit(call: Call) -> Reply:
    body = call.body(network.CircuitCreate)
    return _circuit(network.create_circuit(call.ctx, body), status=201)


@api.route(f"{CIRCUITS}/{{circuit_id}}", permission=NETWORK_READ, summary="A circuit")
def get_circuit(call: Call, circuit_id: str) -> Reply:
    return _circuit(network.get_circuit(call.ctx, circuit_id))


@api.route(
    f"{CIRCUITS}/{{circuit_id}}",
    ["PATCH"],
    permission=NETWORK_WRITE,
    summary="Rate, type, status, ends, services",
)
def update_circuit(call: Call, circuit_id: str) -> Reply:
    body = call.body(network.CircuitUpdate)
    return _circuit(network.update_circuit(call.ctx, circuit_id, body))


@api.route(f"{CIRCUITS}/{{circuit_id}}", ["DELETE"], permission=NETWORK_WRITE)
def delete_circuit(call: Call, circuit_id: str) -> Reply:
    network.delete_circuit(call.ctx, circuit_id)
    return Reply(None, status=204)


@api.route(
    f"{SERVICES}/{{service_id}}/circuits",
    permission=NETWORK_READ,
    summary="The circuits carrying a service",
)
def list_service_circuits(call: Call, service_id: str) -> Reply:
    page = network.service_circuits(call.ctx, service_id, PageRequest.from_query(call.query))
    return _circuits(call, page)


# --- service usage (accounting records) ----------------------------------------------------

if TYPE_CHECKING:
    from dotmac.isp import usage
else:
    usage = lazy_module("dotmac.isp.usage")


def _usage(call: Call, page: Any) -> Reply:
    items = [resource("usage_month", i.SK, usage.month_view(i)) for i in page.items]
    return Reply(collection(items, call.request.path, page.next_cursor))


@api.route(
    f"{SERVICES}/{{service_id}}/usage",
    ["POST"],
    permission=SERVICES_WRITE,
    summary="Count an accounting record (once per record_id)",
)
def record_usage(call: Call, service_id: str) -> Reply:
    view = usage.record(call.ctx, service_id, call.body(usage.UsageRecord))
    status = 201 if view["counted"] else 200
    return Reply(
        single(resource("usage_record", view["record_id"], view), call.request.path), status
    )


@api.route(f"{SERVICES}/{{service_id}}/usage", permission=SERVICES_READ, summary="Traffic by month")
def service_usage(call: Call, service_id: str) -> Reply:
    return _usage(call, usage.months(call.ctx, service_id, PageRequest.from_query(call.query)))


@api.route(f"{PORTAL}/services/{{service_id}}/usage", permission=PORTAL_READ, summary="Own traffic")
def portal_usage(call: Call, service_id: str) -> Reply:
    mine = portal.customer_of(call.ctx)
    page = PageRequest.from_query(call.query)
    return _usage(call, usage.customer_months(call.ctx, mine, service_id, page))
