"""ISP data for the API bench (`bench/api.py`), created through the gateway by John (tenant
admin) in ABC Corp: 200 customers (a full page at the largest limit), 20 service plans (the
Professional plan allows 25), 20 devices with an interface each, and 60 (a full default page
of 50 and a next cursor) of each other listed kind: services, VRFs, prefixes, addresses
(allocated in one prefix to one service), circuits, tickets (every 5th answered: IN_PROGRESS)
and work orders (every 5th assigned to Tom); a technician profile for each of ABC's 5 users;
and for one customer (with a service, a ticket, a work order) an activated service, its first
invoice (through the activation workflow), a payment, and a portal user (isp_customer)
linked to him.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

BASE = "/api/v1/isp"
CUSTOMERS, PLANS, DEVICES, MANY = 200, 20, 20, 60
TOM = "tom@abc-corp.example"
LAGOS = {"lat": 6.5244, "lon": 3.3792}
PORTAL_USER = "subscriber@abc-corp.example"


def create_data(john: Any) -> dict[str, str]:
    """ABC Corp's ISP data, created by `john` (a `stack.Client`); the ids by the parameter
    names routes take them as, and `portal_user`: the email of the portal user."""
    isp = john.at(BASE)
    values = _seed(isp, _user_ids())
    return {**values, "portal_user": _portal_user(values["customer_id"])}


def _seed(isp: Any, users: dict[str, str]) -> dict[str, str]:
    """ABC Corp's ISP data; the ids by the parameter names routes take them as."""
    customers = [
        isp.created(
            "/customers",
            {
                "name": f"Customer {i}",
                "email": f"customer.{i}@example.net",
                "phone": "+234 801 234 5678",
                "address": {
                    "line1": f"{i} Fibre Street",
                    "city": "Lagos",
                    "postal_code": "100001",
                    "country": "NG",
                },
                "billing_mode": "prepaid",  # invoiced when a service is activated
            },
        )
        for i in range(CUSTOMERS)
    ]
    plans = [
        isp.created("/service-plans", {"name": f"Fibre {i}", "price": "30.00"})
        for i in range(PLANS)
    ]
    services = [
        isp.created("/services", {"customer_id": customers[i], "plan_id": plans[i % PLANS]})
        for i in range(MANY)
    ]
    vrfs = [isp.created("/ipam/vrfs", {"name": f"vrf-{i}"}) for i in range(MANY)]
    prefixes = [
        isp.created("/ipam/prefixes", {"vrf_id": vrfs[0], "prefix": f"10.0.{i}.0/24"})
        for i in range(MANY)
    ]
    assigned_to = f"service:{services[0]}"
    allocated = isp.ok(
        "POST",
        f"/ipam/prefixes/{prefixes[0]}/available-ips",
        {"count": MANY, "assigned_to": assigned_to},
    )
    tickets = [
        isp.created(
            "/tickets",
            {"customer_id": customers[i], "subject": f"Slow line {i}", "description": "Slow."},
        )
        for i in range(MANY)
    ]
    for number in tickets[::5]:
        isp.ok("POST", f"/tickets/{number}/respond", {"message": "Looking into it."})
    for user_id in users.values():
        body = {"user_id": user_id, "skills": ["diagnostics"], "home": LAGOS, "rating": 4.0}
        isp.created("/technicians", body)
    orders = [
        isp.created(
            "/work-orders", {"type": "repair", "customer_id": customers[i], "location": LAGOS}
        )
        for i in range(MANY)
    ]
    for order in orders[::5]:
        isp.ok("POST", f"/work-orders/{order}/assign", {"technician_id": users[TOM]})
    one = MANY - 1  # the customer the ids are of (the portal user's): his service, ticket...
    return {
        **_seed_billing(isp, customers[one], services[one], prefixes[1]),
        **_seed_network(isp, services[one]),
        "customer_id": customers[one],
        "customer": customers[one],
        "plan_id": plans[0],
        "service_id": services[one],
        "vrf_id": vrfs[0],
        "prefix_id": prefixes[0],
        "address": allocated["data"][0]["id"],
        "assigned_to": assigned_to,
        "ticket_id": tickets[one],
        "order_id": orders[one],
        "user_id": users[TOM],
        "technician": users[TOM],
    }


def _seed_billing(isp: Any, customer: str, service: str, prefix: str) -> dict[str, str]:
    """The customer activated, his service through the activation workflow (an address from
    `prefix`, the first invoice) and a payment; the invoice number and the payment id."""
    isp.ok("POST", f"/customers/{customer}/activate", {"reason": "paid"})
    isp.ok("POST", f"/services/{service}/activation", {"prefix_id": prefix})
    deadline = time.monotonic() + 30
    while True:
        done = isp.ok("GET", f"/services/{service}/activation")["data"]["attributes"]
        if done["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert done["status"] == "SUCCEEDED", done
    payment = isp.created(
        f"/customers/{customer}/payments", {"amount": "10.00"}, **{"Idempotency-Key": "bench-1"}
    )
    record = {"record_id": "bench-1", "download_bytes": 7_000, "upload_bytes": 1_000}
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    isp.created(f"/services/{service}/usage", {**record, "at": at})
    return {"payment_id": payment, "number": done["invoice"]}


def _seed_network(isp: Any, service: str) -> dict[str, str]:
    """Devices (the Professional plan allows 25) with an interface each, and circuits between
    them, each carrying `service`."""
    devices = [
        isp.created(
            "/devices",
            {"name": f"olt-{i}", "device_type": "olt", "vendor": "Huawei", "model": "MA5800"},
        )
        for i in range(DEVICES)
    ]
    for device in devices:
        isp.created(f"/devices/{device}/interfaces", {"name": "eth1"})
    circuits = [
        isp.created(
            "/circuits",
            {
                "cid": f"LGS-{i:04d}",
                "provider": "MainOne",
                "circuit_type": "backhaul",
                "commit_rate_mbps": 1000,
                "a_termination": {"device_id": devices[i % DEVICES], "interface": "eth1"},
                "z_termination": {"site": "Lagos IX"},
                "services": [service],
            },
        )
        for i in range(MANY)
    ]
    return {"device_id": devices[0], "interface": "eth1", "circuit_id": circuits[0]}


def _portal_user(customer: str) -> str:
    """A portal user (isp_customer) of ABC Corp linked to `customer`; his email."""
    from devcloud import seed
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity import service
    from dotmac.identity.schemas import UserCreate

    email = PORTAL_USER
    ctx = TenantContext(
        seed.ABC_CORP, "bench", permissions=frozenset({"identity:*:*"}), request_id="bench"
    )
    request = UserCreate(
        email=email, name="Subscriber", roles=["isp_customer"], customer_id=customer
    )
    service.create_user(ctx, request, password=seed.DEMO_PASSWORD)
    return email


def _user_ids() -> dict[str, str]:
    """ABC Corp's seeded users: email -> user id."""
    from devcloud import seed
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity.repository import UserRepository
    from dotmac.identity.service import user_id_of

    repo = UserRepository(TenantContext(seed.ABC_CORP, "bench"))
    found = {user.email: repo.find_by_email(user.email) for user in seed.ABC_CORP_USERS}
    return {email: user_id_of(user) for email, user in found.items() if user is not None}
