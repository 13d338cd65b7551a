"""API bench: DynamoDB calls per GET route of every app (goal: 1 per get or list page) and the
warm overhead of representative endpoints (DESIGN §10 bar: <= 1.3x the bare calls).

One in-process moto stack, bootstrapped and seeded as the other benches use it, with
`stack.linear_emulator` (a Query costs what its partition holds, as in DynamoDB). ABC Corp
gets the ISP data of `bench/isp.py`; then, through the API, the platform operator bills the
next period (a billing run drained through the real invoice worker: ABC Corp's invoice),
John pays part of it, and the operator creates a feature flag and a partner.

Calls per route: every GET route in every app's `Api` route table (none listed by hand;
public routes left out) is called through the gateway: as the portal user for the portal's
routes (`isp:portal:*`: his own records), as the platform operator for `platform:*` routes
and as John (tenant admin) for the rest, its path parameters filled by name from the seeded
ids (the billing app's `number` and `payment_id` are ABC Corp's platform invoice and payment,
the ISP app's its subscriber's); a route with a parameter nothing was seeded for, or that
does not answer 200, is printed as not measured (a list that refuses to answer without one
of its filters, e.g. `?assigned_to=`, is printed as needing it). Each query filter its view
reads (`query.get("...")` in its source, paging aside) is measured alone and, if it has
several, all together; the value is the first option the route's summary lists
(`?sla=ok|...`), else a seeded id of that name, else that attribute of the unfiltered list's
first item. A route over the goal that cannot do better says why in its view's docstring,
in a paragraph starting `Calls:`, printed as its note. Each
request is made twice and the second one counted (a warm container: lazy imports done, the
caches a first request fills filled). Counted, with botocore's event hooks
(`stack.aws_calls`): the DynamoDB calls made while the route runs, outside the authorizer and
the API meters (calls to other services, e.g. KMS for PII envelopes, listed beside). Not
counted but summed up: the authorizer's calls (warm: keys, tenant and user state cached, goal
0) and the meters' (rate-limit and hourly-quota leases: one UpdateItem per lease).

Warm overhead: `stack.warm_overhead` (full request vs its own calls replayed bare) for
GET /auth/me, GET /isp/customers/{id} (PII decrypted), GET /tenant/invoices/{number}, a list
page (GET /isp/tickets: 50 of 60+) and a write (POST /isp/tickets).

`.venv/bin/python bench/api.py [-n N]` runs this bench alone (figures in
bench/results/api.json); `make bench` runs it with the default N.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from typing import Any

N = 300
BAR = 1.3
GOAL = 1  # DynamoDB calls per get or list page
JOHN = "john.smith@abc-corp.example"
PAGING = frozenset({"limit", "cursor"})
FILTER = re.compile(r"""query\.get\(\s*["'](\w+)["']""")
OPTIONS = re.compile(r"\?(\w+)=(\w+)\|")  # `?sla=ok|at_risk|breached` in a summary
PARAMETER = re.compile(r"\{(\w+)\}")
WHY = re.compile(r"^Calls: .+?(?=\n\n|\Z)", re.MULTILINE | re.DOTALL)  # a view's reason
PORTAL = "isp:portal:"  # routes of the caller's own customer record: asked by a portal user
FLAG = "bench_flag"
# (app, method, path, caller): the representative endpoints of the warm-overhead table.
ENDPOINTS = (
    ("identity", "GET", "/api/v1/auth/me", "john"),
    ("isp", "GET", "/api/v1/isp/customers/{customer_id}", "john"),
    ("billing", "GET", "/api/v1/tenant/invoices/{number}", "john"),
    ("isp", "GET", "/api/v1/isp/tickets", "john"),
    ("isp", "POST", "/api/v1/isp/tickets", "john"),
)


def _next_period() -> str:
    today = datetime.now(UTC).date()
    return f"{date(today.year + (today.month == 12), today.month % 12 + 1, 1):%Y-%m}"


def _seed_platform(operator: Any, john: Any) -> dict[str, dict[str, str]]:
    """A billing run for the next period (ABC Corp invoiced), a payment, a flag, a partner;
    the ids by app, then by the parameter names routes take them as."""
    import billing

    body = {"period": _next_period()}
    run = operator.ok("POST", "/api/v1/platform/billing/runs", body, **{"Idempotency-Key": "b"})
    worker = billing.invoice_poller()
    while worker.poll_once():
        pass
    invoices = john.ok("GET", "/api/v1/tenant/invoices")["data"]
    assert invoices, "the billing run invoiced nothing"
    payment = john.created(
        "/api/v1/tenant/payments", {"amount": "10.00"}, **{"Idempotency-Key": "bench-pay"}
    )
    flag = {"key": FLAG, "rules": [{"strategy": "tenants", "tenant_ids": ["abc-corp"]}]}
    operator.ok("POST", "/api/v1/platform/flags", flag)
    partner = operator.created(
        "/api/v1/platform/partners", {"name": "Bench Partner", "email": "partner@bench.example"}
    )
    return {
        "billing": {
            "run_id": run["data"]["id"],
            "number": invoices[0]["attributes"]["number"],
            "payment_id": payment,
        },
        "*": {"key": FLAG, "partner_id": partner, "tenant_id": "abc-corp", "name": "isp_manager"},
    }


@contextmanager
def _attributed(apis: Mapping[str, Any], calls: Any) -> Iterator[None]:
    """File the calls of the authorizer and of every app's API meters under their part."""
    from stack import patched

    from dotmac.identity import authorizer

    with ExitStack() as stack:
        within = calls.within("authorizer", authorizer.authorize)
        stack.enter_context(patched(authorizer, authorize=within))
        for api in apis.values():
            stack.enter_context(patched(api, limiter=calls.within("meters", api.limiter)))
        yield


def _routes(apis: Mapping[str, Any]) -> Iterator[tuple[str, Any, list[str], str]]:
    """Every app's authenticated GET routes, each with the query filters its view reads and
    the reason its docstring gives for more calls than the goal ("" if none)."""
    from dotmac.core.permissions import PUBLIC

    for app, api in apis.items():
        for spec in api.specs:
            if spec.method != "GET" or spec.permission == PUBLIC:
                continue
            view = inspect.unwrap(api.app.routes[spec.path]["GET"].view_function)
            filters = dict.fromkeys(FILTER.findall(inspect.getsource(view)))
            found = WHY.search(inspect.getdoc(view) or "")
            why = " ".join(found.group().split()) if found else ""
            yield app, spec, [name for name in filters if name not in PAGING], why


def _measure(
    client: Any, calls: Any, route: str, path: str, *, why: str = "", filters: Any = ()
) -> tuple[Any, Any]:
    """The row of one warm request (the second of two) and its answer; `why` notes a count
    over the goal; a 400 on one of the route's `filters` says the list needs it."""
    client.call("GET", path)
    calls.clear()
    status, answer = client.call("GET", path)
    if status != 200:
        error = answer.get("error", {})
        needed = [d.get("field") for d in error.get("details") or () if d.get("field") in filters]
        if status == 400 and needed:
            wanted = ", ".join(f"?{name}=" for name in needed)
            return {"route": route, "status": f"needs {wanted} (measured with it below)"}, answer
        reason = f"HTTP {status} {error.get('code')}: {error.get('message')}"
        return {"route": route, "status": f"not measured: {reason}"}, answer
    mine = [c for c in calls.calls if c.part == "route"]
    dynamodb = Counter(c.operation for c in mine if c.service == "dynamodb")
    count = sum(dynamodb.values())
    row: dict[str, Any] = {
        "route": route,
        "calls": count,
        "dynamodb": dict(dynamodb),
        "other": dict(Counter(c.name for c in mine if c.service != "dynamodb")),
        "not_counted": dict(
            Counter(f"{c.part} {c.name}" for c in calls.calls if c.part != "route")
        ),
        "status": "ok" if count <= GOAL else f"OVER ({count} > {GOAL})",
    }
    if count > GOAL and why:
        row["why"] = why
    data = answer.get("data")
    if isinstance(data, list):
        row["items"] = len(data)
        row["more"] = bool(answer.get("meta", {}).get("next_cursor"))
    return row, answer


def _filter_value(
    name: str, summary: str, values: Mapping[str, str], first: Any
) -> tuple[str, str] | None:
    """(value, as shown) of the query filter `name`, or None when there is none to use."""
    options = dict(OPTIONS.findall(summary))
    if name in options:
        return options[name], options[name]
    if name in values:
        return values[name], f"{{{name}}}"
    found = (first or {}).get("attributes", {}).get(name)
    return None if found is None else (str(found), str(found))


def _caller(permission: str, users: Mapping[str, Any]) -> Any:
    if permission.startswith(PORTAL):
        return users["portal"]
    return users["operator" if permission.startswith("platform:") else "john"]


def calls_per_route(
    apis: Mapping[str, Any],
    users: Mapping[str, Any],
    calls: Any,
    values: Mapping[str, Mapping[str, str]],
) -> list[dict[str, Any]]:
    """One row per GET route (and per query filter of a list)."""
    from urllib.parse import urlencode

    rows: list[dict[str, Any]] = []
    for app, spec, filters, why in _routes(apis):
        known = {**values["*"], **values.get(app, {})}
        client = _caller(spec.permission, users)
        route = spec.path.removeprefix("/api/v1")
        missing = [p for p in PARAMETER.findall(spec.path) if p not in known]
        if missing:
            rows.append({"route": route, "status": f"not measured: nothing seeded for {missing}"})
            continue
        path = spec.path.format(**known)
        row, answer = _measure(client, calls, route, path, why=why, filters=filters)
        rows.append(row)
        data = answer.get("data")
        first = data[0] if isinstance(data, list) and data else None
        chosen = {name: _filter_value(name, spec.summary, known, first) for name in filters}
        usable = {name: found for name, found in chosen.items() if found is not None}
        variants = [{name: found} for name, found in usable.items()]
        if len(usable) > 1:
            variants.append(usable)
        for query in variants:
            sent = urlencode({k: v for k, (v, _) in query.items()}, safe=":")
            shown = "&".join(f"{k}={label}" for k, (_, label) in query.items())
            rows.append(_measure(client, calls, f"{route}?{shown}", f"{path}?{sent}", why=why)[0])
        for name in (name for name, found in chosen.items() if found is None):
            rows.append({"route": f"{route}?{name}=", "status": "not measured: no value"})
    return rows


def overhead(
    users: Mapping[str, Any], calls: Any, values: Mapping[str, Mapping[str, str]], n: int
) -> list[dict[str, Any]]:
    """`stack.warm_overhead` of each of ENDPOINTS."""
    from stack import warm_overhead

    ticket = {
        "customer_id": values["isp"]["customer_id"],
        "subject": "No signal",
        "description": "The ONT shows a red LOS light.",
    }
    rows = []
    for app, method, route, caller in ENDPOINTS:
        path = route.format(**{**values["*"], **values.get(app, {})})
        client = users[caller]
        body = None if method == "GET" else ticket

        def request(
            client: Any = client, method: str = method, path: str = path, body: Any = body
        ) -> int:
            return int(client.call(method, path, body)[0])

        result = warm_overhead(calls, request, n, writes=method != "GET")
        rows.append({"route": f"{method} {route.removeprefix('/api/v1')}", "bar": BAR, **result})
    return rows


def run(n: int = N) -> dict[str, Any]:
    import isp
    from stack import Client, aws_calls, gateway, linear_emulator, patched, seeded_stack

    from devcloud import registry
    from devcloud.seed import PLATFORM_OPERATOR
    from dotmac.core import ratelimit
    from dotmac.core.tenancy import PLATFORM_TENANT
    from infra.resources import STACK

    started = time.perf_counter()
    unlimited = ratelimit.Limit("api-user", 10**9, 60)  # overhead, not the limiter's refusals
    with seeded_stack(), linear_emulator(), patched(ratelimit, API_PER_USER=unlimited):
        apis = {app: registry.load_app_module(app).api for app in STACK.http_apps}
        through = gateway()
        john = Client(through, JOHN)
        operator = Client(through, PLATFORM_OPERATOR.email, tenant=PLATFORM_TENANT)
        ids = isp.create_data(john)
        users = {"john": john, "operator": operator, "portal": Client(through, ids["portal_user"])}
        values = {"isp": ids, **_seed_platform(operator, john)}
        values["*"] = {**ids, **values["*"]}
        seeded = time.perf_counter() - started
        with aws_calls() as calls, _attributed(apis, calls):
            rows = calls_per_route(apis, users, calls, values)
            overheads = overhead(users, calls, values, n)
    measured = [r for r in rows if "calls" in r]
    return {
        "goal_calls": GOAL,
        "seed_s": seeded,
        "rows": rows,
        "over_goal": [r["route"] for r in measured if r["calls"] > GOAL],
        "other_services": {r["route"]: r["other"] for r in measured if r["other"]},
        "not_counted": dict(sum((Counter(r["not_counted"]) for r in measured), Counter())),
        "requests_counted": len(measured),
        "overhead": overheads,
    }


def main(argv: list[str]) -> int:
    """`python bench/api.py [-n N]`: this bench alone, saved to bench/results/api.json."""
    import run as bench_run  # puts the repo's packages on sys.path, as `make bench` does

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=N, help=f"warm-overhead rounds (default {N})")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(args.n)
    bench_run.print_sections(bench_run.api_sections(result))
    out = bench_run.REPO / "bench" / "results" / "api.json"
    out.write_text(json.dumps({"measured_at": time.time(), "api": result}, indent=2))
    print(f"saved {out.relative_to(bench_run.REPO)} ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
