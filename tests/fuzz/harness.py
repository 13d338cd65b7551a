"""API fuzzing (issue 7): schemathesis against every app's OpenAPI document on the running
local stack.

Each app's document (`/api/v1/<app>/openapi.json`, built from its routes and views by
`dotmac.core.openapi`) is loaded from the stack and every operation in it is fuzzed
(schemathesis' coverage and fuzzing phases, `max_examples` per operation), with three checks
on every answer:
- not_a_server_error: no 5xx, ever;
- response_schema_conformance: the body is what the document says (the success envelope on
  a 2xx, the error envelope on a 4xx);
- error_envelope: every 4xx body is exactly `{"error": {code, message, details, request_id}}`
  carrying the request's X-Request-Id.
A 429 is an answer like any other: checked, never waited out or retried.

Callers: JOHN (ABC Corp's tenant admin) on every route his permissions grant, the platform
operator on the others (the route's `x-dotmac-permission` decides). Their tokens are renewed
with the refresh token before they expire.

What the run must not do to itself:
- a generated call whose path names a caller's own user or tenant (disable JOHN, suspend ABC
  Corp) is filtered out: schemathesis reuses ids it saw in earlier answers;
- the calls in LAST change the callers' access or their tenant as a whole; they run after
  every app's main pass, in a pass of their own.
Going deeper than a random id's 404 (`Known`): the path parameters of a generated call are,
half the time, a combination of values the run's own answers named (a 2xx answer's
`Location` and `links.self`, a page's item ids), and a body field or query key named like a
path parameter (`customer_id`, `plan_id`) likewise takes one of its values half the time, so
calls reach records that exist. Before the first pass every parameterless GET route is read
once by its caller to learn what the demo tenant and the platform already hold.

The stack runs with ENV: the per-user API limit of DESIGN §5 (100 a minute) raised so it
does not starve the run; the login, sign-up, search and bulk limits stay as they are.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import Status, events, from_schema

from devcloud.launcher import LocalStack
from devcloud.seed import ABC_CORP, ABC_CORP_USERS, DEMO_PASSWORD, PLATFORM_OPERATOR
from dotmac.core.permissions import PUBLIC, allowed
from dotmac.core.tenancy import PLATFORM_TENANT
from infra.resources import STACK

ENV = {"DOTMAC_API_LIMIT_PER_USER": "1000000", "DOTMAC_ACCESS_LOG": "false"}
SERVER_ERROR, SCHEMA, ENVELOPE = (
    "not_a_server_error",
    "response_schema_conformance",
    "error_envelope",
)
ENVELOPE_KEYS = {"code", "message", "details", "request_id"}
# Fuzzed after every app's main pass: each changes the callers' access or their tenant.
LAST = (
    "POST /api/v1/auth/logout",  # `everywhere` ends JOHN's sessions: no more token renewal
    "PUT /api/v1/tenant/plan",  # another plan: other limits for ABC Corp
    "DELETE /api/v1/tenant/subscriptions/{app_key}",  # ABC Corp leaves isp, crm, ...
    "POST /api/v1/platform/billing/dunning",  # may suspend ABC Corp over its overdue invoices
)
RENEW_AFTER_SECONDS = 600  # access tokens live 15 minutes
WORKERS = 1  # schemathesis generating in threads hit CPython 3.11 AST errors
SHOWN = 20  # distinct problems shown per app


@schemathesis.check
def error_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx body is the error envelope, with the id of the request it answers."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} body is not JSON") from None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(body) != {"error"} or set(error) != ENVELOPE_KEYS:
        raise AssertionError(f"{response.status_code} body is not the error envelope: {body}")
    details = error["details"]
    if not (
        isinstance(error["code"], str)
        and error["code"]
        and isinstance(error["message"], str)
        and isinstance(details, list)
        and all(isinstance(d, dict) and set(d) == {"field", "message"} for d in details)
    ):
        raise AssertionError(f"{response.status_code} envelope fields are malformed: {error}")
    header = response.headers.get("x-request-id") or response.headers.get("X-Request-Id")
    header = header[0] if isinstance(header, list) else header
    if not error["request_id"] or error["request_id"] != header:
        raise AssertionError(f"request_id {error['request_id']!r} is not X-Request-Id {header!r}")
    return None


@dataclass
class Identity:
    """A signed-in user whose access token is renewed before it expires."""

    stack: LocalStack
    email: str
    tenant: str
    access: str = ""
    refresh: str = ""
    permissions: frozenset[str] = frozenset()
    subject: str = ""
    issued: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sign_in(self) -> Identity:
        body = {"tenant": self.tenant, "email": self.email, "password": DEMO_PASSWORD}
        answer = self.stack.request("POST", "/api/v1/auth/login", body)
        assert answer.status == 200, f"{self.email} cannot sign in: {answer.json()}"
        self._take(answer.json())
        return self

    def token(self) -> str:
        """The access token, renewed first when it is old (kept if renewal is refused: the
        run's last pass may have ended the session)."""
        with self.lock:
            if time.monotonic() - self.issued > RENEW_AFTER_SECONDS:
                body = {"refresh_token": self.refresh}
                answer = self.stack.request("POST", "/api/v1/auth/refresh", body)
                if answer.status == 200:
                    self._take(answer.json())
            return self.access

    def _take(self, session: dict[str, Any]) -> None:
        import jwt

        attributes = session["data"]["attributes"]
        self.access, self.refresh = attributes["access_token"], attributes["refresh_token"]
        claims = jwt.decode(self.access, options={"verify_signature": False})
        self.permissions, self.subject = frozenset(claims["perms"]), claims["sub"]
        self.issued = time.monotonic()


@dataclass
class Callers:
    """JOHN and the platform operator, and who calls which route."""

    john: Identity
    operator: Identity

    @classmethod
    def sign_in(cls, stack: LocalStack) -> Callers:
        john = Identity(stack, ABC_CORP_USERS[0].email, ABC_CORP).sign_in()
        operator = Identity(stack, PLATFORM_OPERATOR.email, PLATFORM_TENANT).sign_in()
        return cls(john, operator)

    def for_permission(self, permission: str) -> Identity:
        """JOHN where his permissions reach, else the operator (JOHN on public routes)."""
        if permission == PUBLIC or allowed(self.john.permissions, permission):
            return self.john
        return self.operator

    @property
    def protected(self) -> frozenset[str]:
        """Path values the run must not act on: the callers' own users and tenants."""
        return frozenset({self.john.subject, self.operator.subject, ABC_CORP, PLATFORM_TENANT})


class Known:
    """Path-parameter values the run's answers named: per route template, every combination
    of its parameters seen together in one path (an invoice number with its customer), and
    per parameter name every value. Values of `protected` never go in."""

    def __init__(self, templates: Iterable[str], protected: frozenset[str]) -> None:
        self.protected = protected
        self.names = {t: frozenset(re.findall(r"{(\w+)}", t)) for t in templates}
        self.patterns = [
            (t, re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", t) + "$"))
            for t in self.names
            if self.names[t]
        ]
        # A list's template -> the parameter its child route names (`/customers/{customer_id}`).
        self.children = {
            t: child.group(1)
            for t in self.names
            for c in self.names
            if (child := re.fullmatch(re.escape(t) + r"/{(\w+)}", c))
        }
        self.combinations: dict[str, list[dict[str, str]]] = {}
        self.values: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def harvest(
        self, template: str, path_parameters: dict[str, Any], status: int, location: Any, raw: bytes
    ) -> None:
        """Learn the values a 2xx enveloped answer (its `Location` header and body) to a
        call of `template` names."""
        if not 200 <= status < 300:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            return
        if not isinstance(body, dict) or not isinstance(body.get("links"), dict):
            return
        for link in (location, body["links"].get("self")):
            if isinstance(link, str):
                self.add(self.match(urlsplit(link).path))
        child = self.children.get(template)
        if child and isinstance(body.get("data"), list):
            params = {k: str(v) for k, v in path_parameters.items()}
            for item in body["data"]:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    self.add({**params, child: item["id"]})

    def match(self, path: str) -> dict[str, str]:
        """The parameters `path` gives the route template it matches."""
        for _, pattern in self.patterns:
            found = pattern.match(path)
            if found:
                return found.groupdict()
        return {}

    def add(self, params: dict[str, str]) -> None:
        if not params or self.protected & set(params.values()):
            return
        with self.lock:
            for name, value in params.items():
                if value not in self.values.setdefault(name, []):
                    self.values[name].append(value)
            for template, names in self.names.items():
                if names and names <= params.keys():
                    combination = {name: params[name] for name in names}
                    seen = self.combinations.setdefault(template, [])
                    if combination not in seen:
                        seen.append(combination)

    def path(self, template: str, generated: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A combination seen for `template` or (as likely) the generated path parameters;
        known ones first, so that the simplest example (all a bounded run may try) hits."""
        with self.lock:
            seen = list(self.combinations.get(template, ()))
        return st.one_of(st.sampled_from(seen), st.just(generated)) if seen else st.just(generated)

    def fields(self, generated: Any) -> st.SearchStrategy[Any]:
        """A generated body or query whose fields named like a path parameter take, as
        likely as not (known ones first, as in `path`), known values of it."""
        if not isinstance(generated, dict):
            return st.just(generated)
        with self.lock:
            pools = {k: list(self.values[k]) for k in generated if self.values.get(k)}
        if not pools:
            return st.just(generated)
        known = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in pools.items()})
        return st.one_of(known.map(lambda chosen: {**generated, **chosen}), st.just(generated))


@dataclass
class Tally:
    """One app's fuzzing: what was called, what failed."""

    app: str
    operations: int = 0
    called: set[str] = field(default_factory=set)
    requests: int = 0
    classes: Counter[str] = field(default_factory=Counter)  # "2xx", "4xx", "429", "5xx"
    server_errors: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    shown: dict[str, str] = field(default_factory=dict)  # a problem's first occurrence
    errors: list[str] = field(default_factory=list)  # schemathesis could not test something
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, case: Any, response: Any) -> None:
        with self.lock:
            self.called.add(case.operation.label)
            self.requests += 1
            status = response.status_code
            self.classes["429" if status == 429 else f"{status // 100}xx"] += 1
            self.server_errors += status >= 500

    def record(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.ScenarioFinished):
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    if node.status == Status.FAILURE and node.failure_info is not None:
                        self._failed(node.name, event.recorder.label, node.failure_info)
        elif isinstance(event, events.NonFatalError):
            self.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            self.errors.append(f"fatal: {event.exception!r}")

    def _failed(self, check: str, label: str, info: Any) -> None:
        self.failures[check] += 1
        failure = info.failure
        key = f"{check} {label}: {failure.title}"
        if key not in self.shown and len(self.shown) < SHOWN:
            self.shown[key] = f"{failure.message}\n    {info.code_sample}"

    @property
    def clean(self) -> bool:
        return not (self.server_errors or self.failures or self.errors)


@dataclass
class Fuzzer:
    """Fuzzes one app after another on one stack as its callers, within one budget."""

    stack: LocalStack
    callers: Callers
    known: Known
    examples: int  # per operation, after schemathesis' coverage cases
    deterministic: bool  # the same cases on every run (CI), else new ones each time

    def app(self, app: str, tally: Tally, *, last: bool) -> None:
        """Fuzz `app`'s operations into `tally` (only the LAST ones when `last`, else all but
        them)."""
        schema = self._schema(app)
        schema = schema.include(name=list(LAST)) if last else schema.exclude(name=list(LAST))
        operations = list(schema.get_all_operations())
        if not operations:
            return
        tally.operations += len(operations)

        @schema.hook
        def after_call(context: Any, case: Any, response: Any) -> None:
            tally.count(case, response)
            location = (response.headers.get("location") or [None])[0]
            template, params = case.operation.path, case.path_parameters or {}
            self.known.harvest(template, params, response.status_code, location, response.content)

        for event in from_schema(schema).execute():
            tally.record(event)

    def _schema(self, app: str) -> Any:
        generation = {
            "max-examples": self.examples,
            "deterministic": self.deterministic,
            "database": "none",
        }
        config = schemathesis.Config.from_dict(
            {
                "base-url": self.stack.api,
                "workers": WORKERS,
                "generation": generation,
                "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            }
        )
        url = f"{self.stack.api}/api/v1/{app}/openapi.json"
        schema = schemathesis.openapi.from_url(url, config=config)
        schema.config.checks.update(included_check_names=[SERVER_ERROR, SCHEMA, ENVELOPE])
        callers, protected, known = self.callers, self.callers.protected, self.known

        @schema.hook
        def filter_case(context: Any, case: Any) -> bool:
            return not protected & {str(v) for v in (case.path_parameters or {}).values()}

        @schema.hook
        def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
            return known.path(context.operation.path, path_parameters)

        @schema.hook
        def flatmap_body(context: Any, body: Any) -> Any:
            return known.fields(body)

        @schema.hook
        def flatmap_query(context: Any, query: Any) -> Any:
            return known.fields(query)

        class Tokens:
            def get(self, case: Any, context: Any) -> str:
                permission = case.operation.definition.raw.get("x-dotmac-permission", PUBLIC)
                return callers.for_permission(permission).token()

            def set(self, case: Any, data: str, context: Any) -> None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

        schema.auth(refresh_interval=None)(Tokens)
        return schema


@dataclass
class Report:
    """A whole run: one tally per app."""

    tallies: list[Tally]
    examples: int
    deterministic: bool
    seconds: float

    @property
    def clean(self) -> bool:
        return all(t.clean for t in self.tallies)

    def __str__(self) -> str:
        """The per-app table, then the first failures of each kind."""
        columns = ["operations", "fuzzed", "requests", "2xx", "4xx", "429", "5xx", "schema"]
        columns += ["envelope", "errors"]
        rows: dict[str, list[int]] = {
            t.app: [
                t.operations,
                len(t.called),
                t.requests,
                t.classes["2xx"],
                t.classes["4xx"],
                t.classes["429"],
                t.server_errors,
                t.failures[SCHEMA],
                t.failures[ENVELOPE],
                len(t.errors),
            ]
            for t in self.tallies
        }
        rows["total"] = [sum(column) for column in zip(*rows.values(), strict=True)]
        cases = "the same cases every run" if self.deterministic else "new random cases"
        lines = [
            f"API fuzzing: {self.examples} examples per operation ({cases}), {self.seconds:.0f} s"
        ]
        lines.append(f"{'app':<12}" + "".join(f"{name:>11}" for name in columns))
        for app, counts in rows.items():
            lines.append(f"{app:<12}" + "".join(f"{count:>11}" for count in counts))
        for t in self.tallies:
            lines += [f"\n[{t.app}] {key}\n  {text}" for key, text in t.shown.items()]
            lines += [f"\n[{t.app}] error: {text}" for text in t.errors]
        return "\n".join(lines)


def learn(stack: LocalStack, callers: Callers) -> Known:
    """Every app's route templates, and what each parameterless GET route answers its
    caller (the demo tenant's users and roles, the platform's plans, tenants, ...)."""
    operations = {
        (path, method): operation
        for app in STACK.http_apps
        for path, methods in stack.request("GET", f"/api/v1/{app}/openapi.json")
        .json()["paths"]
        .items()
        for method, operation in methods.items()
    }
    known = Known({path for path, _ in operations}, callers.protected)
    for (path, method), operation in operations.items():
        if method == "get" and "{" not in path:
            caller = callers.for_permission(operation.get("x-dotmac-permission", PUBLIC))
            bearer = {"Authorization": f"Bearer {caller.token()}"}
            answer = stack.request("GET", path, headers=bearer)
            known.harvest(path, {}, answer.status, answer.headers.get("Location"), answer.body)
    return known


def fuzz(
    stack: LocalStack,
    examples: int,
    *,
    deterministic: bool = False,
    apps: Iterable[str] = STACK.http_apps,
) -> Report:
    """Fuzz every app on `stack`: each app's main pass, then the LAST pass."""
    started = time.perf_counter()
    callers = Callers.sign_in(stack)
    fuzzer = Fuzzer(stack, callers, learn(stack, callers), examples, deterministic)
    tallies = {app: Tally(app) for app in apps}
    for last in (False, True):
        for app, tally in tallies.items():
            fuzzer.app(app, tally, last=last)
    return Report(list(tallies.values()), examples, deterministic, time.perf_counter() - started)
