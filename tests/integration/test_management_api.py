"""Plan limits and grace, licence enforcement, subscriptions, plan changes, feature flags,
partners, platform metrics and deprovisioning, through the gateway and the real workflows."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import GLOBEX, GLOBEX_USER, JOHN, Platform
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import (
    Operator,
    admin_token,
    metric,
    object_keys,
    operator_token,
    platform_reads,
    provision,
    scan_keys,
    signup,
    wait_for,
)
from tests.integration.test_isp_customers import counting


def add_users(platform: Platform, token: str, tenant: str, first: int, last: int) -> list[Any]:
    answers = []
    for n in range(first, last + 1):
        body = {"email": f"user{n}@{tenant}.example", "name": f"User {n}", "roles": []}
        answers.append(platform.call("POST", "/api/v1/users", token, body=body))
    return answers


def set_usage(platform: Platform, tenant: str, metric_name: str, **values: Any) -> None:
    """Write a usage counter's attributes directly (to move the grace clock)."""
    client = platform.cloud.client("dynamodb")
    names = {f"#{k}": k for k in values}
    client.update_item(
        TableName=platform.cloud.created.table,
        Key={"PK": {"S": f"T#{tenant}#USAGE"}, "SK": {"S": metric_name}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{k}": {"N": str(v)} for k, v in values.items()},
    )


def usage_of(platform: Platform, token: str) -> dict[str, Any]:
    answer = platform.call("GET", "/api/v1/tenant/usage", token)
    assert answer.status == 200, answer.json
    return dict(answer.attributes["usage"])


def test_the_user_limit_allows_a_grace_period_then_refuses(platform: Platform) -> None:
    signup(platform, "limits")  # starter: 10 users
    admin = admin_token(platform, "limits")
    assert all(a.status == 201 for a in add_users(platform, admin, "limits", 2, 10))
    assert usage_of(platform, admin)["users"] == {
        "used": 10,
        "limit": 10,
        "over_limit": False,
        "grace_ends_at": None,
    }

    eleventh = add_users(platform, admin, "limits", 11, 11)[0]
    assert eleventh.status == 201, eleventh.json  # over the limit: the grace period starts
    users = usage_of(platform, admin)["users"]
    assert users["over_limit"] and users["used"] == 11
    grace_end = datetime.fromisoformat(users["grace_ends_at"])
    assert timedelta(hours=23) < grace_end - datetime.now(UTC) <= timedelta(hours=24)

    set_usage(platform, "limits", "users", exceeded_at=int(time.time()) - 25 * 3600)
    refused = add_users(platform, admin, "limits", 12, 12)[0]
    assert (refused.status, refused.error_code) == (403, "PLAN_LIMIT_EXCEEDED")
    assert platform.login("user12@limits.example", "limits", password="x").status == 401
    assert usage_of(platform, admin)["users"]["used"] == 11  # nothing half-written

    for n in (10, 11):
        user_id = platform.user_id(f"user{n}@limits.example", "limits")
        assert platform.call("DELETE", f"/api/v1/users/{user_id}", admin).status == 204
    back = usage_of(platform, admin)["users"]
    assert (back["used"], back["over_limit"], back["grace_ends_at"]) == (9, False, None)
    assert add_users(platform, admin, "limits", 13, 13)[0].status == 201


def test_parallel_user_creation_never_overshoots_without_grace(platform: Platform) -> None:
    import threading

    signup(platform, "crowd")
    admin = admin_token(platform, "crowd")
    set_usage(platform, "crowd", "users", exceeded_at=int(time.time()) - 25 * 3600)
    statuses: list[int] = []

    def create(n: int) -> None:
        statuses.extend(a.status for a in add_users(platform, admin, "crowd", n, n))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(2, 22)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = statuses.count(201)
    assert set(statuses) <= {201, 403, 409}
    # The grace period is over: at most the limit, however the 20 requests raced.
    assert created <= 9
    assert usage_of(platform, admin)["users"]["used"] == 1 + created
    listed = platform.call("GET", "/api/v1/users?limit=200", admin).json["data"]
    assert len(listed) == 1 + created


def test_an_expired_licence_refuses_writes_and_fails_closed(platform: Platform) -> None:
    from dotmac.management.repository import cached_tenants

    signup(platform, "lapsed")
    admin = admin_token(platform, "lapsed")
    platform.cloud.client("dynamodb").update_item(
        TableName=platform.cloud.created.table,
        Key={"PK": {"S": "TENANT#lapsed"}, "SK": {"S": "META"}},
        UpdateExpression="SET licence_expires_at = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00.000000+0000"}},
    )
    cached_tenants.forget("lapsed")
    refused = add_users(platform, admin, "lapsed", 2, 2)[0]
    assert (refused.status, refused.error_code) == (403, "LICENCE_EXPIRED")
    assert platform.call("GET", "/api/v1/users", admin).status == 200  # reads still work


def test_the_hourly_api_quota_refuses_mutations_after_grace(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.management import catalog

    signup(platform, "chatty")
    admin = admin_token(platform, "chatty")
    monkeypatch.setitem(catalog.PLANS["starter"].limits, "api_calls_per_hour", 25)
    for _ in range(30):
        assert platform.call("GET", "/api/v1/users", admin).status == 200
    calls = usage_of(platform, admin)["api_calls"]
    assert calls["used"] >= 30 and calls["over_limit"]
    assert add_users(platform, admin, "chatty", 2, 2)[0].status == 201  # grace starts
    set_usage(platform, "chatty", "api_calls", exceeded_at=int(time.time()) - 25 * 3600)
    refused = add_users(platform, admin, "chatty", 3, 3)[0]
    assert (refused.status, refused.error_code) == (403, "PLAN_LIMIT_EXCEEDED")
    assert platform.call("GET", "/api/v1/users", admin).status == 200


def test_tenant_admins_manage_their_subscriptions(platform: Platform) -> None:
    signup(platform, "subs", apps=["crm"])
    admin = admin_token(platform, "subs")
    listed = platform.call("GET", "/api/v1/tenant/subscriptions", admin)
    assert [s["id"] for s in listed.json["data"]] == ["crm"]
    projects_before = metric(platform, "subscriptions", "APP#projects")

    assert platform.call("GET", "/api/v1/probe/projects/projects", admin).status == 403
    added = platform.call("POST", "/api/v1/tenant/subscriptions", admin, body={"app": "projects"})
    assert added.status == 201, added.json
    again = platform.call("POST", "/api/v1/tenant/subscriptions", admin, body={"app": "projects"})
    assert again.status == 409
    unknown = platform.call("POST", "/api/v1/tenant/subscriptions", admin, body={"app": "erp"})
    assert unknown.status == 400
    fresh = admin_token(platform, "subs")  # roles expand against the subscribed apps at login
    assert platform.call("GET", "/api/v1/probe/projects/projects", fresh).status == 200
    assert metric(platform, "subscriptions", "APP#projects") == projects_before + 1

    assert platform.call("DELETE", "/api/v1/tenant/subscriptions/crm", fresh).status == 204
    refused = platform.call("GET", "/api/v1/probe/crm/leads", fresh)
    assert (refused.status, refused.error_code) == (403, "APP_NOT_SUBSCRIBED")
    assert platform.call("DELETE", "/api/v1/tenant/subscriptions/crm", fresh).status == 404
    events = [sk for _, sk in scan_keys(platform, "T#subs#SUBSCRIPTION_EVENT")]
    assert [e.split("#")[1:] for e in sorted(events)] == [
        ["crm", "subscribed"],
        ["projects", "subscribed"],
        ["crm", "unsubscribed"],
    ]


def test_a_downgrade_below_current_usage_is_refused(platform: Platform) -> None:
    signup(platform, "bigco", plan="professional")
    admin = admin_token(platform, "bigco")
    assert all(a.status == 201 for a in add_users(platform, admin, "bigco", 2, 12))
    down = platform.call("PUT", "/api/v1/tenant/plan", admin, body={"plan": "starter"})
    assert (down.status, down.error_code) == (409, "PLAN_DOWNGRADE")
    assert "users: 12 in use" in down.json["error"]["details"][0]["message"]
    up = platform.call("PUT", "/api/v1/tenant/plan", admin, body={"plan": "enterprise"})
    assert up.status == 200 and up.attributes["plan"] == "enterprise"
    assert usage_of(platform, admin)["users"]["limit"] == 500
    same = platform.call("PUT", "/api/v1/tenant/plan", admin, body={"plan": "enterprise"})
    assert same.status == 200


def test_flags_are_managed_by_operators_and_decided_deterministically(
    globex: Platform,
) -> None:
    platform = globex
    operator = operator_token(platform)
    body = {
        "key": "new_dashboard",
        "description": "the new dashboard",
        "rules": [{"strategy": "tenants", "tenant_ids": ["abc-corp"]}],
    }
    john = platform.token(JOHN)
    assert platform.call("POST", "/api/v1/platform/flags", john, body=body).status == 403
    created = platform.call("POST", "/api/v1/platform/flags", operator, body=body)
    assert created.status == 201, created.json
    bad = platform.call("POST", "/api/v1/platform/flags", operator, body={**body, "key": "Bad"})
    assert bad.status == 400

    wile = platform.token(GLOBEX_USER, GLOBEX, password="Globex-secret-2026")
    decided = [
        platform.call("GET", "/api/v1/tenant/flags/new_dashboard", token).attributes["enabled"]
        for token in (john, john, wile, wile)
    ]
    assert decided == [True, True, False, False]

    rollout = {"key": "half", "rules": [{"strategy": "percentage", "percent": 50}]}
    assert platform.call("POST", "/api/v1/platform/flags", operator, body=rollout).status == 201
    first = platform.call("GET", "/api/v1/tenant/flags/half", john).attributes
    for _ in range(5):
        assert platform.call("GET", "/api/v1/tenant/flags/half", john).attributes == first
    off = platform.call(
        "PATCH", "/api/v1/platform/flags/half", operator, body={"status": "INACTIVE"}
    )
    assert off.status == 200
    assert platform.call("GET", "/api/v1/tenant/flags/half", john).attributes["enabled"] is False
    assert platform.call("DELETE", "/api/v1/platform/flags/half", operator).status == 204
    assert platform.call("GET", "/api/v1/platform/flags/half", operator).status == 404


def test_partners_refer_tenants(platform: Platform) -> None:
    operator = operator_token(platform)
    partner = platform.call(
        "POST",
        "/api/v1/platform/partners",
        operator,
        body={"name": "Reseller One", "email": "sales@reseller.example", "partner_id": "resell"},
    )
    assert partner.status == 201, partner.json
    assert partner.attributes["tier"] == "Bronze"
    assert provision(platform, "referred", partner_id="resell").status == 202
    assert wait_for(platform, operator, "referred")["partner_id"] == "resell"
    unknown = provision(platform, "orphan", partner_id="nobody")
    assert unknown.status == 202
    assert "nobody" in wait_for(platform, operator, "orphan")["failure_reason"]
    path = "/api/v1/platform/partners/resell/tenants"
    platform.call("GET", path, operator)  # warm: the authorizer's caches
    tenants, counted = counting(Operator(platform), platform_reads)("GET", path)
    assert [t["id"] for t in tenants.json["data"]] == ["referred"]
    assert counted == Counter({"dynamodb:Query": 1})  # the partner heads its tenants
    assert platform.call("GET", "/api/v1/platform/partners/nobody", operator).status == 404
    nobody = platform.call("GET", "/api/v1/platform/partners/nobody/tenants", operator)
    assert (nobody.status, nobody.error_code) == (404, "NOT_FOUND")
    assert platform.call("GET", "/api/v1/platform/partners", platform.token(JOHN)).status == 403


def test_platform_metrics_come_from_aggregates(platform: Platform) -> None:
    operator = operator_token(platform)
    signup(platform, "measured", apps=["isp"])
    platform.call("GET", "/api/v1/platform/metrics", operator)  # warm: the authorizer's caches
    answer, counted = counting(Operator(platform), platform_reads)(
        "GET", "/api/v1/platform/metrics"
    )
    assert counted == Counter({"dynamodb:Query": 1, "dynamodb:BatchGetItem": 1})
    figures = answer.attributes
    assert figures["tenants"]["by_state"]["ACTIVE"] == 2  # abc-corp and measured
    assert figures["subscriptions"]["by_app"]["isp"] == 2
    assert figures["provisioning"]["succeeded"] == 2
    assert figures["provisioning"]["success_rate"] == 1.0
    rows = {row["tenant_id"]: row for row in figures["usage"]}
    assert rows["measured"]["usage"]["users"]["used"] == 1
    assert rows["abc-corp"]["usage"]["users"] == {
        "used": 5,
        "limit": 50,
        "over_limit": False,
        "exceeded_at": None,
    }


def test_deprovisioning_exports_everything_then_purges(platform: Platform) -> None:
    operator = operator_token(platform)
    signup(platform, "gone")
    admin = admin_token(platform, "gone")
    assert all(a.status == 201 for a in add_users(platform, admin, "gone", 2, 4))
    s3 = platform.cloud.client("s3")
    bucket = platform.cloud.created.buckets["objects"]
    s3.put_object(Bucket=bucket, Key="tenants/gone/files/contract.pdf", Body=b"%PDF-1.7 x")
    items_before = sorted(scan_keys(platform, "T#gone#"))
    objects_before = sorted(set(object_keys(platform, "tenants/gone/")))
    assert items_before and objects_before

    answer = platform.call("POST", "/api/v1/platform/tenants/gone/deprovision", operator, body={})
    assert answer.status == 202, answer.json
    tenant = wait_for(platform, operator, "gone", frozenset({"DEPROVISIONED"}))
    assert [s["step"] for s in tenant["steps"]] == ["deprovision", "export", "purge", "release"]

    assert scan_keys(platform, "T#gone#") == []
    assert object_keys(platform, "tenants/gone/") == []
    assert scan_keys(platform, "SUBDOMAIN#gone") == []
    prefix = tenant["export_location"].split(f"s3://{bucket}/", 1)[1]
    lines = s3.get_object(Bucket=bucket, Key=f"{prefix}items.jsonl")["Body"].read().splitlines()
    exported = sorted((json.loads(x)["PK"]["S"], json.loads(x)["SK"]["S"]) for x in lines)
    assert exported == items_before
    # The tenant's own audit trail left with it: its records are in the export instead.
    exported_requests = {json.loads(x).get("request_id", {}).get("S") for x in lines}
    in_gone = [m for m in platform.mutations if m[2] in exported_requests]
    assert len(in_gone) >= 4  # the admin's login and three invitations at least
    platform.mutations[:] = [m for m in platform.mutations if m not in in_gone]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read())
    assert manifest["items"] == len(items_before)
    copied = s3.get_object(Bucket=bucket, Key=f"{prefix}objects/files/contract.pdf")
    assert copied["Body"].read() == b"%PDF-1.7 x"
    assert platform.login("admin@gone.example", "gone", password="x").status == 401
    assert metric(platform, "tenants", "STATE#DEPROVISIONED") == 1

    again = platform.call("POST", "/api/v1/platform/tenants/gone/deprovision", operator, body={})
    assert (again.status, again.error_code) == (409, "INVALID_STATE")
    signup(platform, "gone")  # the subdomain is free again
