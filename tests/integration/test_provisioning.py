"""Provisioning through the real Step Functions workflow (moto executes it; every task runs
the real `lifecycle-steps` handler): happy path, a failure injected at each step, retries,
idempotency, bad input, and the lifecycle transitions."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import JOHN, Platform
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import (
    executions,
    metric,
    object_keys,
    operator_token,
    provision,
    scan_keys,
    wait_for,
)

PROVISIONING_STEPS = [
    "validate",
    "reserve_subdomain",
    "create_tenant",
    "create_admin",
    "subscribe_apps",
    "subscribe_apps",
    "issue_licence",
    "create_storage",
    "open_billing_account",
    "activate",
    "welcome",
]


def queued_notifications(platform: Platform) -> list[dict[str, Any]]:
    sqs = platform.cloud.client("sqs")
    url = platform.cloud.queue_url("notifications")
    bodies = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in batch)


def test_an_operator_provisions_a_tenant_through_every_step(platform: Platform) -> None:
    before = metric(platform, "tenants", "STATE#ACTIVE")
    answer = provision(platform, "acme", key="acme-1")
    assert answer.status == 202, answer.json
    assert answer.header("Location") == "/api/v1/platform/tenants/acme"
    assert answer.attributes["status"] in {"REQUESTED", "PROVISIONING", "ACTIVE"}

    tenant = wait_for(platform, operator_token(platform), "acme")
    assert tenant["status"] == "ACTIVE", tenant
    assert [s["step"] for s in tenant["steps"]] == PROVISIONING_STEPS
    assert all(s["outcome"] == "ok" for s in tenant["steps"])
    assert sorted(s["detail"] for s in tenant["steps"] if s["step"] == "subscribe_apps") == [
        "crm",
        "isp",
    ]
    assert tenant["apps"] == ["crm", "isp"]
    assert re.fullmatch(r"LIC-\d{8}-[0-9A-F]{12}", tenant["licence_id"])
    assert tenant["licence_id"][4:12] == f"{datetime.now(UTC):%Y%m%d}"
    expires = datetime.fromisoformat(tenant["licence_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=5)

    keys = set(scan_keys(platform, "T#acme#"))
    assert ("T#acme#SUBSCRIPTION", "APP#isp") in keys
    assert ("T#acme#BILLING", "ACCOUNT") in keys
    assert ("T#acme#USAGE", "users") in keys
    assert any(pk == "T#acme#LICENCE" for pk, _ in keys)
    assert scan_keys(platform, "SUBDOMAIN#acme") == [("SUBDOMAIN#acme", "META")]
    assert "tenants/acme/profile.json" in object_keys(platform, "tenants/acme/")
    admin = platform.user_item("admin@acme.example", "acme")
    assert set(admin.roles) == {"tenant_admin"}

    welcome = [n for n in queued_notifications(platform) if n["tenant_id"] == "acme"]
    assert len(welcome) == 1 and welcome[0]["template"] == "tenant.welcome"
    temporary = welcome[0]["data"]["temporary_password"]
    session = platform.login("admin@acme.example", "acme", password=temporary)
    assert session.status == 200, session.json
    assert session.attributes["restriction"] == "password_change"

    assert metric(platform, "tenants", "STATE#ACTIVE") == before + 1
    assert metric(platform, "subscriptions", "APP#crm") >= 1


def test_the_same_request_twice_starts_one_execution(platform: Platform) -> None:
    first = provision(platform, "twice", key="same-key")
    second = provision(platform, "twice", key="same-key")
    assert (first.status, second.status) == (202, 202)
    assert first.json["data"]["id"] == second.json["data"]["id"] == "twice"
    assert wait_for(platform, operator_token(platform), "twice")["status"] == "ACTIVE"
    again = provision(platform, "twice", key="same-key")
    assert again.status == 202 and again.attributes["status"] == "ACTIVE"
    assert len(executions(platform, "twice")) == 1


def test_parallel_identical_requests_start_one_execution(platform: Platform) -> None:
    token = operator_token(platform)
    answers: list[int] = []

    def send() -> None:
        body = {
            "name": "Race",
            "subdomain": "race",
            "plan": "starter",
            "apps": ["crm"],
            "admin_email": "a@race.example",
            "admin_name": "A",
        }
        answer = platform.call(
            "POST", "/api/v1/platform/tenants", token, body=body, headers={"Idempotency-Key": "k"}
        )
        answers.append(answer.status)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [202] * 6
    assert wait_for(platform, token, "race")["status"] == "ACTIVE"
    assert len(executions(platform, "race")) == 1


def test_a_taken_subdomain_is_a_409_and_changes_nothing(platform: Platform) -> None:
    assert provision(platform, "taken").status == 202
    assert wait_for(platform, operator_token(platform), "taken")["status"] == "ACTIVE"
    other = provision(platform, "taken", name="Impostor")
    assert (other.status, other.error_code) == (409, "SUBDOMAIN_TAKEN")
    detail = platform.call("GET", "/api/v1/platform/tenants/taken", operator_token(platform))
    assert detail.attributes["name"] == "Taken"
    assert len(executions(platform, "taken")) == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"subdomain": "ab"}, "subdomain"),
        ({"subdomain": "Acme"}, "subdomain"),
        ({"subdomain": "-acme"}, "subdomain"),
        ({"subdomain": "acme-"}, "subdomain"),
        ({"subdomain": "a" * 64}, "subdomain"),
        ({"subdomain": "admin"}, "subdomain"),
        ({"subdomain": "acme_co"}, "subdomain"),
        ({"plan": "gold"}, "plan"),
        ({"apps": ["isp", "erp"]}, "apps"),
        ({"admin_email": "not-an-email"}, "admin_email"),
    ],
)
def test_bad_requests_get_a_400_and_write_nothing(
    platform: Platform, overrides: dict[str, Any], field: str
) -> None:
    answer = provision(platform, str(overrides.pop("subdomain", "badreq")), **overrides)
    assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), answer.json
    assert any(d["field"] == field for d in answer.json["error"]["details"]), answer.json
    assert not scan_keys(platform, "TENANT#") or all(
        pk in {"TENANT#platform", "TENANT#abc-corp"} for pk, _ in scan_keys(platform, "TENANT#")
    )


def test_tenants_of_other_tenants_cannot_use_the_platform_routes(platform: Platform) -> None:
    john = platform.token(JOHN)
    assert provision(platform, "peek").status == 202
    for method, path in (
        ("GET", "/api/v1/platform/tenants"),
        ("GET", "/api/v1/platform/tenants/peek"),
        ("POST", "/api/v1/platform/tenants/peek/suspend"),
        ("GET", "/api/v1/platform/metrics"),
    ):
        answer = platform.call(method, path, john, body={} if method == "POST" else None)
        assert answer.status == 403, (method, path, answer.json)


# --- failure at each step ----------------------------------------------------------------

FAILING_STEPS = [
    "validate",
    "reserve_subdomain",
    "create_tenant",
    "create_admin",
    "subscribe_app",
    "issue_licence",
    "create_storage",
    "open_billing_account",
    "activate",
    "welcome",
]


@pytest.mark.parametrize("failing", FAILING_STEPS)
def test_a_failure_at_any_step_leaves_nothing_behind(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    from dotmac.management import provisioning

    real = provisioning.STEPS[failing]
    runs: list[str] = []

    def broken(request: Any, execution: str, event: dict[str, Any]) -> Any:
        runs.append(str(event.get("app", "")))
        # In the Map, let the first app through so there is a subscription to undo.
        if failing == "subscribe_app" and event.get("app") == "crm":
            return real(request, execution, event)
        real(request, execution, event)  # do the work, then fail: the worst case
        raise provisioning.StepFailedError(f"injected failure in {failing}")

    monkeypatch.setitem(provisioning.STEPS, failing, broken)
    failed_before = metric(platform, "tenants", "STATE#FAILED")
    active_before = metric(platform, "tenants", "STATE#ACTIVE")
    crm_before = metric(platform, "subscriptions", "APP#crm")

    assert provision(platform, "doomed").status == 202
    tenant = wait_for(platform, operator_token(platform), "doomed")

    assert tenant["status"] == "FAILED"
    assert f"injected failure in {failing}" in tenant["failure_reason"]
    assert tenant["steps"][-1]["outcome"] == "compensated"
    assert tenant["apps"] == [] and tenant["licence_id"] is None
    assert scan_keys(platform, "T#doomed#") == []
    assert scan_keys(platform, "SUBDOMAIN#doomed") == []
    assert object_keys(platform, "tenants/doomed/") == []
    assert metric(platform, "tenants", "STATE#FAILED") == failed_before + 1
    assert metric(platform, "tenants", "STATE#ACTIVE") == active_before
    assert metric(platform, "tenants", "STATE#PROVISIONING") == 0
    assert metric(platform, "tenants", "STATE#REQUESTED") == 0
    assert metric(platform, "subscriptions", "APP#crm") == crm_before
    assert platform.login("admin@doomed.example", "doomed", password="x").status == 401
    # A permanent failure is not retried.
    assert len([r for r in runs if failing != "subscribe_app" or r == "isp"]) == 1


def test_a_failed_subdomain_can_be_requested_again(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.management import provisioning

    def broken(request: Any, execution: str, event: dict[str, Any]) -> None:
        raise provisioning.StepFailedError("injected")

    with monkeypatch.context() as patch:
        patch.setitem(provisioning.STEPS, "create_storage", broken)
        assert provision(platform, "phoenix").status == 202
        assert wait_for(platform, operator_token(platform), "phoenix")["status"] == "FAILED"
    assert provision(platform, "phoenix").status == 202
    tenant = wait_for(platform, operator_token(platform), "phoenix")
    assert tenant["status"] == "ACTIVE"
    assert tenant["failure_reason"] is None
    assert len(executions(platform, "phoenix")) == 2


def test_a_transient_failure_is_retried_with_backoff(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.core.workflows import TransientStepError
    from dotmac.management import provisioning

    real = provisioning.STEPS["issue_licence"]
    attempts: list[int] = []

    def flaky(request: Any, execution: str, event: dict[str, Any]) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise TransientStepError("the table is throttling")
        return real(request, execution, event)

    monkeypatch.setitem(provisioning.STEPS, "issue_licence", flaky)
    assert provision(platform, "steady").status == 202
    tenant = wait_for(platform, operator_token(platform), "steady")
    assert tenant["status"] == "ACTIVE", tenant
    assert len(attempts) == 2
    assert len([s for s in tenant["steps"] if s["step"] == "issue_licence"]) == 1


# --- lifecycle ---------------------------------------------------------------------------


def test_suspend_and_reactivate(platform: Platform) -> None:
    operator = operator_token(platform)
    john = platform.token(JOHN)
    assert platform.call("GET", "/api/v1/users", john).status == 200

    suspended = platform.call(
        "POST", "/api/v1/platform/tenants/abc-corp/suspend", operator, body={"reason": "unpaid"}
    )
    assert suspended.status == 200 and suspended.attributes["status"] == "SUSPENDED"
    refused = platform.call("GET", "/api/v1/users", john)
    assert (refused.status, refused.error_code) == (403, "TENANT_SUSPENDED")
    again = platform.call(
        "POST", "/api/v1/platform/tenants/abc-corp/suspend", operator, body={"reason": "x"}
    )
    assert (again.status, again.error_code) == (409, "INVALID_STATE")
    listed = platform.call("GET", "/api/v1/platform/tenants?status=SUSPENDED", operator)
    assert [t["id"] for t in listed.json["data"]] == ["abc-corp"]

    back = platform.call("POST", "/api/v1/platform/tenants/abc-corp/reactivate", operator, body={})
    assert back.status == 200 and back.attributes["status"] == "ACTIVE"
    assert platform.call("GET", "/api/v1/users", john).status == 200
    steps = platform.call("GET", "/api/v1/platform/tenants/abc-corp", operator).attributes
    assert steps["status_reason"] == "reactivate"


def test_tenants_list_pages_and_filters(platform: Platform) -> None:
    operator = operator_token(platform)
    for name in ("pagea", "pageb", "pagec"):
        assert provision(platform, name).status == 202
        wait_for(platform, operator, name)
    seen: list[str] = []
    cursor = None
    while True:
        query = "?status=ACTIVE&limit=2" + (f"&cursor={cursor}" if cursor else "")
        answer = platform.call("GET", f"/api/v1/platform/tenants{query}", operator)
        assert answer.status == 200
        seen.extend(t["id"] for t in answer.json["data"])
        cursor = answer.json["meta"]["next_cursor"]
        if cursor is None:
            break
    assert {"abc-corp", "platform", "pagea", "pageb", "pagec"} <= set(seen)
    assert len(seen) == len(set(seen))
    bad = platform.call("GET", "/api/v1/platform/tenants?status=HAPPY", operator)
    assert (bad.status, bad.error_code) == (400, "VALIDATION_ERROR")


def test_the_catalog_is_public(platform: Platform) -> None:
    apps = platform.call("GET", "/api/v1/platform/apps")
    plans = platform.call("GET", "/api/v1/platform/plans")
    assert apps.status == plans.status == 200
    assert {a["id"] for a in apps.json["data"]} == {"isp", "crm", "commerce", "projects"}
    isp = next(a for a in apps.json["data"] if a["id"] == "isp")["attributes"]
    assert {"isp_manager", "isp_technician", "isp_customer"} <= set(isp["roles"])
    by_id = {p["id"]: p["attributes"] for p in plans.json["data"]}
    assert by_id["starter"]["limits"]["customers"] == 100
    assert by_id["professional"]["limits"]["api_calls_per_hour"] == 10_000
    assert by_id["enterprise"]["limits"]["service_plans"] == -1
    assert by_id["starter"]["features_off"] == ["api_access", "reseller_management", "white_label"]
    assert by_id["enterprise"]["features_off"] == []
