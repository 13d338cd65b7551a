"""Helpers for management-plane tests: provision through the real workflow, inspect the table.

Import with `from tests.integration.management_fixtures import *  # noqa: F403` next to
`identity_fixtures` (the `platform` fixture runs the whole stack in-process moto, with
Step Functions executing and every Lambda task dispatched to the real handler).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.integration.identity_fixtures import OPERATOR, Answer, Platform

TERMINAL = frozenset({"ACTIVE", "FAILED", "DEPROVISIONED"})
ADMIN_PASSWORD = "Acme-admin-2026!"


def operator_token(platform: Platform) -> str:
    return platform.token(OPERATOR, tenant="platform")


def tenant_request(subdomain: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": subdomain.title(),
        "subdomain": subdomain,
        "plan": "starter",
        "apps": ["isp", "crm"],
        "admin_email": f"admin@{subdomain}.example",
        "admin_name": "Admin",
        **overrides,
    }


def wait_for(
    platform: Platform, token: str, tenant_id: str, until: frozenset[str] = TERMINAL
) -> dict[str, Any]:
    """Poll until the tenant's status is in `until` and its workflows have finished (the
    status turns ACTIVE before the last step, the welcome notification, has run)."""
    deadline = time.monotonic() + 60
    while True:
        answer = platform.call("GET", f"/api/v1/platform/tenants/{tenant_id}", token)
        assert answer.status == 200, answer.json
        if answer.attributes["status"] in until and not running(platform, tenant_id):
            return platform.call("GET", f"/api/v1/platform/tenants/{tenant_id}", token).attributes
        assert time.monotonic() < deadline, answer.attributes
        time.sleep(0.02)


def running(platform: Platform, tenant_id: str) -> bool:
    """True while a lifecycle execution of `tenant_id` is still RUNNING."""
    sfn = platform.cloud.client("stepfunctions")
    for machine in platform.cloud.created.state_machines.values():
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if execution["name"].startswith(f"{tenant_id}-") and execution["status"] == "RUNNING":
                return True
    return False


def provision(
    platform: Platform, subdomain: str, *, key: str | None = None, **overrides: Any
) -> Answer:
    """POST /platform/tenants as the operator (202 expected by the callers that care)."""
    return platform.call(
        "POST",
        "/api/v1/platform/tenants",
        operator_token(platform),
        body=tenant_request(subdomain, **overrides),
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


def signup(platform: Platform, subdomain: str, **overrides: Any) -> dict[str, Any]:
    """Sign a tenant up (the admin chooses `ADMIN_PASSWORD`) and wait until it is ACTIVE."""
    body = {**tenant_request(subdomain, **overrides), "password": ADMIN_PASSWORD}
    answer = platform.call("POST", "/api/v1/signup", body=body)
    assert answer.status == 202, answer.json
    attributes = wait_for(platform, operator_token(platform), subdomain)
    assert attributes["status"] == "ACTIVE", attributes
    return attributes


def admin_token(platform: Platform, subdomain: str) -> str:
    return platform.token(f"admin@{subdomain}.example", subdomain, password=ADMIN_PASSWORD)


def scan_keys(platform: Platform, prefix: str) -> list[tuple[str, str]]:
    """Every (PK, SK) whose partition key starts with `prefix` (a test-only Scan)."""
    client = platform.cloud.client("dynamodb")
    found: list[tuple[str, str]] = []
    for page in client.get_paginator("scan").paginate(TableName=platform.cloud.created.table):
        for item in page["Items"]:
            if item["PK"]["S"].startswith(prefix):
                found.append((item["PK"]["S"], item["SK"]["S"]))
    return found


def object_keys(platform: Platform, prefix: str) -> list[str]:
    """Every object version and delete marker under `prefix`."""
    s3 = platform.cloud.client("s3")
    bucket = platform.cloud.created.buckets["objects"]
    listing = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return [v["Key"] for v in (*listing.get("Versions", ()), *listing.get("DeleteMarkers", ()))]


def metric(platform: Platform, family: str, key: str) -> int:
    """A platform aggregate's value, read straight from the table."""
    item = (
        platform.cloud.client("dynamodb")
        .get_item(
            TableName=platform.cloud.created.table,
            Key={"PK": {"S": f"METRIC#{family}"}, "SK": {"S": key}},
        )
        .get("Item")
    )
    return int(item["value"]["N"]) if item and "value" in item else 0


def executions(platform: Platform, tenant_id: str) -> list[str]:
    """The provisioning executions started for `tenant_id`."""
    sfn = platform.cloud.client("stepfunctions")
    machine = platform.cloud.created.state_machines["provision_tenant"]
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]
    return [n for n in names if n.startswith(f"{tenant_id}-")]


class Operator:
    """The platform operator's requests (absolute paths), e.g. for `counting`."""

    def __init__(self, platform: Platform) -> None:
        self.platform, self.token = platform, operator_token(platform)

    def call(self, method: str, path: str, body: Any = None) -> Answer:
        return self.platform.call(method, path, self.token, body=body)


def platform_reads(service: str, operation: str, params: str) -> bool:
    """DynamoDB calls but the API meters' (rate-limit windows, hourly usage leases)."""
    lease = operation == "UpdateItem" and "api_calls#" in params
    return service == "dynamodb" and '"RATE#' not in params and not lease


__all__ = [
    "ADMIN_PASSWORD",
    "TERMINAL",
    "Operator",
    "admin_token",
    "executions",
    "metric",
    "object_keys",
    "operator_token",
    "platform_reads",
    "provision",
    "running",
    "scan_keys",
    "signup",
    "tenant_request",
    "wait_for",
]
