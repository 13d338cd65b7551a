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


def _service(found: Any, status: int = 200, **extra: Any) -> Reply:
    item, history = found
    link = _link(f"{SERVICES}/{item.number}")
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


@api.route(f"{SERVICES}/{{service_id}}/activate", ["POST"], permission=SERVICES_WRITE)
def activate_service(call: Call, service_id: str) -> Reply:
    return _service_action(call, service_id, "activate")


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


def _ticket(found: Any, status: int = 200) -> Reply:
    item, history = found
    link = _link(f"{TICKETS}/{item.number}")
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
