"""Cross-tenant isolation matrix (issue 7): every route of every HTTP app, called by tenant A
with tenant B's ids in its path, body and query string.

A is ABC Corp (its tenant admin, who holds every tenant permission; its portal user where a
route wants a linked customer), B is Globex (signed up through the workflow). Both get data
in every app (`matrix_seed`), and a crawl of each one's GET routes collects its ids by
path-parameter name. B's ids are the values B's crawl found and A's did not (B's gapless
numbers start at 900001, so none is also A's); a parameter B owns nothing of (a billing run,
a partner, a feature flag: platform things) is filled from the operator's crawl. Nothing is
hand-listed: the routes come from the apps, request models from the views' `call.body(Model)`
(`dotmac.core.openapi.route_reads`, as in the OpenAPI documents),
query keys from what each view reads, valid bodies from what A's seeding (and B's sign-up)
sent, else the model's smallest valid body; every reference in a body is A's unless the case
puts B's there. A's paths are those whose resource (the nearest GET route ending in a
parameter) answers A with 200.

The cases, per route and method:
- b-path: the path with B's ids, alone and mixed with A's (every combination holding at
  least one of B's), and A's valid body;
- b-body: A's path and one reference field of the request model (REFERENCES: customer_id,
  plan_id, services, a circuit end's device_id/interface, ...) set to each of B's ids;
- b-query: A's path with each query key the view reads that names a resource set to B's id;
- b-cursor: A's list with the `cursor` of the same list of B's;
- a-view: A's own GETs (every list and resource of A's);
- a-call: a mutation with none of the above, with A's valid body.

A leak is (1) any answer whose body holds a B-only value the request did not carry: one of
B's ids (an identifier: 8+ characters with a digit) or B's tag `globex`, which every name and
e-mail B's seed chose contains; or (2) a b-path, b-body or b-cursor case answered 2xx while
it carried one of B's ids: A acted on, linked to, listed under or paged into B's resource
(a list under B's parent id is 404, not A's empty list). Every case that carried B's id must
be refused with 400, 401, 403, 404, 409 or 422; a 5xx or 429 is an error.
B's items in the table and its objects in S3 must be identical before and after the matrix
(no write into B's key space).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from devcloud.registry import load_app_module
from dotmac.core.api import RouteSpec
from dotmac.core.openapi import route_reads
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX,
    JOHN,
    OPERATOR,
    Answer,
    Platform,
    decode_unverified,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import ADMIN_PASSWORD, object_keys, signup
from tests.integration.matrix_seed import (
    BodyRecorder,
    Routes,
    Tenant,
    assignments,
    crawl,
    fill,
    new_key,
    seed_platform,
    seed_tenant,
    start_sequences_high,
)

# Body fields and query keys that name a resource -> the path parameter whose values they take.
REFERENCES: dict[str, str] = {
    "customer_id": "customer_id",
    "customer": "customer_id",
    "plan_id": "plan_id",
    "vrf_id": "vrf_id",
    "prefix_id": "prefix_id",
    "ticket_id": "ticket_id",
    "device_id": "device_id",
    "interface": "interface",
    "user_id": "user_id",
    "user": "user_id",
    "technician_id": "user_id",
    "technician": "user_id",
    "service_number": "service_id",
    "services": "service_id",
    "subdomain": "tenant_id",
    "tenant": "tenant_id",
    "partner_id": "partner_id",
    "refresh_token": "refresh_token",
}
# IPAM's owner label `<kind>:<id>` is a free label in a body (IPAM does not resolve it) but
# a filter in a query: B's label must find nothing of B's. Query key -> (parameter, format).
QUERY_REFERENCES = {
    **{key: (param, "{}") for key, param in REFERENCES.items()},
    "assigned_to": ("service_id", "service:{}"),
}
# Values the caller chooses in its own namespace, not references to a resource.
FREE = frozenset({"name", "key", "address", "number", "record_id"})
# B's secret on a public route is no cross-tenant case: whoever presents it *is* B.
CREDENTIALS = frozenset({"refresh_token"})
REFUSALS = frozenset({400, 401, 403, 404, 409, 422})
ACTING = frozenset({"b-path", "b-body", "b-cursor"})
ID_LIKE = re.compile(r"(?=.*\d).{8,}")


@dataclass
class Case:
    """One call of the matrix."""

    kind: str
    spec: RouteSpec
    path: str
    body: Any = None
    sent: frozenset[str] = frozenset()  # B's values the request carries
    owned: bool = False  # one of them is B's own (not a platform filler)


@dataclass
class Matrix:
    """Tenant A calling with tenant B's ids; the checks' outcome."""

    platform: Platform
    routes: Routes
    a: Tenant
    b_owned: dict[str, list[str]]
    fillers: dict[str, list[str]]
    scan_for: frozenset[str]
    marker: str
    bodies: dict[type, Any]
    reachable: frozenset[str]
    b_cursors: dict[tuple[str, str], str] = field(default_factory=dict)
    queries: dict[str, set[str]] = field(default_factory=dict)
    valid_paths: dict[str, list[str]] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unfilled: set[str] = field(default_factory=set)

    def b_values(self, name: str) -> tuple[list[str], bool]:
        """B's values of parameter `name` (owned=True) or the platform fillers for it."""
        if self.b_owned.get(name):
            return self.b_owned[name], True
        return self.fillers.get(name, []), False

    def a_values(self) -> dict[str, set[str]]:
        """A's values by parameter; the platform fillers where A owns nothing of the kind."""
        return {**{k: set(v) for k, v in self.fillers.items()}, **self.a.values}

    def a_paths(self, spec: RouteSpec) -> list[str]:
        """`spec.path` with A's values: every combination whose nearest GET route answers
        200 (A's own resource exists), else the first combination."""
        if spec.path not in self.valid_paths:
            options = assignments(spec.path, self.a_values())
            if not options:
                self.unfilled.add(f"A has no value for a parameter of {spec.path}")
                options = [{}]
            ancestor = nearest_get(self.routes, spec.path)
            valid = [
                o
                for o in options
                if ancestor is not None and self.a.call("GET", fill(ancestor, o)).status == 200
            ]
            self.valid_paths[spec.path] = [fill(spec.path, o) for o in valid or options[:1]]
        return self.valid_paths[spec.path]

    def run(self, case: Case) -> None:
        headers = {"Idempotency-Key": new_key()} if case.spec.method != "GET" else None
        with reading_query() as keys:
            answer = self.a.call(case.spec.method, case.path, case.body, headers)
        if case.kind == "a-view":
            self.queries.setdefault(case.spec.path, set()).update(keys)
        self.kinds[case.kind] += 1
        self.statuses[answer.status] += 1
        self.judge(case, answer)

    def judge(self, case: Case, answer: Answer) -> None:
        where = f"{case.kind} {case.spec.method} {case.path} -> {answer.status}"
        text = answer.raw.decode(errors="replace")
        for value in case.sent:
            text = text.replace(value, "")
        found = sorted(v for v in self.scan_for if v in text)
        if self.marker in text.lower():
            found.append(self.marker)
        if found:
            self.leaks.append(f"{where}: B's {found} in {answer.raw[:300]!r}")
        elif case.owned and case.kind in ACTING and answer.status < 300:
            self.leaks.append(f"{where}: acted on B's {sorted(case.sent)}")
        elif answer.status >= 500 or answer.status == 429:
            self.errors.append(f"{where}: {answer.raw[:300]!r}")
        elif case.owned and case.kind in ACTING and answer.status not in REFUSALS:
            self.errors.append(f"{where}: not a refusal")


@contextmanager
def reading_query() -> Iterator[set[str]]:
    """The query keys the views read while inside (`Call.query` is watched)."""
    from dotmac.core.api import Call

    keys: set[str] = set()
    original: Any = Call.query

    class Watched(dict[str, str]):
        def get(self, key: str, default: Any = None) -> Any:
            keys.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> str:
            keys.add(key)
            return super().__getitem__(key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Call, "query", property(lambda call: Watched(original.fget(call))))
        yield keys


def nearest_get(routes: Routes, path: str) -> str | None:
    """The longest GET route of one resource (its template ends in a parameter) that is
    `path` or one of its ancestors: what must exist for a call on `path` to mean A's own."""
    gets = [
        s.path
        for s in routes.specs
        if s.method == "GET"
        and s.path.endswith("}")
        and (path == s.path or path.startswith(s.path + "/"))
    ]
    return max(gets, key=len) if gets else None


def reference_slots(model: type) -> list[tuple[tuple[str, ...], str]]:
    """(path inside the body, field name) of every REFERENCES field of `model`, nested
    objects included; a field that looks like a reference but is not one is reported."""
    schema = model.model_json_schema()  # type: ignore[attr-defined]
    defs = schema.get("$defs", {})
    found: list[tuple[tuple[str, ...], str]] = []

    def visit(node: dict[str, Any], at: tuple[str, ...]) -> None:
        node = resolve(node, defs)
        for name, prop in node.get("properties", {}).items():
            if name in REFERENCES:
                found.append(((*at, name), name))
            elif name not in FREE and re.search(r"_(id|number)$", name):
                raise AssertionError(f"{model.__name__}.{name} looks like a reference")
            else:
                visit(prop, (*at, name))

    visit(schema, ())
    return found


def resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`node` with a $ref followed and an optional (anyOf [x, null]) unwrapped."""
    while True:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in node or "oneOf" in node:
            choices = node.get("anyOf") or node["oneOf"]
            node = next(o for o in choices if o.get("type") != "null")
        else:
            return node


def smallest(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The smallest value the JSON schema `node` accepts (required properties only)."""
    from hypothesis import HealthCheck, find, settings
    from hypothesis import strategies as st

    node = resolve(node, defs)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        required = node.get("required", ())
        props = node.get("properties", {})
        return {name: smallest(props[name], defs) for name in props if name in required}
    if kind == "array":
        return [smallest(node["items"], defs) for _ in range(node.get("minItems", 0))]
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum", 0) + 1)
        return int(low) if kind == "integer" else low
    if kind == "boolean":
        return False
    formats = {
        "email": "matrix@matrix.example",
        "date": date.today().isoformat(),
        "date-time": datetime.now(UTC).isoformat(),
    }
    if node.get("format") in formats:
        return formats[node["format"]]
    if "pattern" in node:
        quiet = settings(database=None, suppress_health_check=list(HealthCheck))
        return find(st.from_regex(node["pattern"], fullmatch=True), lambda _: True, settings=quiet)
    return "matrix".ljust(node.get("minLength", 0), "x")


def get_at(body: Any, at: tuple[str, ...]) -> Any:
    for name in at:
        body = body.get(name) if isinstance(body, dict) else None
    return body


def set_at(body: dict[str, Any], at: tuple[str, ...], value: Any) -> None:
    for name in at[:-1]:
        body = body.setdefault(name, {})
    body[at[-1]] = value


def template(matrix: Matrix, model: Any) -> Any | None:
    """The body that passed `model` while A was seeded (or B signed up), else the model's
    smallest valid body (an update gets its first field: an empty one changes nothing); any
    reference in it that is not A's is set to A's. None when no such body passes the model."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    body: Any = copy.deepcopy(matrix.bodies.get(model))
    if body is None:
        body = smallest(schema, defs)
        if not body and schema.get("properties"):
            first, node = next(iter(schema["properties"].items()))
            body = {first: smallest(node, defs)}
    for at, name in reference_slots(model):
        mine = sorted(matrix.a_values().get(REFERENCES[name], ()))
        current = get_at(body, at)
        listed = current if isinstance(current, list) else [current]
        if current is not None and mine and any(v not in mine for v in listed):
            set_at(body, at, [mine[0]] if isinstance(current, list) else mine[0])
    try:
        model.model_validate(body)
    except ValueError:
        return None
    return body


def cases(matrix: Matrix, spec: RouteSpec) -> Iterator[Case]:
    """Every case of `spec` but its a-view (which runs first)."""
    from dotmac.core.permissions import PUBLIC, allowed

    models = route_reads(load_app_module(spec.app).api, spec).models if spec.method != "GET" else []
    model: Any = models[0] if models else None
    body: Any = template(matrix, model) if model else None
    if model and body is None and allowed(matrix.reachable, spec.permission):
        matrix.unfilled.add(f"no valid {model.__name__} body for {spec.method} {spec.path}")
    names = Routes.params(spec.path)
    pools = []
    for name in names:
        theirs, owned = matrix.b_values(name)
        if not theirs:
            matrix.unfilled.add(f"no value of B's for {{{name}}} in {spec.path}")
        pools.append(
            [(v, True, owned) for v in theirs]
            + [(v, False, False) for v in sorted(matrix.a.values.get(name, ()))]
        )
    for combo in itertools.product(*pools) if names else ():
        if not any(is_b for _, is_b, _ in combo):
            continue
        chosen = zip(names, (value for value, _, _ in combo), strict=True)
        path = fill(spec.path, dict(chosen))
        sent = frozenset(v for v, is_b, _ in combo if is_b)
        yield Case("b-path", spec, path, body, sent, any(o for _, _, o in combo))
    public = spec.permission == PUBLIC
    slots = reference_slots(model) if model and body is not None else []
    tried: dict[str, bool] = {}  # field name -> a case of it was built (at some path)
    for at, name in slots:
        if public and name in CREDENTIALS:
            continue
        theirs, owned = matrix.b_values(REFERENCES[name])
        tried.setdefault(name, False)
        for written in theirs:
            case_body = copy.deepcopy(body)
            set_at(case_body, at, [written] if name == "services" else written)
            try:
                model.model_validate(case_body)
            except ValueError:
                continue  # e.g. a circuit end given as a site: the other end carries it
            tried[name] = True
            for path in matrix.a_paths(spec):
                yield Case("b-body", spec, path, case_body, frozenset({written}), owned)
    for name in (n for n, built in tried.items() if not built):
        matrix.unfilled.add(f"no valid {model.__name__} body with B's {name}")
    if spec.method == "GET":
        yield from query_cases(matrix, spec)
    elif not names and not any(tried.values()):
        yield Case("a-call", spec, spec.path, body)


def query_cases(matrix: Matrix, spec: RouteSpec) -> Iterator[Case]:
    """B's ids in the query keys the view read, and B's cursor of the same list."""
    mine = matrix.a_paths(spec)[0]
    for key in sorted(matrix.queries.get(spec.path, ())):
        if key not in QUERY_REFERENCES:
            if re.search(r"_(id|number)$", key):
                matrix.unfilled.add(f"query key {key} of {spec.path} looks like a reference")
            continue
        param, form = QUERY_REFERENCES[key]
        theirs, owned = matrix.b_values(param)
        if not theirs:
            matrix.unfilled.add(f"no value of B's for ?{key}= of {spec.path}")
        for value in theirs:
            written = form.format(value)
            yield Case(
                "b-query", spec, f"{mine}?{key}={written}", None, frozenset({written}), owned
            )
    for (template_path, _), cursor in sorted(matrix.b_cursors.items()):
        if template_path == spec.path:
            yield Case("b-cursor", spec, f"{mine}?cursor={cursor}", None, frozenset({cursor}), True)


def b_state(platform: Platform, tenant: str) -> tuple[list[Any], list[str]]:
    """Every item of the table that names `tenant` in its keys (raw), and its S3 objects."""
    client = platform.cloud.client("dynamodb")
    items = [
        item
        for page in client.get_paginator("scan").paginate(TableName=platform.cloud.created.table)
        for item in page["Items"]
        if tenant in item["PK"]["S"] or tenant in item["SK"]["S"]
    ]
    items.sort(key=lambda i: (i["PK"]["S"], i["SK"]["S"]))
    return items, sorted(object_keys(platform, f"tenants/{tenant}/"))


def test_tenant_a_never_reaches_tenant_b_through_any_route(platform: Platform) -> None:
    routes = Routes()
    john = platform.session(JOHN)
    a = Tenant(platform, routes, ABC, "abc", john["access_token"])
    recorder = BodyRecorder()
    with recorder.watching():  # the bodies A sent (and B's sign-up): valid templates
        seed_tenant(a, "100.64")
        signup(platform, GLOBEX, apps=["isp", "crm", "projects"])  # through the workflow
    start_sequences_high(GLOBEX)
    b_session = platform.session(f"admin@{GLOBEX}.example", GLOBEX, password=ADMIN_PASSWORD)
    b = Tenant(platform, routes, GLOBEX, "globex", b_session["access_token"])
    b.values["refresh_token"].add(b_session["refresh_token"])
    operator = Tenant(
        platform, routes, "platform", "operator", platform.token(OPERATOR, "platform")
    )
    seed_tenant(b, "100.96")
    seed_platform(platform, operator, [a, b], target=GLOBEX)
    for tenant, platform_routes in ((a, False), (b, False), (operator, True)):
        crawl(tenant, platform_routes)
    mine = set(itertools.chain(a.item_ids, *a.values.values()))
    b_owned = {name: sorted(v - mine) for name, v in b.values.items() if v - mine}
    theirs = set(itertools.chain(b.item_ids, *b.values.values())) - mine
    matrix = Matrix(
        platform,
        routes,
        a,
        b_owned,
        {name: sorted(v) for name, v in operator.values.items()},
        frozenset(v for v in theirs if ID_LIKE.fullmatch(v)),
        b.tag,
        recorder.bodies,
        frozenset(decode_unverified(a.admin)["perms"]),
        b.cursors,
    )
    before = b_state(platform, GLOBEX)

    for spec in routes.specs:  # A's own views first: they choose A's paths, show the query keys
        for path in matrix.a_paths(spec) if spec.method == "GET" else ():
            matrix.run(Case("a-view", spec, path))
    for spec in routes.specs:
        for case in cases(matrix, spec):
            matrix.run(case)

    checks = sum(matrix.kinds.values())
    summary = (
        f"isolation matrix: {len(routes.specs)} routes x {len(matrix.kinds)} cases = {checks} "
        f"checks, {len(matrix.leaks)} leaks ({dict(sorted(matrix.kinds.items()))}; answers "
        f"{dict(sorted(matrix.statuses.items()))}; {len(matrix.errors)} errors, "
        f"{len(matrix.unfilled)} unfilled)"
    )
    print(summary)
    problems = [*matrix.leaks, *matrix.errors, *sorted(matrix.unfilled)]
    assert not problems, "\n".join([summary, *problems])
    assert b_state(platform, GLOBEX) == before, "a call of A's changed B's items or objects"

    # What the matrix found: A's admin could link A's portal user to B's customer.
    portal = platform.user_id(f"portal@{a.tag}.example", ABC)
    link = {"customer_id": b_owned["customer_id"][0]}
    refused = platform.call("PATCH", f"/api/v1/users/{portal}", a.admin, link)
    assert (refused.status, refused.json["error"]["details"]) == (
        400,
        [{"field": "customer_id", "message": "no such customer"}],
    )
    still = platform.call("GET", f"/api/v1/users/{portal}", a.admin).attributes["customer_id"]
    assert still in a.values["customer_id"]
