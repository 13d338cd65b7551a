"""ABC Corp's sample ISP data for `make run`, created through the API as a client would:
service plans, an address pool, five subscribers (Jane's record linked to her portal user),
services activated through the activation workflow (which issues the prepaid customers'
first invoices), network devices and a circuit, Tom as a technician with an installation
work order, and a ticket Jane opened in the portal.

Idempotent: it does nothing once the tenant has service plans.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from devcloud.seed import ABC_CORP, ABC_CORP_USERS, DEMO_PASSWORD

ISP = "/api/v1/isp"
ACTIVATION_TIMEOUT = 60.0
PLANS = (
    {"name": "Fibre 50", "price": "25.00", "download_mbps": 50, "upload_mbps": 10},
    {"name": "Fibre 100", "price": "39.00", "download_mbps": 100, "upload_mbps": 20},
    {"name": "Business 1G", "price": "299.00", "download_mbps": 1000, "upload_mbps": 500},
)
# name, e-mail, billing day, mode, plan index, activated now
CUSTOMERS = (
    ("Jane Doe", "jane.doe@example.net", 1, "prepaid", 1, True),
    ("Bola Adeyemi", "bola@example.net", 15, "postpaid", 0, True),
    ("Chen Wei", "chen.wei@example.net", 1, "prepaid", 1, True),
    ("Lagos Bakery Ltd", "accounts@lagosbakery.example", 1, "postpaid", 2, True),
    ("Musa Ibrahim", "musa@example.net", 1, "prepaid", 0, False),  # awaiting installation
)
HOME = {"lat": 6.4474, "lon": 3.4723}  # Lekki, Lagos


class Gateway(Protocol):
    def handle(
        self, method: str, path: str, headers: Any, body: bytes | None
    ) -> tuple[int, Any, bytes]: ...


@dataclass
class Client:
    """One signed-in user's calls through the local gateway."""

    gateway: Gateway
    token: str = ""

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        raw = None if body is None else json.dumps(body).encode()
        status, _, out = self.gateway.handle(method, path, headers, raw)
        payload = json.loads(out) if out else None
        if status >= 300:
            raise RuntimeError(f"demo seed: {method} {path} answered {status}: {payload}")
        return payload

    def created(self, path: str, body: Any) -> str:
        return str(self.call("POST", ISP + path, body)["data"]["id"])

    def sign_in(self, email: str) -> Client:
        """The same user's calls, signed in through the identity service (in process: the
        login route's per-IP rate limit is for clients, not for the seed)."""
        from dotmac.identity import service
        from dotmac.identity.schemas import LoginRequest

        request = LoginRequest(tenant=ABC_CORP, email=email, password=DEMO_PASSWORD)
        session = service.login(request, host=None, request_id="seed-isp-demo")
        return Client(self.gateway, session.access_token)


def _email(role: str) -> str:
    return next(u.email for u in ABC_CORP_USERS if role in u.roles)


def _activate(john: Client, number: str, prefix: str) -> None:
    path = f"{ISP}/services/{number}/activation"
    john.call("POST", path, {"prefix_id": prefix, "reason": "installed (demo)"})
    deadline = time.monotonic() + ACTIVATION_TIMEOUT
    while (status := john.call("GET", path)["data"]["attributes"]["status"]) == "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"demo seed: activating {number} did not finish")
        time.sleep(0.05)
    if status != "SUCCEEDED":
        raise RuntimeError(f"demo seed: activating {number} ended {status}")


def _user_id(john: Client, email: str) -> str:
    users = john.call("GET", "/api/v1/users?limit=100")["data"]
    return str(next(u["id"] for u in users if u["attributes"]["email"] == email))


def ensure(gateway: Gateway) -> bool:
    """Create ABC Corp's sample ISP data unless it has some; True when it created it."""
    john = Client(gateway).sign_in(_email("tenant_admin"))
    if john.call("GET", f"{ISP}/service-plans")["data"]:
        return False
    plans = [john.created("/service-plans", plan) for plan in PLANS]
    vrf = john.created("/ipam/vrfs", {"name": "internet"})
    prefix = john.created("/ipam/prefixes", {"vrf_id": vrf, "prefix": "100.64.0.0/24"})

    services: dict[str, str] = {}
    for name, email, day, mode, plan, active in CUSTOMERS:
        body = {"name": name, "email": email, "billing_day": day, "billing_mode": mode}
        customer = john.created("/customers", body)
        number = john.created("/services", {"customer_id": customer, "plan_id": plans[plan]})
        if active:
            _activate(john, number, prefix)
        services[name] = f"{customer} {number}"
    jane_customer, jane_service = services["Jane Doe"].split()
    now = datetime.now(UTC)
    for hour in range(3):  # what a RADIUS accounting collector would report
        john.call(
            "POST",
            f"{ISP}/services/{jane_service}/usage",
            {
                "record_id": f"demo-session-1:{hour}",
                "at": now.isoformat(),
                "download_bytes": 1_500_000_000 + hour * 250_000_000,
                "upload_bytes": 200_000_000,
            },
        )
    musa_customer, musa_service = services["Musa Ibrahim"].split()
    _, bakery_service = services["Lagos Bakery Ltd"].split()

    router = john.created(
        "/devices",
        {
            "name": "core-router-1",
            "device_type": "router",
            "vendor": "MikroTik",
            "model": "CCR2004",
            "management_ip": "10.0.0.1",
            "site": "Lekki PoP",
        },
    )
    for interface in ("sfp-sfpplus1", "ether1"):
        john.call(
            "POST",
            f"{ISP}/devices/{router}/interfaces",
            {"name": interface, "interface_type": "fiber", "speed_mbps": 10000},
        )
    john.created(
        "/devices",
        {
            "name": "olt-lekki-1",
            "device_type": "olt",
            "vendor": "Huawei",
            "model": "MA5800-X7",
            "site": "Lekki PoP",
        },
    )
    john.created(
        "/circuits",
        {
            "cid": "MO-LEK-0042",
            "provider": "MainOne",
            "circuit_type": "transit",
            "commit_rate_mbps": 1000,
            "a_termination": {"device_id": router, "interface": "sfp-sfpplus1"},
            "z_termination": {"site": "MainOne Lekki carrier hotel"},
            "services": [bakery_service],
        },
    )

    tom = _user_id(john, _email("isp_technician"))
    skills = ["fiber_splicing", "router_config", "diagnostics"]
    john.created(
        "/technicians",
        {"user_id": tom, "name": "Tom", "skills": skills, "home": HOME, "rating": 4.7},
    )
    order = john.created(
        "/work-orders",
        {
            "type": "installation",
            "customer_id": musa_customer,
            "service_number": musa_service,
            "location": {"lat": 6.4412, "lon": 3.4795},
            "description": "Fibre drop and ONT for a new subscriber",
            "checklist": ["ONT mounted", "Signal level checked", "Router configured"],
        },
    )
    john.call("POST", f"{ISP}/work-orders/{order}/assign", {})

    jane_email = _email("isp_customer")
    jane_user = _user_id(john, jane_email)
    john.call("PATCH", f"/api/v1/users/{jane_user}", {"customer_id": jane_customer})
    jane = Client(gateway).sign_in(jane_email)
    jane.call(
        "POST",
        f"{ISP}/portal/tickets",
        {
            "subject": "Slow speeds in the evening",
            "description": "Speed tests show 20 Mbps on my 100 Mbps plan after 8pm.",
            "priority": "high",
            "category": "slow",
        },
    )
    return True
