"""The `dotmac` operator CLI against a stateful fake of the management API (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from dotmac_cli import client
from dotmac_cli.main import DEPROVISION_STEPS, PROVISION_STEPS, app

TOKEN = "token-1"
TENANTS = "/api/v1/platform/tenants"
RUNS = "/api/v1/platform/billing/runs"
FAILING_STEP = "subscribe_apps"
Step = tuple[str, str, str | None]  # (step, outcome, detail) a fake workflow will record
NEW_RUN = "<a new workflow run starts>"
ENV: dict[str, str | None] = {
    "DOTMAC_CLI_CACHE": "none",
    "DOTMAC_ENDPOINT": None,
    "DOTMAC_OPERATOR_EMAIL": None,
    "DOTMAC_OPERATOR_PASSWORD": None,
    "FORCE_COLOR": None,
    "TTY_COMPATIBLE": None,
    "TTY_INTERACTIVE": None,
    "NO_COLOR": "1",
    "COLUMNS": "200",
}


def envelope(resource_id: str, attributes: dict[str, Any], kind: str = "tenant") -> dict[str, Any]:
    return {
        "data": {"id": resource_id, "type": kind, "attributes": attributes},
        "meta": {"timestamp": "2026-01-01T00:00:00Z", "version": "v1"},
        "links": {"self": f"{TENANTS}/{resource_id}"},
    }


def error(
    status: int, code: str, message: str, details: list[dict[str, str]] | None = None
) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    body["error"]["request_id"] = f"req-{status}"
    return httpx.Response(status, json=body, headers={"X-Request-Id": f"req-{status}"})


@dataclass
class FakeTenant:
    """One tenant whose workflow advances one step per GET."""

    tenant_id: str
    name: str
    plan: str
    apps: list[str]
    admin_email: str
    status: str = "REQUESTED"
    steps: list[dict[str, Any]] = field(default_factory=list)
    script: list[Step] = field(default_factory=list)
    outcome: str = "ACTIVE"
    failure_reason: str | None = None
    export_location: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    ticks: int = 0

    def start(self, running: str, script: list[Step], outcome: str) -> None:
        self.status, self.script, self.outcome = running, script, outcome

    def advance(self) -> None:
        if not self.script:
            return
        step, result, detail = self.script.pop(0)
        if step == NEW_RUN:  # the API shows only the latest run's steps (management.service)
            self.steps = []
        else:
            self.ticks += 1
            at = f"2026-01-01T00:{self.ticks // 60:02d}:{self.ticks % 60:02d}Z"
            self.steps.append({"step": step, "outcome": result, "at": at, "detail": detail})
        if not self.script:
            self.status = self.outcome

    def attributes(self) -> dict[str, Any]:
        attributes = {
            "name": self.name,
            "status": self.status,
            "plan": self.plan,
            "apps": self.apps,
            "admin_email": self.admin_email,
            "licence_id": "lic-1" if self.status == "ACTIVE" else None,
            "licence_expires_at": "2027-01-01T00:00:00Z" if self.status == "ACTIVE" else None,
            "failure_reason": self.failure_reason,
            "export_location": self.export_location,
            "created_at": "2026-01-01T00:00:00Z",
            "steps": list(self.steps),
            **self.extra,
        }
        if self.status == "ACTIVE" and self.tenant_id != "quiet":
            attributes["admin_temporary_password"] = "Temp-Pass-123456"
        return attributes

    def response(self, status: int = 200) -> httpx.Response:
        headers = {"Location": f"{TENANTS}/{self.tenant_id}"} if status == 202 else {}
        return httpx.Response(
            status, json=envelope(self.tenant_id, self.attributes()), headers=headers
        )


@dataclass
class FakeRun:
    """A billing run: QUEUED on the 202, then one tenant's invoice settles per GET."""

    run_id: str
    period: str
    jobs: list[str]  # each tenant's invoice outcome, in order: "ok" or "failed"
    status: str = "QUEUED"
    total: int = 0
    done: int = 0
    failed: int = 0

    def advance(self) -> None:
        if self.status == "QUEUED":  # the run counts its tenants before any invoice settles
            self.status, self.total = "RUNNING", len(self.jobs)
        elif self.jobs:
            if self.jobs.pop(0) == "ok":
                self.done += 1
            else:
                self.failed += 1

    def response(self, status: int = 200) -> httpx.Response:
        over = self.status == "RUNNING" and self.done + self.failed >= self.total
        attributes = {
            "period": self.period,
            "status": "COMPLETED" if over else self.status,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "pending": max(0, self.total - self.done - self.failed),
            "created_at": "2026-12-01T00:00:00+00:00",
        }
        body = envelope(self.run_id, attributes, "billing_run")
        body["links"]["self"] = f"{RUNS}/{self.run_id}"
        return httpx.Response(status, json=body)


class FakePlatform:
    """The management API contract the CLI codes to, held in memory."""

    def __init__(self, whole_history: bool = False) -> None:
        self.whole_history = whole_history
        self.tenants: dict[str, FakeTenant] = {}
        self.requests: list[httpx.Request] = []
        self.logins = 0
        self.refreshes = 0
        self.expires_in = 900
        self.refresh_token = ""
        self.idempotency: dict[str, str] = {}
        self.runs: dict[str, FakeRun] = {}
        self.run_jobs = ["ok", "ok", "ok"]  # how the next run's invoices turn out
        self.redrive_jobs: list[str] = []  # how redriven invoices turn out (default: all ok)

    def add(self, tenant_id: str, status: str = "ACTIVE", **extra: Any) -> FakeTenant:
        tenant = FakeTenant(tenant_id, tenant_id.title(), "starter", ["crm"], "a@x.example")
        tenant.status = status
        tenant.extra = extra
        self.tenants[tenant_id] = tenant
        return tenant

    def calls(self, method: str, prefix: str = "") -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path.startswith(prefix)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/api/v1/auth/login" and request.method == "POST":
            return self.login(json.loads(request.content))
        if path == "/api/v1/auth/refresh" and request.method == "POST":
            return self.refresh(json.loads(request.content))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "UNAUTHORIZED", "missing or invalid token")
        if path.startswith(RUNS):
            return self.billing(request)
        if path == TENANTS:
            return self.provision(request) if request.method == "POST" else self.list(request)
        match = re.fullmatch(rf"{TENANTS}/([^/]+)(?:/(\w+))?", path)
        if not match:
            return error(404, "NOT_FOUND", f"no route {path}")
        tenant = self.tenants.get(match[1])
        if tenant is None:
            return error(404, "NOT_FOUND", f"tenant {match[1]} not found")
        if match[2] is None and request.method == "GET":
            tenant.advance()
            return tenant.response()
        return self.act(tenant, match[2] or "", json.loads(request.content or b"{}"))

    def login(self, body: dict[str, Any]) -> httpx.Response:
        self.logins += 1
        if body != {
            "tenant": "platform",
            "email": "operator@dotmac.example",
            "password": "DotMac-demo-2026",
        }:
            return error(401, "INVALID_CREDENTIALS", "email or password is wrong")
        return self.session()

    def session(self) -> httpx.Response:
        self.refresh_token = f"rt-{self.logins}-{len(self.requests)}"
        attributes = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }
        return httpx.Response(200, json=envelope("current", attributes, "session"))

    def refresh(self, body: dict[str, Any]) -> httpx.Response:
        self.refreshes += 1
        if body.get("refresh_token") != self.refresh_token:
            return error(401, "UNAUTHENTICATED", "refresh token is not valid")
        return self.session()

    def provision(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if not key:
            return error(400, "VALIDATION_ERROR", "Idempotency-Key header is required")
        if key in self.idempotency:
            return self.tenants[self.idempotency[key]].response(202)
        body = json.loads(request.content)
        subdomain = body["subdomain"]
        if subdomain in self.tenants:
            details = [{"field": "subdomain", "message": f"{subdomain} is already taken"}]
            return error(409, "CONFLICT", "subdomain is not available", details)
        tenant = FakeTenant(
            subdomain, body["name"], body["plan"], body["apps"], body["admin_email"]
        )
        if body["name"].startswith("Doomed"):
            reached = PROVISION_STEPS[: PROVISION_STEPS.index(FAILING_STEP)]
            script: list[Step] = [(s, "ok", None) for s in reached]
            script.append((FAILING_STEP, "failed", "app catalogue unavailable"))
            script += [(s, "compensated", None) for s in reversed(reached[1:])]
            tenant.failure_reason = "subscribe_apps: app catalogue unavailable"
            tenant.start("PROVISIONING", script, "FAILED")
        elif body["name"].startswith("Slow"):
            slow: list[Step] = [("validate", "ok", None)] * 1000
            tenant.start("PROVISIONING", slow, "ACTIVE")
        else:
            tenant.start("PROVISIONING", [(s, "ok", None) for s in PROVISION_STEPS], "ACTIVE")
        self.tenants[subdomain] = tenant
        self.idempotency[key] = subdomain
        return tenant.response(202)

    def list(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        items = sorted(self.tenants.values(), key=lambda t: t.tenant_id)
        if params.get("status"):
            items = [t for t in items if t.status == params["status"]]
        start = int(params.get("cursor", "c0")[1:])
        limit = int(params.get("limit", "50"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return httpx.Response(
            200,
            json={
                "data": [
                    {"id": t.tenant_id, "type": "tenant", "attributes": t.attributes()}
                    for t in page
                ],
                "meta": {"next_cursor": f"c{start + limit}" if more else None},
                "links": {"self": TENANTS},
            },
        )

    def act(self, tenant: FakeTenant, action: str, body: dict[str, Any]) -> httpx.Response:
        if action == "suspend":
            if not body.get("reason"):
                return error(400, "VALIDATION_ERROR", "invalid body", [{"field": "reason"}])
            tenant.status = "SUSPENDED"
            return tenant.response()
        if action == "reactivate":
            if tenant.status != "SUSPENDED":
                return error(409, "CONFLICT", f"tenant is {tenant.status}")
            tenant.status = "ACTIVE"
            return tenant.response()
        if action == "deprovision":
            # Like the real workflow: the 202 (and maybe a poll) still show the previous run.
            script: list[Step] = [] if self.whole_history else [(NEW_RUN, "", None)]
            location = f"s3://dotmac-exports/{tenant.tenant_id}/export.zip"
            script.append(("export", "ok", location))
            if tenant.tenant_id.startswith("stuck"):
                script.append(("deprovision", "failed", "purge: access denied"))
                tenant.failure_reason = "purge: access denied"
                tenant.start("DEPROVISIONING", script, "DEPROVISIONING")
            else:
                script += [("purge", "ok", None), ("release", "ok", None)]
                tenant.export_location = location
                tenant.start("DEPROVISIONING", script, "DEPROVISIONED")
            return tenant.response(202)
        return error(404, "NOT_FOUND", f"no action {action}")

    def billing(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == RUNS and request.method == "POST":
            period = json.loads(request.content)["period"]
            key = request.headers.get("idempotency-key") or "a-fresh-key"
            run_id = f"{period}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
            if run_id not in self.runs:  # the same period and key name the same run
                self.runs[run_id] = FakeRun(run_id, period, list(self.run_jobs))
            return self.runs[run_id].response(202)
        match = re.fullmatch(rf"{RUNS}/([^/]+)(/redrive)?", path)
        run = self.runs.get(match[1]) if match else None
        if match is None or run is None:
            return error(404, "NOT_FOUND", f"billing run {path.rsplit('/', 1)[-1]} not found")
        if match[2] and request.method == "POST":
            again = self.redrive_jobs or ["ok"] * run.failed
            run.jobs += again[: run.failed]
            run.failed = 0
            return run.response()
        run.advance()
        return run.response()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakePlatform:
    fake = FakePlatform()
    monkeypatch.setattr(client, "transport_factory", lambda: httpx.MockTransport(fake))
    return fake


def run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, env=ENV)


PROVISION = (
    "tenants",
    "provision",
    "--name",
    "Acme",
    "--subdomain",
    "acme",
    "--plan",
    "professional",
    "--app",
    "isp",
    "--app",
    "crm",
    "--admin-email",
    "ann@acme.example",
    "--admin-name",
    "Ann",
    "--poll-interval",
    "0",
)


def provision_args(name: str = "Acme", subdomain: str = "acme") -> list[str]:
    args = list(PROVISION)
    args[args.index("Acme")] = name
    args[args.index("acme")] = subdomain
    return args


def test_provision_follows_every_step_and_prints_the_summary(server: FakePlatform) -> None:
    result = run(*PROVISION)

    assert result.exit_code == 0, result.output
    (post,) = server.calls("POST", TENANTS)
    assert json.loads(post.content) == {
        "name": "Acme",
        "subdomain": "acme",
        "plan": "professional",
        "apps": ["isp", "crm"],
        "admin_email": "ann@acme.example",
        "admin_name": "Ann",
    }
    key = post.headers["idempotency-key"]
    assert re.fullmatch(r"[0-9a-f-]{36}", key)
    assert f"Idempotency-Key: {key}" in result.stdout
    positions = [result.stdout.index(f"✓ {step}") for step in PROVISION_STEPS]
    assert positions == sorted(positions)
    assert len(server.calls("GET", f"{TENANTS}/acme")) == len(PROVISION_STEPS)
    assert "Provisioning acme: ACTIVE" in result.stdout
    for expected in ("lic-1", "2027-01-01T00:00:00Z", "isp, crm", "Temp-Pass-123456"):
        assert expected in result.stdout
    assert server.logins == 1


def test_provision_sends_the_given_idempotency_key_and_partner(server: FakePlatform) -> None:
    result = run(*PROVISION, "--idempotency-key", "retry-7", "--partner", "p-1", "--no-wait")

    assert result.exit_code == 0, result.output
    (post,) = server.calls("POST", TENANTS)
    assert post.headers["idempotency-key"] == "retry-7"
    assert json.loads(post.content)["partner_id"] == "p-1"
    assert "Tenant acme accepted: PROVISIONING" in result.stdout
    assert not server.calls("GET")  # --no-wait never polls


def test_provision_without_apps_sends_an_empty_list(server: FakePlatform) -> None:
    args = [a for a in PROVISION if a not in {"--app", "isp", "crm"}]

    result = run(*args, "--no-wait")

    assert result.exit_code == 0, result.output
    assert json.loads(server.calls("POST", TENANTS)[0].content)["apps"] == []


def test_a_retry_with_the_same_key_follows_the_same_tenant(server: FakePlatform) -> None:
    assert run(*PROVISION, "--idempotency-key", "k1").exit_code == 0
    result = run(*PROVISION, "--idempotency-key", "k1")

    assert result.exit_code == 0, result.output
    assert "Provisioning acme: ACTIVE" in result.stdout


def test_summary_without_a_temporary_password(server: FakePlatform) -> None:
    result = run(*provision_args("Quiet", "quiet"))

    assert result.exit_code == 0, result.output
    assert "temporary password" not in result.stdout


def test_failed_provisioning_prints_the_reason_and_exits_1(server: FakePlatform) -> None:
    result = run(*provision_args("Doomed Ltd", "doomed"))

    assert result.exit_code == 1
    assert "✗ subscribe_apps" in result.stdout
    assert "app catalogue unavailable" in result.stdout
    assert "↩ create_admin" in result.stdout
    assert "FAILED" in result.stderr
    assert "subscribe_apps: app catalogue unavailable" in result.stderr


def test_provision_gives_up_after_the_timeout(server: FakePlatform) -> None:
    result = run(*provision_args("Slow", "slow"), "--timeout", "0")

    assert result.exit_code == 1
    assert "WAIT_TIMEOUT" in result.stderr
    assert "still PROVISIONING" in result.stderr


def test_provision_json_output_is_the_final_tenant(server: FakePlatform) -> None:
    result = run("--json", *PROVISION)

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["data"]["id"] == "acme"
    assert body["data"]["attributes"]["status"] == "ACTIVE"
    assert [s["step"] for s in body["data"]["attributes"]["steps"]] == list(PROVISION_STEPS)
    assert "Idempotency-Key" in result.stderr


def test_failed_provisioning_json_output_and_exit_code(server: FakePlatform) -> None:
    result = run("--json", *provision_args("Doomed", "doomed"))

    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["data"]["attributes"]["status"] == "FAILED"


def test_error_envelope_is_rendered_with_details_and_request_id(server: FakePlatform) -> None:
    server.add("acme")

    result = run(*PROVISION)

    assert result.exit_code == 1
    assert "Error 409 CONFLICT: subdomain is not available" in result.stderr
    assert "subdomain: acme is already taken" in result.stderr
    assert "request id: req-409" in result.stderr


def test_error_envelope_under_json(server: FakePlatform) -> None:
    result = run("--json", "tenants", "show", "nope")

    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["error"]["request_id"] == "req-404"


def test_a_bad_login_exits_1(server: FakePlatform) -> None:
    result = run("--password", "wrong", "tenants", "list")

    assert result.exit_code == 1
    assert "Error 401 INVALID_CREDENTIALS" in result.stderr
    assert len(server.requests) == 1


def test_credentials_come_from_the_environment(server: FakePlatform) -> None:
    result = CliRunner().invoke(
        app, ["tenants", "list"], env={**ENV, "DOTMAC_OPERATOR_PASSWORD": "from-env"}
    )

    assert result.exit_code == 1
    assert json.loads(server.requests[0].content)["password"] == "from-env"


@pytest.mark.parametrize(
    "args",
    [
        ["tenants", "provision", "--name", "Acme"],
        [*PROVISION[:6], "gold", *PROVISION[7:]],
        ["tenants", "list", "--limit", "0"],
        ["tenants", "list", "--status", "sleeping"],
        ["tenants", "deprovision"],
        ["tenants", "suspend", "acme"],
        ["tenants", "nope"],
        ["billing", "run"],
        ["billing", "run", "--period", "2026-13"],
        ["billing", "run", "--period", "2026-1"],
        ["billing", "run", "--period", "november"],
        ["billing", "show"],
    ],
)
def test_usage_errors_exit_2_without_calling_the_api(server: FakePlatform, args: list[str]) -> None:
    result = run(*args)

    assert result.exit_code == 2, result.output
    assert not server.requests


def test_list_follows_every_page_with_all(server: FakePlatform) -> None:
    for tenant_id in ("alpha", "bravo", "charlie"):
        server.add(tenant_id)

    result = run("tenants", "list", "--limit", "2", "--all")

    assert result.exit_code == 0, result.output
    assert [r.url.params.get("cursor") for r in server.calls("GET", TENANTS)] == [None, "c2"]
    for tenant_id in ("alpha", "bravo", "charlie"):
        assert tenant_id in result.stdout
    assert "--cursor" not in result.stdout


def test_list_shows_one_page_and_the_next_cursor(server: FakePlatform) -> None:
    for tenant_id in ("alpha", "bravo", "charlie"):
        server.add(tenant_id)

    result = run("tenants", "list", "--limit", "2")

    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout
    assert "charlie" not in result.stdout
    assert "more: --cursor c2" in result.stdout


def test_list_json_with_all_and_a_status_filter(server: FakePlatform) -> None:
    for tenant_id in ("alpha", "bravo", "charlie", "delta"):
        server.add(tenant_id)
    server.tenants["bravo"].status = "SUSPENDED"

    result = run("--json", "tenants", "list", "--status", "active", "--limit", "2", "--all")

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert [t["id"] for t in body["data"]] == ["alpha", "charlie", "delta"]
    assert body["meta"]["next_cursor"] is None
    assert {r.url.params["status"] for r in server.calls("GET", TENANTS)} == {"ACTIVE"}


def test_show_prints_fields_and_the_step_history(server: FakePlatform) -> None:
    tenant = server.add("acme")
    tenant.steps = [{"step": "validate", "outcome": "ok", "at": "2026-01-01T00:00:00Z"}]

    result = run("tenants", "show", "acme")

    assert result.exit_code == 0, result.output
    assert "Step history" in result.stdout
    assert "validate" in result.stdout
    assert "starter" in result.stdout


def test_suspend_and_reactivate(server: FakePlatform) -> None:
    server.add("acme")

    suspended = run("tenants", "suspend", "acme", "--reason", "unpaid invoices")
    reactivated = run("tenants", "reactivate", "acme")

    assert suspended.exit_code == 0, suspended.output
    assert "Tenant acme is SUSPENDED" in suspended.stdout
    suspend_call, reactivate_call = server.calls("POST", TENANTS)
    assert suspend_call.url.path == f"{TENANTS}/acme/suspend"
    assert json.loads(suspend_call.content) == {"reason": "unpaid invoices"}
    assert reactivated.exit_code == 0, reactivated.output
    assert "Tenant acme is ACTIVE" in reactivated.stdout
    assert json.loads(reactivate_call.content) == {}


def test_reactivating_an_active_tenant_is_a_conflict(server: FakePlatform) -> None:
    server.add("acme")

    result = run("tenants", "reactivate", "acme")

    assert result.exit_code == 1
    assert "Error 409 CONFLICT: tenant is ACTIVE" in result.stderr


def test_deprovision_asks_first_and_a_no_changes_nothing(server: FakePlatform) -> None:
    server.add("acme")

    result = run("tenants", "deprovision", "acme", "--poll-interval", "0", input="n\n")

    assert result.exit_code == 1
    assert "Deprovision tenant acme" in result.output
    assert not server.calls("POST", TENANTS)
    assert server.tenants["acme"].status == "ACTIVE"


@pytest.mark.parametrize("whole_history", [False, True])
def test_deprovision_after_confirmation_prints_the_export(
    server: FakePlatform, whole_history: bool
) -> None:
    server.whole_history = whole_history
    tenant = server.add("acme")
    tenant.steps = [{"step": "activate", "outcome": "ok", "at": "2026-01-01T00:00:00Z"}]

    result = run("tenants", "deprovision", "acme", "--poll-interval", "0", input="y\n")

    assert result.exit_code == 0, result.output
    assert "✓ activate" not in result.stdout  # the history before this run is not repeated
    for step in DEPROVISION_STEPS[:3]:
        assert f"✓ {step}" in result.stdout
    assert "Deprovisioning acme: DEPROVISIONED" in result.stdout
    assert "s3://dotmac-exports/acme/export.zip" in result.stdout


def test_deprovision_with_yes_does_not_ask(server: FakePlatform) -> None:
    server.add("acme")

    result = run("--json", "tenants", "deprovision", "acme", "--yes", "--poll-interval", "0")

    assert result.exit_code == 0, result.output
    assert "Deprovision tenant" not in result.output
    body = json.loads(result.stdout)
    assert body["data"]["attributes"]["status"] == "DEPROVISIONED"
    assert body["data"]["attributes"]["export_location"].startswith("s3://")


def test_a_deprovisioning_that_stops_on_a_failed_step_exits_1(server: FakePlatform) -> None:
    server.add("stuck")

    result = run("tenants", "deprovision", "stuck", "--yes", "--poll-interval", "0")

    assert result.exit_code == 1
    assert "✗ deprovision" in result.stdout
    assert "DEPROVISIONING" in result.stderr
    assert "purge: access denied" in result.stderr
    assert "WAIT_TIMEOUT" not in result.stderr


def test_deprovision_no_wait(server: FakePlatform) -> None:
    server.add("acme")

    result = run("tenants", "deprovision", "acme", "--yes", "--no-wait")

    assert result.exit_code == 0, result.output
    assert "Tenant acme accepted: DEPROVISIONING" in result.stdout
    assert len(server.calls("GET", TENANTS)) == 1  # the look-up before acting, no polling


def test_an_unreachable_endpoint_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(client, "transport_factory", lambda: httpx.MockTransport(refuse))

    result = run("--endpoint", "http://dotmac.invalid", "tenants", "list")

    assert result.exit_code == 1
    assert "CONNECTION_ERROR" in result.stderr
    assert "http://dotmac.invalid" in result.stderr


def test_a_non_envelope_error_still_has_a_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="Bad Gateway", headers={"X-Request-Id": "gw-1"})

    monkeypatch.setattr(client, "transport_factory", lambda: httpx.MockTransport(gateway))

    result = run("--json", "tenants", "list")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == {
        "code": "HTTP_502",
        "message": "Bad Gateway",
        "details": [],
        "request_id": "gw-1",
    }


# --- the session cache ----------------------------------------------------------------------


def cached_run(cache: Any, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={**ENV, "DOTMAC_CLI_CACHE": str(cache)})


def test_later_commands_reuse_the_cached_session(server: FakePlatform, tmp_path: Any) -> None:
    server.add("acme")
    cache = tmp_path / "sessions.json"
    for _ in range(3):
        assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    assert server.logins == 1
    assert oct(cache.stat().st_mode & 0o777) == "0o600"


def test_an_expired_token_is_refreshed_not_signed_in_again(
    server: FakePlatform, tmp_path: Any
) -> None:
    server.add("acme")
    server.expires_in = 0  # every stored access token is already stale
    cache = tmp_path / "sessions.json"
    assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    assert (server.logins, server.refreshes) == (1, 1)


def test_a_refused_refresh_falls_back_to_signing_in(server: FakePlatform, tmp_path: Any) -> None:
    server.add("acme")
    server.expires_in = 0
    cache = tmp_path / "sessions.json"
    assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    server.refresh_token = "revoked"
    assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    assert (server.logins, server.refreshes) == (2, 1)


def test_a_cached_token_the_server_refuses_is_replaced(server: FakePlatform, tmp_path: Any) -> None:
    server.add("acme")
    cache = tmp_path / "sessions.json"
    cache.write_text(
        json.dumps(
            {
                "http://127.0.0.1:8000|platform|operator@dotmac.example": {
                    "access_token": "stale",
                    "expires_at": 4102444800,
                    "refresh_token": None,
                }
            }
        )
    )
    assert cached_run(cache, "tenants", "show", "acme").exit_code == 0
    assert server.logins == 1


# --- billing runs ---------------------------------------------------------------------------

RUN = ("billing", "run", "--period", "2026-11", "--poll-interval", "0")


def only_run(server: FakePlatform) -> FakeRun:
    (found,) = server.runs.values()
    return found


def test_billing_run_follows_the_run_until_every_invoice_is_made(server: FakePlatform) -> None:
    result = run(*RUN)

    assert result.exit_code == 0, result.output
    (post,) = server.calls("POST", RUNS)
    assert json.loads(post.content) == {"period": "2026-11"}
    assert post.headers["idempotency-key"] == "run-2026-11"
    assert "Idempotency-Key: run-2026-11" in result.stdout
    billed = only_run(server)
    # the QUEUED answer (no tenants counted yet) is not taken for the end of the run
    assert len(server.calls("GET", RUNS)) == 1 + 3
    assert f"Billing run {billed.run_id}: COMPLETED" in result.stdout
    assert re.search(r"done\s+3\b", result.stdout)
    assert re.search(r"failed\s+0\b", result.stdout)
    assert re.search(r"pending\s+0\b", result.stdout)
    assert "redrive" not in result.output


def test_billing_run_again_for_the_same_period_follows_the_same_run(server: FakePlatform) -> None:
    assert run(*RUN).exit_code == 0
    result = run(*RUN)

    assert result.exit_code == 0, result.output
    assert len(server.runs) == 1
    assert len(server.calls("GET", RUNS)) == 4  # the answer already shows it over: no polling
    assert "COMPLETED" in result.stdout
    other = run(*RUN, "--idempotency-key", "second-try")
    assert other.exit_code == 0, other.output
    assert server.calls("POST", RUNS)[-1].headers["idempotency-key"] == "second-try"
    assert len(server.runs) == 2


def test_billing_run_shows_a_progress_bar(server: FakePlatform) -> None:
    result = CliRunner().invoke(app, list(RUN), env={**ENV, "FORCE_COLOR": "1"})  # a terminal

    assert result.exit_code == 0, result.output
    run_id = only_run(server).run_id
    assert f"Billing run {run_id} · COMPLETED" in result.stdout
    assert "3/3" in result.stdout
    assert "3 done 0 failed" in result.stdout


def test_billing_run_with_failed_invoices_exits_1_with_a_redrive_hint(
    server: FakePlatform,
) -> None:
    server.run_jobs = ["ok", "failed", "ok"]

    result = run(*RUN)

    assert result.exit_code == 1
    run_id = only_run(server).run_id
    assert re.search(r"failed\s+1\b", result.stdout)
    assert f"dotmac billing redrive {run_id}" in result.stdout
    assert f"Error INVOICES_FAILED: 1 of 3 invoices failed in {run_id}" in result.stderr


def test_redrive_follows_the_run_again_until_it_is_clean(server: FakePlatform) -> None:
    server.run_jobs = ["failed", "ok", "failed"]
    assert run(*RUN).exit_code == 1
    run_id = only_run(server).run_id

    result = run("billing", "redrive", run_id, "--poll-interval", "0")

    assert result.exit_code == 0, result.output
    redrive = server.calls("POST", f"{RUNS}/{run_id}/redrive")
    assert [json.loads(r.content) for r in redrive] == [{}]
    assert f"Billing run {run_id}: COMPLETED" in result.stdout
    assert re.search(r"done\s+3\b", result.stdout)
    assert re.search(r"failed\s+0\b", result.stdout)


def test_a_redrive_that_fails_again_exits_1(server: FakePlatform) -> None:
    server.run_jobs = ["failed", "ok"]
    server.redrive_jobs = ["failed"]
    assert run(*RUN).exit_code == 1
    run_id = only_run(server).run_id

    result = run("--json", "billing", "redrive", run_id, "--poll-interval", "0")

    assert result.exit_code == 1
    assert json.loads(result.stdout)["data"]["attributes"]["failed"] == 1
    assert f"dotmac billing redrive {run_id}" in result.stderr


def test_billing_run_no_wait_does_not_poll(server: FakePlatform) -> None:
    result = run(*RUN, "--no-wait")

    assert result.exit_code == 0, result.output
    run_id = only_run(server).run_id
    assert f"Billing run {run_id}: QUEUED" in result.stdout
    assert f"dotmac billing show {run_id}" in result.stdout
    assert not server.calls("GET")


def test_redrive_no_wait_does_not_poll(server: FakePlatform) -> None:
    server.run_jobs = ["failed"]
    assert run(*RUN).exit_code == 1
    gets = len(server.calls("GET", RUNS))
    run_id = only_run(server).run_id

    result = run("billing", "redrive", run_id, "--no-wait")

    assert result.exit_code == 0, result.output
    assert re.search(r"pending\s+1\b", result.stdout)
    assert len(server.calls("GET", RUNS)) == gets


def test_billing_run_json_output_is_the_final_run(server: FakePlatform) -> None:
    result = run("--json", *RUN)

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["data"]["id"] == only_run(server).run_id
    assert body["data"]["attributes"] == {
        "period": "2026-11",
        "status": "COMPLETED",
        "total": 3,
        "done": 3,
        "failed": 0,
        "pending": 0,
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    assert "Idempotency-Key: run-2026-11" in result.stderr


def test_failed_billing_run_json_output_and_exit_code(server: FakePlatform) -> None:
    server.run_jobs = ["failed", "ok"]

    result = run("--json", *RUN)

    assert result.exit_code == 1
    assert json.loads(result.stdout)["data"]["attributes"]["failed"] == 1
    assert "dotmac billing redrive" in result.stderr


def test_billing_run_gives_up_after_the_timeout(server: FakePlatform) -> None:
    result = run(*RUN, "--timeout", "0")

    assert result.exit_code == 1
    assert "WAIT_TIMEOUT" in result.stderr
    assert "dotmac billing show" in result.stderr


def test_billing_show_prints_the_figures(server: FakePlatform) -> None:
    server.run_jobs = ["ok", "failed"]
    assert run(*RUN, "--no-wait").exit_code == 0
    run_id = only_run(server).run_id

    result = run("billing", "show", run_id)
    as_json = run("--json", "billing", "show", run_id)

    assert result.exit_code == 0, result.output
    assert re.search(r"period\s+2026-11", result.stdout)
    assert re.search(r"status\s+RUNNING", result.stdout)
    assert re.search(r"pending\s+2\b", result.stdout)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["data"]["attributes"]["done"] == 1


def test_billing_show_of_an_unknown_run_renders_the_error(server: FakePlatform) -> None:
    result = run("billing", "show", "2026-11-nope")
    as_json = run("--json", "billing", "redrive", "2026-11-nope")

    assert result.exit_code == 1
    assert "Error 404 NOT_FOUND: billing run 2026-11-nope not found" in result.stderr
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"]["code"] == "NOT_FOUND"
