"""Data in every app for the cross-tenant isolation matrix, and what a crawl of it finds.

`seed_tenant` creates one tenant's data through the API as its admin (identity: a custom
role, a technician user, a portal user linked to a customer, sessions; ISP: plans, VRFs,
prefixes, customers, services activated through the workflow, addresses, usage, tickets, a
technician, work orders, devices, interfaces, circuits, subscriber invoices, payments and
credit notes; billing: tenant payments), two of a kind where a list could page. Every name
and e-mail it chooses carries the tenant's tag, so the tag found in another tenant's answer
is a leak. `seed_platform` adds what only operators create (a billing run that invoices
every tenant, credit notes on those invoices, a partner, a feature flag).

`crawl` then walks every GET route a caller may use, from what it already knows: a list's
item ids are values of the parameter its child route names (`/customers` ->
`/customers/{customer_id}`), a resource's `Location` / `links.self` names the parameters of
the route template it matches. Nothing is hand-listed: a new route is crawled when it
appears. `BodyRecorder` keeps, per request model, one body that passed it.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from dotmac.core.api import RouteSpec
from tests.integration.billing_fixtures import drain, next_period
from tests.integration.identity_fixtures import Answer, Platform
from tests.integration.isp_activation import activated
from tests.integration.test_authorization_matrix import app_routes
from tests.integration.test_isp_customers import Isp

ISP = "/api/v1/isp"
PORTAL_PASSWORD = "Matrix-portal-2026"
# B's gapless document numbers start here, so no number of B's is also one of A's.
SEQUENCE_START = 900_000
SEQUENCES = ("INV", "ISP", "CN", "TCK")
PAGE = "limit=200"
HOME = {"lat": 6.4474, "lon": 3.4723}


class Routes:
    """Every route of every HTTP app, with the templates' parameters."""

    def __init__(self) -> None:
        specs, undeclared = app_routes()
        assert undeclared == []
        self.specs: list[RouteSpec] = specs
        self._patterns = [
            re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/?]+)", spec.path) + "$")
            for spec in specs
        ]
        self._paths = {spec.path for spec in specs}

    @staticmethod
    def params(path: str) -> list[str]:
        return re.findall(r"\{(\w+)\}", path)

    def child_param(self, path: str) -> str | None:
        """The parameter of the route one level below `path` (`/customers/{customer_id}`)."""
        for candidate in self._paths:
            found = re.fullmatch(re.escape(path) + r"/\{(\w+)\}", candidate)
            if found:
                return found.group(1)
        return None

    def match(self, path: str) -> dict[str, str]:
        """The parameters `path` gives the route template it matches ({} for a static one)."""
        path = path.split("?", 1)[0]
        if path in self._paths:
            return {}
        for pattern in self._patterns:
            found = pattern.match(path)
            if found:
                return found.groupdict()
        return {}


@dataclass
class Tenant:
    """One caller's view of the platform: its tokens and everything its answers named."""

    platform: Platform
    routes: Routes
    tenant_id: str
    tag: str
    admin: str
    portal: str | None = None
    values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    item_ids: set[str] = field(default_factory=set)
    # (route template, concrete path) -> the first page's next_cursor, for lists with more.
    cursors: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values["tenant_id"].add(self.tenant_id)

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        """Call as the admin; a portal route the admin is not linked for goes to the portal
        user. Every answer's links are harvested."""
        answer = self.platform.call(method, path, self.admin, body, headers)
        if answer.error_code == "NOT_LINKED_TO_CUSTOMER" and self.portal:
            answer = self.platform.call(method, path, self.portal, body, headers)
        self.harvest_links(answer)
        return answer

    def harvest_links(self, answer: Answer) -> None:
        links = [answer.header("Location")]
        if isinstance(answer.json, dict) and isinstance(answer.json.get("links"), dict):
            links.append(answer.json["links"].get("self"))
        for link in links:
            for name, value in self.routes.match(link or "").items():
                self.values[name].add(value)

    def ok(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        """The call's answer, which must be a success."""
        answer = self.call(method, path, body, headers)
        assert answer.status < 300, (method, path, answer.json)
        return answer

    def created(self, path: str, body: Any, **headers: str) -> str:
        return str(self.ok("POST", path, body, **headers).json["data"]["id"])

    def isp(self, path: str, body: Any, **headers: str) -> str:
        return self.created(ISP + path, body, **headers)


class BodyRecorder:
    """Keeps the first body each request model accepted (`Call.body` is watched)."""

    def __init__(self) -> None:
        self.bodies: dict[type, Any] = {}

    @contextmanager
    def watching(self) -> Iterator[None]:
        from dotmac.core.api import Call

        original = Call.body
        bodies = self.bodies

        def body(call: Any, model: Any) -> Any:
            parsed = original(call, model)
            bodies.setdefault(model, json.loads(call.request.raw_body or b"{}"))
            return parsed

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Call, "body", body)
            yield


def start_sequences_high(tenant_id: str) -> None:
    """Move the tenant's gapless sequences to SEQUENCE_START (this year and the next)."""
    from dotmac.billing.models import SequenceItem
    from dotmac.billing.numbering import PARTITION, sequence_key
    from dotmac.core.tenancy import TenantContext

    pk = TenantContext(tenant_id, "matrix").key(PARTITION)
    year = datetime.now(UTC).year
    for prefix, on in itertools.product(SEQUENCES, (year, year + 1)):
        SequenceItem(pk, sequence_key(prefix, on), last=SEQUENCE_START).save()


def seed_tenant(t: Tenant, net: str) -> None:
    """The tenant's data in every app (addresses from `net`.1.0/24 and `net`.2.0/24)."""
    g, big = t.tag, t.tag.title()
    t.created(
        "/api/v1/roles",
        {"name": f"{g}_auditor", "description": f"{big} auditors", "permissions": ["isp:*:read"]},
    )
    tech = t.created(
        "/api/v1/users",
        {"email": f"tech@{g}.example", "name": f"{big} Technician", "roles": ["isp_technician"]},
    )
    plans = [
        t.isp(
            "/service-plans",
            {"name": f"{big} Fibre {i}", "price": "30.00", "download_mbps": 100, "upload_mbps": 20},
        )
        for i in (1, 2)
    ]
    vrfs = [t.isp("/ipam/vrfs", {"name": f"{g}-vrf-{i}"}) for i in (1, 2)]
    prefixes = [
        t.isp("/ipam/prefixes", {"vrf_id": vrfs[0], "prefix": f"{net}.{i}.0/24"}) for i in (1, 2)
    ]
    customers = [
        t.isp(
            "/customers",
            {
                "name": f"{big} Subscriber {i}",
                "email": f"subscriber{i}@{g}.example",
                "billing_day": 1,
                "billing_mode": "prepaid",
            },
        )
        for i in (1, 2)
    ]
    services = [
        t.isp("/services", {"customer_id": customer, "plan_id": plan})
        for customer, plan in zip(customers, plans, strict=True)
    ]
    invoice = activated(Isp(t.platform, t.admin), services[0], prefix_id=prefixes[0])["invoice"]
    assert invoice is not None  # prepaid: the activation issued the first invoice
    owner = f"service:{services[0]}"
    t.ok(
        "POST",
        f"{ISP}/ipam/prefixes/{prefixes[1]}/available-ips",
        {"count": 2, "assigned_to": owner},
    )
    usage = {"at": datetime.now(UTC).isoformat(), "download_bytes": 1000, "upload_bytes": 100}
    t.ok("POST", f"{ISP}/services/{services[0]}/usage", {"record_id": f"{g}-acct-1", **usage})
    of_customer = f"{ISP}/customers/{customers[0]}"
    t.ok("PUT", f"{of_customer}/billing-account", {"payment_terms_days": 10})
    credit = {"amount": "0.10", "reason": f"{big} goodwill"}
    t.created(f"{of_customer}/invoices/{invoice}/credit-notes", credit)
    for i in (1, 2):
        t.created(f"{of_customer}/payments", {"amount": "1.00"}, **{"Idempotency-Key": f"{g}-{i}"})
    tickets = [
        t.isp(
            "/tickets",
            {
                "customer_id": customers[0],
                "subject": f"{big} outage {i}",
                "description": f"{big} link down",
                "priority": "high",
            },
        )
        for i in (1, 2)
    ]
    t.isp(
        "/technicians",
        {
            "user_id": tech,
            "name": f"{big} Tech",
            "skills": ["fiber_splicing", "router_config", "diagnostics"],
            "home": HOME,
        },
    )
    order = t.isp(
        "/work-orders",
        {
            "type": "installation",
            "customer_id": customers[1],
            "service_number": services[1],
            "location": HOME,
            "description": f"{big} installation",
        },
    )
    t.isp("/work-orders", {"type": "repair", "ticket_id": tickets[0], "location": HOME})
    t.ok("POST", f"{ISP}/work-orders/{order}/assign", {"technician_id": tech})
    devices = [
        t.isp(
            "/devices",
            {
                "name": f"{g}-router-{i}",
                "device_type": "router",
                "vendor": "MikroTik",
                "model": "X",
            },
        )
        for i in (1, 2)
    ]
    for i in (0, 1):
        t.isp(
            f"/devices/{devices[0]}/interfaces", {"name": f"{g}-eth{i}", "interface_type": "fiber"}
        )
    ends = [{"device_id": devices[0], "interface": f"{g}-eth{i}"} for i in (0, 1)]
    circuits = [
        t.isp(
            "/circuits",
            {
                "cid": f"{big}-CID-{i}",
                "provider": f"{big} Transit",
                "circuit_type": "transit",
                "commit_rate_mbps": 100,
                "a_termination": a_end,
                "z_termination": {"site": f"{big} carrier hotel"},
                "services": [services[0]],
            },
        )
        for i, a_end in ((1, ends[0]), (2, {"site": f"{big} PoP"}))
    ]
    t.ok("PATCH", f"{ISP}/circuits/{circuits[1]}", {"a_termination": ends[1], "services": services})
    portal_email = f"portal@{g}.example"
    t.platform.add_users(t.tenant_id, ((portal_email, PORTAL_PASSWORD, ("isp_customer",)),))
    portal_user = t.platform.user_id(portal_email, t.tenant_id)
    t.ok("PATCH", f"/api/v1/users/{portal_user}", {"customer_id": customers[0]})
    t.portal = t.platform.token(portal_email, t.tenant_id, password=PORTAL_PASSWORD)
    ticket = {
        "subject": f"{big} slow evenings",
        "description": f"{big} speed test",
        "priority": "low",
    }
    t.ok("POST", f"{ISP}/portal/tickets", ticket)


def seed_platform(platform: Platform, operator: Tenant, tenants: list[Tenant], target: str) -> None:
    """A billing run (every tenant invoiced), each tenant's payments and a credit note on its
    invoice, a partner and a feature flag on for `target` only."""
    period = {"period": next_period()}
    operator.created("/api/v1/platform/billing/runs", period, **{"Idempotency-Key": "matrix"})
    drain(platform)
    for t in tenants:
        (invoice,) = [i["id"] for i in t.ok("GET", "/api/v1/tenant/invoices").json["data"]]
        for i in (1, 2):
            pay = {"amount": "1.00"}
            t.created("/api/v1/tenant/payments", pay, **{"Idempotency-Key": f"{t.tag}-{i}"})
        operator.created(
            f"/api/v1/platform/tenants/{t.tenant_id}/invoices/{invoice}/credit-notes",
            {"amount": "0.10", "reason": "matrix"},
        )
    operator.created(
        "/api/v1/platform/partners", {"name": "Matrix Partner", "email": "p@m.example"}
    )
    rule = {"strategy": "tenants", "tenant_ids": [target]}
    operator.created("/api/v1/platform/flags", {"key": "matrix_flag", "rules": [rule]})


def crawl(t: Tenant, platform_routes: bool) -> None:
    """GET every route (platform routes, or the tenant's) with every combination of the
    values known, until nothing new turns up; list items name their child route's parameter
    and a list with a second page leaves its first cursor in `t.cursors`."""
    from dotmac.core.permissions import PUBLIC

    gets = [
        s
        for s in t.routes.specs
        if s.method == "GET"
        and s.permission != PUBLIC
        and s.permission.startswith("platform:") == platform_routes
    ]
    visited: set[str] = set()
    while True:
        todo = [
            (spec, path)
            for spec in gets
            for path in (fill(spec.path, a) for a in assignments(spec.path, t.values))
            if path not in visited
        ]
        if not todo:
            return
        for spec, path in todo:
            visited.add(path)
            answer = t.call("GET", f"{path}?{PAGE}")
            data = answer.json.get("data") if isinstance(answer.json, dict) else None
            if answer.status != 200 or not isinstance(data, list):
                continue
            ids = {str(item["id"]) for item in data}
            t.item_ids |= ids
            child = t.routes.child_param(spec.path)
            if child:
                t.values[child] |= ids
            first = t.call("GET", f"{path}?limit=1").json["meta"]["next_cursor"]
            if first:
                t.cursors[(spec.path, path)] = first


def assignments(template: str, values: dict[str, set[str]]) -> list[dict[str, str]]:
    """Every combination of `values` for the parameters of `template`."""
    names = Routes.params(template)
    pools = [sorted(values.get(name, ())) for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*pools)]


def fill(template: str, assignment: dict[str, str]) -> str:
    """`template` with its parameters replaced by `assignment`'s values."""
    return re.sub(r"\{(\w+)\}", lambda m: assignment[m.group(1)], template)


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return f"matrix-{uuid.uuid4().hex}"


__all__ = [
    "BodyRecorder",
    "Routes",
    "Tenant",
    "assignments",
    "crawl",
    "fill",
    "new_key",
    "seed_platform",
    "seed_tenant",
    "start_sequences_high",
]
