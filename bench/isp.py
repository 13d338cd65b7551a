"""ISP bench: DynamoDB calls per ISP read endpoint (goal: 1 per get or list page) and the warm
overhead of `GET /api/v1/isp/customers/{customer_id}` (DESIGN §10 bar: <= 1.3x).

One in-process moto stack, bootstrapped and seeded as the other benches use it, with
`stack.linear_emulator` (a Query costs what its partition holds, as in DynamoDB). ABC Corp
then gets ISP data through the gateway from John (tenant admin): 200 customers (a full page at
the largest limit), 20 service plans (the Professional plan allows 25), and 60 (a full default
page of 50 and a next cursor) of each other listed kind: services, VRFs, prefixes, addresses
(allocated in one prefix to one service), tickets (every 5th answered: IN_PROGRESS) and work
orders (every 5th assigned to Tom); a technician profile for each of ABC's 5 users; and for one
customer (with a service, a ticket, a work order) an activated service, its first invoice
(`subscriber_billing.bill` two months on), a payment, and a portal user (isp_customer) linked
to him.

Calls per route: every GET route in the ISP app's `Api` route table (none listed by hand; the
public health and OpenAPI routes left out) is called through the gateway, as the portal user
for the portal's routes (`isp:portal:*`: his own records) and as John for the rest, its path
parameters filled by name from the seeded ids (`_seed`'s values); a route with a parameter
nothing was seeded for, or that does not answer 200, is printed as not measured. Each query
filter its view reads (`query.get("...")` in its source, paging aside) is measured alone and,
if it has several, all together; the value is the first option the route's summary lists
(`?sla=ok|...`), else a seeded id of that name, else that attribute of the unfiltered list's
first item. Each request is made twice and the second one counted (a warm container: lazy
imports done, the caches a first request fills filled). Counted: the botocore calls made while
the request runs, outside the authorizer and the API meters (DynamoDB against the goal, KMS
beside it). Not counted but printed: the authorizer's calls (warm: keys, tenant and user state
cached, goal 0) and the meters' (rate-limit and hourly-quota leases: one UpdateItem per lease).

Warm overhead: after a warm-up, N rounds each time the full request through the gateway
(authorizer, tenancy, limiter, view, PII envelopes opened, JSON envelope) and the calls it
made, replayed as sent (same operations and parameters) with the shared boto3 clients: the
DynamoDB Query alone, and the Query plus the KMS Decrypts. Ratio = median full / median bare.

`.venv/bin/python bench/isp.py [-n N]` runs this bench alone (figures in
bench/results/isp.json); `make bench` runs it with the default N (saved in latest.json).
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

N = 300
BAR = 1.3
GOAL = 1  # DynamoDB calls per get or list page
BASE = "/api/v1/isp"
CUSTOMERS, PLANS, DEVICES, MANY = 200, 20, 20, 60
JOHN, TOM = "john.smith@abc-corp.example", "tom@abc-corp.example"
LAGOS = {"lat": 6.5244, "lon": 3.3792}
PAGING = frozenset({"limit", "cursor"})
FILTER = re.compile(r"""query\.get\(\s*["'](\w+)["']""")
OPTIONS = re.compile(r"\?(\w+)=(\w+)\|")  # `?sla=ok|at_risk|breached` in a summary
PARAMETER = re.compile(r"\{(\w+)\}")
PORTAL = "isp:portal:"  # routes of the caller's own customer record: asked by a portal user


@dataclass(frozen=True)
class Sent:
    """One botocore call: the part of the request that made it and what it was."""

    part: str  # "authorizer", "meters" or "route"
    service: str
    operation: str
    params: dict[str, Any]


class Isp:
    """One user's requests through the gateway."""

    def __init__(self, through: Any, header: str) -> None:
        self.through = through
        self.headers = {"Authorization": header, "Content-Type": "application/json"}

    def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, dict[str, Any]]:
        raw = None if body is None else json.dumps(body).encode()
        status, _, answer = self.through.handle(method, path, {**self.headers, **headers}, raw)
        return status, json.loads(answer) if answer else {}

    def ok(self, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        status, answer = self.call(method, BASE + path, body, **headers)
        assert status < 300, (path, answer)
        return answer

    def created(self, path: str, body: Any, **headers: str) -> str:
        return str(self.ok("POST", path, body, **headers)["data"]["id"])


@contextmanager
def _recorded(api: Any) -> Iterator[list[Sent]]:
    """Every botocore call made while inside, filed under the part of the request (the
    authorizer, the API meters of `api`'s limiter, or else the route) that made it."""
    from botocore.client import BaseClient
    from stack import patched

    from dotmac.identity import authorizer

    sent: list[Sent] = []
    part = ["route"]

    def recording(self: Any, operation: str, params: Any) -> Any:
        sent.append(Sent(part[0], self.meta.service_model.service_name, operation, params))
        return original["_make_api_call"](self, operation, params)

    def within(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            part[0] = name
            try:
                return fn(*args, **kwargs)
            finally:
                part[0] = "route"

        return run

    with ExitStack() as stack:
        original = stack.enter_context(patched(BaseClient, _make_api_call=recording))
        stack.enter_context(
            patched(authorizer, authorize=within("authorizer", authorizer.authorize))
        )
        stack.enter_context(patched(api, limiter=within("meters", api.limiter)))
        yield sent


def _seed(isp: Isp, users: dict[str, str]) -> dict[str, str]:
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


def _seed_billing(isp: Isp, customer: str, service: str, prefix: str) -> dict[str, str]:
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
    return {"payment_id": payment, "number": done["invoice"]}


def _seed_network(isp: Isp, service: str) -> dict[str, str]:
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

    email = "subscriber@abc-corp.example"
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


def _routes(api: Any) -> Iterator[tuple[Any, list[str]]]:
    """The app's authenticated GET routes, each with the query filters its view reads."""
    from dotmac.core.permissions import PUBLIC

    for spec in api.specs:
        if spec.method != "GET" or spec.permission == PUBLIC:
            continue
        view = inspect.unwrap(api.app.routes[spec.path]["GET"].view_function)
        filters = dict.fromkeys(FILTER.findall(inspect.getsource(view)))
        yield spec, [name for name in filters if name not in PAGING]


def _measure(isp: Isp, sent: list[Sent], route: str, path: str) -> tuple[Any, Any]:
    """The row of one warm request (the second of two) and its answer."""
    isp.call("GET", path)
    sent.clear()
    status, answer = isp.call("GET", path)
    if status != 200:
        error = answer.get("error", {})
        why = f"HTTP {status} {error.get('code')}: {error.get('message')}"
        return {"route": route, "status": f"not measured: {why}"}, answer
    mine = [s for s in sent if s.part == "route"]
    dynamodb = Counter(s.operation for s in mine if s.service == "dynamodb")
    calls = sum(dynamodb.values())
    row: dict[str, Any] = {
        "route": route,
        "calls": calls,
        "dynamodb": dict(dynamodb),
        "other": dict(
            Counter(f"{s.service}:{s.operation}" for s in mine if s.service != "dynamodb")
        ),
        "not_counted": dict(
            Counter(f"{s.part} {s.service}:{s.operation}" for s in sent if s.part != "route")
        ),
        "status": "ok" if calls <= GOAL else f"OVER ({calls} > {GOAL})",
    }
    data = answer.get("data")
    if isinstance(data, list):
        row["items"] = len(data)
        row["more"] = bool(answer.get("meta", {}).get("next_cursor"))
    return row, answer


def _filter_value(
    name: str, summary: str, values: dict[str, str], first: Any
) -> tuple[str, str] | None:
    """(value, as shown) of the query filter `name`, or None when there is none to use."""
    options = dict(OPTIONS.findall(summary))
    if name in options:
        return options[name], options[name]
    if name in values:
        return values[name], f"{{{name}}}"
    found = (first or {}).get("attributes", {}).get(name)
    return None if found is None else (str(found), str(found))


def calls_per_route(
    john: Isp, subscriber: Isp, api: Any, sent: list[Sent], values: dict[str, str]
) -> list[Any]:
    """One row per GET route (and per query filter of a list)."""
    from urllib.parse import urlencode

    rows: list[dict[str, Any]] = []
    for spec, filters in _routes(api):
        isp = subscriber if spec.permission.startswith(PORTAL) else john
        route = spec.path.removeprefix(BASE)
        missing = [p for p in PARAMETER.findall(spec.path) if p not in values]
        if missing:
            rows.append({"route": route, "status": f"not measured: nothing seeded for {missing}"})
            continue
        path = PARAMETER.sub(lambda m: values[m.group(1)], spec.path)
        row, answer = _measure(isp, sent, route, path)
        rows.append(row)
        data = answer.get("data")
        first = data[0] if isinstance(data, list) and data else None
        chosen = {name: _filter_value(name, spec.summary, values, first) for name in filters}
        known = {name: found for name, found in chosen.items() if found is not None}
        variants = [{name: found} for name, found in known.items()]
        if len(known) > 1:
            variants.append(known)
        for query in variants:
            sent_query = urlencode({k: v for k, (v, _) in query.items()}, safe=":")
            shown = "&".join(f"{k}={label}" for k, (_, label) in query.items())
            rows.append(_measure(isp, sent, f"{route}?{shown}", f"{path}?{sent_query}")[0])
        for name in (name for name, found in chosen.items() if found is None):
            rows.append({"route": f"{route}?{name}=", "status": "not measured: no value"})
    return rows


def warm_overhead(isp: Isp, sent: list[Sent], route: str, path: str, n: int) -> dict[str, Any]:
    """Median full request vs median bare calls it makes, interleaved over `n` rounds."""
    import statistics

    from botocore import xform_name

    from dotmac.core import aws

    for _ in range(20):  # warm-up
        isp.call("GET", path)
    sent.clear()
    status, _ = isp.call("GET", path)
    assert status == 200
    made = [s for s in sent if s.part == "route"]
    clients = {s.service: aws.client(s.service) for s in made}
    dynamodb = [s for s in made if s.service == "dynamodb"]

    def replay(calls: list[Sent]) -> None:
        for s in calls:
            getattr(clients[s.service], xform_name(s.operation))(**s.params)

    replay(made)
    samples: dict[str, list[float]] = {"full": [], "dynamodb": [], "dynamodb+kms": []}
    steps: dict[str, Callable[[], Any]] = {
        "full": lambda: isp.call("GET", path),
        "dynamodb": lambda: replay(dynamodb),
        "dynamodb+kms": lambda: replay(made),
    }
    for _ in range(n):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append(time.perf_counter() - start)
    median = {name: statistics.median(times) for name, times in samples.items()}
    return {
        "route": route,
        "n": n,
        "bar": BAR,
        "calls": dict(Counter(f"{s.service}:{s.operation}" for s in made)),
        "full_ms": median["full"] * 1000,
        "dynamodb_ms": median["dynamodb"] * 1000,
        "dynamodb_kms_ms": median["dynamodb+kms"] * 1000,
        "ratio_vs_dynamodb": median["full"] / median["dynamodb"],
        "ratio_vs_dynamodb_kms": median["full"] / median["dynamodb+kms"],
    }


def run(n: int = N) -> dict[str, Any]:
    from stack import bearer, gateway, linear_emulator, patched, seeded_stack

    from devcloud import registry
    from dotmac.core import ratelimit

    started = time.perf_counter()
    unlimited = ratelimit.Limit("api-user", 10**9, 60)  # overhead, not the limiter's refusals
    with (
        seeded_stack(),
        linear_emulator(),
        patched(ratelimit, API_PER_USER=unlimited),
    ):
        api = registry.load_app_module("isp").api
        through = gateway()
        john = Isp(through, bearer(through, JOHN))
        values = _seed(john, _user_ids())
        subscriber = Isp(through, bearer(through, _portal_user(values["customer_id"])))
        seeded = time.perf_counter() - started
        with _recorded(api) as sent:
            rows = calls_per_route(john, subscriber, api, sent, values)
            customer = f"{BASE}/customers/{values['customer_id']}"
            overhead = warm_overhead(john, sent, "/customers/{customer_id}", customer, n)
    measured = [r for r in rows if "calls" in r]
    return {
        "goal_calls": GOAL,
        "seed_s": seeded,
        "rows": rows,
        "over_goal": [r["route"] for r in measured if r["calls"] > GOAL],
        "other_services": {r["route"]: r["other"] for r in measured if r["other"]},
        "not_counted": dict(sum((Counter(r["not_counted"]) for r in measured), Counter())),
        "requests_counted": len(measured),
        "warm_overhead": overhead,
    }


def report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print(
        f"\nISP reads: DynamoDB calls per warm request (goal {result['goal_calls']} per get or"
        f" list page), John (tenant admin) through the gateway; data seeded in"
        f" {result['seed_s']:.1f}s"
    )
    width = max(len(r["route"]) for r in rows)
    print(f"{'route':{width}} {'calls':>5}  {'operations':30} {'items':>6}  status")
    for row in rows:
        if "calls" not in row:
            print(f"{row['route']:{width}} {'-':>5}  {'':30} {'':>6}  {row['status']}")
            continue
        operations = ", ".join(
            f"{name} x{count}" for name, count in {**row["dynamodb"], **row["other"]}.items()
        )
        items = "" if "items" not in row else f"{row['items']}{'+' if row['more'] else ''}"
        print(
            f"{row['route']:{width}} {row['calls']:5d}  {operations:30} {items:>6}  {row['status']}"
        )
    print(
        "  calls: the route's DynamoDB calls (other services listed, not counted);"
        " items: a list page's size, + when it has a next cursor"
    )
    for route, other in result["other_services"].items():
        print(f"  not DynamoDB (not against the goal), GET {route}: {other}")
    print(
        f"  left out of the {result['requests_counted']} counted requests:"
        f" {result['not_counted'] or 'nothing'} (authorizer: goal 0 when warm;"
        " meters: one lease UpdateItem per many requests)"
    )
    print(f"  over the goal: {', '.join(result['over_goal']) or 'none'}")
    w = result["warm_overhead"]
    print(
        f"\nWarm overhead of GET {w['route']} (median of {w['n']}, interleaved;"
        f" DESIGN §10 bar <= {w['bar']}x); its calls: {w['calls']}"
    )
    print(
        f"  full request {w['full_ms']:.2f} ms; bare DynamoDB {w['dynamodb_ms']:.2f} ms ->"
        f" {w['ratio_vs_dynamodb']:.2f}x; bare DynamoDB + KMS {w['dynamodb_kms_ms']:.2f} ms ->"
        f" {w['ratio_vs_dynamodb_kms']:.2f}x"
        f" ({'meets' if w['ratio_vs_dynamodb_kms'] <= w['bar'] else 'OVER'} the bar)"
    )


def main(argv: list[str]) -> int:
    """`python bench/isp.py [-n N]`: this bench alone, saved to bench/results/isp.json."""
    import run as bench_run  # puts the repo's packages on sys.path, as `make bench` does

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=N, help=f"warm-overhead rounds (default {N})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.n)
    report(result)
    out = bench_run.REPO / "bench" / "results" / "isp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"measured_at": time.time(), "isp": result}, indent=2))
    print(f"saved {out.relative_to(bench_run.REPO)} ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
