"""The load test's users (`make load` runs them, see bench/load.py): ABC Corp's people working on
the seeded demo data of the local platform, with think time between actions.

- Sarah (ISP manager) and John (tenant admin): customers, services, tickets, work orders,
  invoices and the dashboard; they open and answer tickets, add customers, take payments
  (each with its own Idempotency-Key) and record usage; John also reads his identity and
  the tenant's subscriptions, usage and invoices.
- Tom (technician): his work orders; he adds notes to them.
- Jane (portal customer): her profile, services, usage, invoices, payments and tickets; she
  opens tickets.

Each demo user signs in once, at the start (logins are limited to 5 a minute per IP); John
then looks up the ids the tasks use and opens 5 work orders for Tom. At the end locust's request
statistics (per request name, per group of them and overall) go to $LOAD_RESULTS as JSON.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
from locust import FastHttpUser, between, events, task
from locust.env import Environment
from locust.stats import StatsEntry

from devcloud.seed import ABC_CORP, ABC_CORP_USERS, DEMO_PASSWORD

API = "/api/v1"
SIGNED_IN = ("john", "sarah", "tom", "jane")  # by first name; Mike has no part here
LAGOS = {"lat": 6.4474, "lon": 3.4723}
TOKENS: dict[str, str] = {}
IDS: dict[str, Any] = {}


def _get(host: str, who: str, path: str) -> Any:
    answer = requests.get(host + path, headers={"Authorization": TOKENS[who]}, timeout=30)
    answer.raise_for_status()
    return answer.json()["data"]


def _post(host: str, who: str, path: str, body: Any) -> Any:
    answer = requests.post(
        host + path, json=body, headers={"Authorization": TOKENS[who]}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["data"]


@events.test_start.add_listener
def sign_in(environment: Environment, **_: Any) -> None:
    """Sign every demo user in once; find the ids the tasks use; open Tom's work orders."""
    host = str(environment.host)
    emails = {user.name.split()[0].lower(): user.email for user in ABC_CORP_USERS}
    for who in SIGNED_IN:
        body = {"tenant": ABC_CORP, "email": emails[who], "password": DEMO_PASSWORD}
        answer = requests.post(f"{host}/api/v1/auth/login", json=body, timeout=30)
        answer.raise_for_status()
        TOKENS[who] = f"Bearer {answer.json()['data']['attributes']['access_token']}"
    services = _get(host, "john", "/api/v1/isp/services?limit=200")
    active = [s for s in services if s["attributes"]["status"] == "ACTIVE"]
    IDS["customers"] = [c["id"] for c in _get(host, "john", "/api/v1/isp/customers?limit=200")]
    IDS["services"] = [s["id"] for s in services]
    IDS["active"] = [(s["id"], s["attributes"]["customer_id"]) for s in active]
    IDS["tickets"] = [t["id"] for t in _get(host, "john", "/api/v1/isp/tickets")]
    technician = _get(host, "john", "/api/v1/isp/technicians")[0]["id"]
    orders = []
    for _ in range(5):
        body = {"type": "repair", "customer_id": random.choice(IDS["customers"]), "location": LAGOS}
        order = _post(host, "john", "/api/v1/isp/work-orders", body)["id"]
        _post(
            host, "john", f"/api/v1/isp/work-orders/{order}/assign", {"technician_id": technician}
        )
        orders.append(order)
    IDS["orders"] = orders
    IDS["jane_services"] = [s["id"] for s in _get(host, "jane", "/api/v1/isp/portal/services")]
    IDS["jane_invoices"] = [i["id"] for i in _get(host, "jane", "/api/v1/isp/portal/invoices")]


def _group(name: str) -> str:
    """`GET /isp/portal/...` -> "portal reads", `POST /isp/...` -> "isp writes"."""
    method, path = name.split(" ", 1)
    area = "portal" if path.startswith("/isp/portal/") else path.split("/")[1]
    return f"{area} {'reads' if method == 'GET' else 'writes'}"


def _row(entry: StatsEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "error_rate": entry.fail_ratio,
        "p50_ms": entry.get_response_time_percentile(0.50),
        "p95_ms": entry.get_response_time_percentile(0.95),
        "p99_ms": entry.get_response_time_percentile(0.99),
        "rps": entry.total_rps,
    }


@events.quitting.add_listener
def save(environment: Environment, **_: Any) -> None:
    """Write the statistics per request name, per group and overall, and the errors seen,
    to $LOAD_RESULTS (JSON)."""
    target = os.environ.get("LOAD_RESULTS")
    if not target:
        return
    stats = environment.stats
    endpoints = sorted(stats.entries.values(), key=lambda entry: entry.name)
    groups: dict[str, StatsEntry] = {}
    for entry in endpoints:
        label = _group(entry.name)
        groups.setdefault(label, StatsEntry(stats, label, "")).extend(entry)
    result = {
        "seconds": (stats.last_request_timestamp or 0) - stats.start_time,
        "total": {**_row(stats.total), "name": "all requests"},
        "groups": [_row(group) for _, group in sorted(groups.items())],
        "endpoints": [_row(entry) for entry in endpoints],
        "errors": [
            {"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
            for e in stats.errors.values()
        ],
    }
    with open(target, "w") as out:
        json.dump(result, out)


class _Demo(FastHttpUser):
    abstract = True
    who = ""
    wait_time = between(*(float(part) for part in os.environ.get("LOAD_WAIT", "0.5,2").split(",")))

    def get(self, route: str, **ids: str) -> None:
        """GET `route` (`/isp/customers/{id}`, also the name its figures go under) with `ids`."""
        headers = {"Authorization": TOKENS[self.who]}
        self.client.get(API + route.format(**ids), headers=headers, name=f"GET {route}")

    def post(self, route: str, body: Any, headers: dict[str, str] | None = None, **ids: str) -> Any:
        """The created resource, or None when refused (an error status counts as a failure)."""
        headers = {**(headers or {}), "Authorization": TOKENS[self.who]}
        path = API + route.format(**ids)
        answer = self.client.post(path, json=body, headers=headers, name=f"POST {route}")
        return answer.json()["data"] if answer.status_code < 300 else None


class _Staff(_Demo):
    """What ISP staff do all day."""

    abstract = True

    def on_start(self) -> None:
        self.tickets: list[str] = []

    @task(3)
    def customers(self) -> None:
        self.get("/isp/customers")

    @task(5)
    def customer(self) -> None:
        customer = random.choice(IDS["customers"])
        self.get("/isp/customers/{id}", id=customer)

    @task(2)
    def services(self) -> None:
        self.get("/isp/services")

    @task(3)
    def service(self) -> None:
        number = random.choice(IDS["services"])
        self.get("/isp/services/{number}", number=number)

    @task(3)
    def tickets_page(self) -> None:
        self.get("/isp/tickets")

    @task(3)
    def ticket(self) -> None:
        ticket = random.choice(self.tickets or IDS["tickets"])
        self.get("/isp/tickets/{id}", id=ticket)

    @task(2)
    def work_orders(self) -> None:
        self.get("/isp/work-orders")

    @task(2)
    def dashboard(self) -> None:
        self.get("/isp/dashboard")

    @task(2)
    def invoices(self) -> None:
        _, customer = random.choice(IDS["active"])
        self.get("/isp/customers/{id}/invoices", id=customer)

    @task(2)
    def open_ticket(self) -> None:
        body = {
            "customer_id": random.choice(IDS["customers"]),
            "subject": "Intermittent drops",
            "description": "The line drops a few times an hour.",
        }
        created = self.post("/isp/tickets", body)
        if created:
            self.tickets.append(created["id"])

    @task(1)
    def answer_ticket(self) -> None:
        if self.tickets:
            ticket = random.choice(self.tickets)
            body = {"message": "An engineer is checking the line."}
            self.post("/isp/tickets/{id}/respond", body, id=ticket)

    @task(1)
    def add_customer(self) -> None:
        body = {"name": "Load Test Customer", "email": f"load.{uuid.uuid4().hex[:12]}@example.net"}
        created = self.post("/isp/customers", body)
        if created:
            IDS["customers"].append(created["id"])

    @task(1)
    def take_payment(self) -> None:
        _, customer = random.choice(IDS["active"])
        key = {"Idempotency-Key": uuid.uuid4().hex}
        self.post("/isp/customers/{id}/payments", {"amount": "1.00"}, key, id=customer)

    @task(1)
    def record_usage(self) -> None:
        number, _ = random.choice(IDS["active"])
        body = {
            "record_id": f"load-{uuid.uuid4().hex}",
            "at": datetime.now(UTC).isoformat(),
            "download_bytes": random.randint(10**6, 10**9),
            "upload_bytes": random.randint(10**5, 10**8),
        }
        self.post("/isp/services/{number}/usage", body, number=number)


class Sarah(_Staff):
    weight = 3
    who = "sarah"


class John(_Staff):
    weight = 2
    who = "john"

    @task(2)
    def me(self) -> None:
        self.get("/auth/me")

    @task(1)
    def tenant_invoices(self) -> None:
        self.get("/tenant/invoices")

    @task(1)
    def subscriptions(self) -> None:
        self.get("/tenant/subscriptions")

    @task(1)
    def usage(self) -> None:
        self.get("/tenant/usage")


class Tom(_Demo):
    weight = 2
    who = "tom"

    @task(4)
    def orders(self) -> None:
        self.get("/isp/work-orders")

    @task(4)
    def order(self) -> None:
        order = random.choice(IDS["orders"])
        self.get("/isp/work-orders/{id}", id=order)

    @task(1)
    def me(self) -> None:
        self.get("/auth/me")

    @task(1)
    def note(self) -> None:
        order = random.choice(IDS["orders"])
        body = {"text": "Splice box checked, signal within range."}
        self.post("/isp/work-orders/{id}/notes", body, id=order)


class Jane(_Demo):
    weight = 3
    who = "jane"

    @task(2)
    def profile(self) -> None:
        self.get("/isp/portal/profile")

    @task(3)
    def services(self) -> None:
        self.get("/isp/portal/services")

    @task(2)
    def service(self) -> None:
        number = random.choice(IDS["jane_services"])
        self.get("/isp/portal/services/{number}", number=number)

    @task(2)
    def usage(self) -> None:
        number = random.choice(IDS["jane_services"])
        self.get("/isp/portal/services/{number}/usage", number=number)

    @task(2)
    def invoices(self) -> None:
        self.get("/isp/portal/invoices")

    @task(1)
    def invoice(self) -> None:
        number = random.choice(IDS["jane_invoices"])
        self.get("/isp/portal/invoices/{number}", number=number)

    @task(1)
    def billing_account(self) -> None:
        self.get("/isp/portal/billing-account")

    @task(1)
    def payments(self) -> None:
        self.get("/isp/portal/payments")

    @task(2)
    def tickets(self) -> None:
        self.get("/isp/portal/tickets")

    @task(1)
    def open_ticket(self) -> None:
        body = {"subject": "Slow in the evening", "description": "20 Mbps after 8pm."}
        self.post("/isp/portal/tickets", body)
