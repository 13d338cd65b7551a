"""The operator CLI (`dotmac`, run as a process) against the running local stack: provision
through the real workflow, the welcome notification through the real queue and worker,
suspend, reactivate, deprovision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import LocalStack

DOTMAC = str(Path(sys.executable).parent / "dotmac")


def cli(stack: LocalStack, *args: str) -> tuple[int, Any]:
    """Run `dotmac --json ...`; commands share one cached session (one sign-in in all)."""
    done = subprocess.run(
        [DOTMAC, "--endpoint", stack.api, "--json", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "DOTMAC_CLI_CACHE": str(stack.log_path.parent / "cli-sessions.json")},
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        return done.returncode, {"stdout": done.stdout, "stderr": done.stderr}


def login(stack: LocalStack, tenant: str, email: str, password: str) -> Any:
    body = {"tenant": tenant, "email": email, "password": password}
    return stack.request("POST", "/api/v1/auth/login", body)


def welcome_password(stack: LocalStack, tenant: str) -> str:
    """The temporary password from the welcome notification in the tenant's outbox (the
    workflow queued it; the queue poller ran the worker, which wrote it to S3)."""
    s3 = stack.boto3("s3")
    bucket = "dotmac-e2e-objects"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"tenants/{tenant}/outbox/")
        for entry in listed.get("Contents", []):
            body = json.loads(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read())
            if body["template"] == "tenant.welcome":
                return str(body["data"]["temporary_password"])
        time.sleep(0.2)
    raise AssertionError(f"no welcome notification for {tenant}")


def test_the_demo_tenant_was_provisioned_by_the_workflow(local_stack: LocalStack) -> None:
    code, shown = cli(local_stack, "tenants", "show", "abc-corp")
    assert code == 0, shown
    tenant = shown["data"]["attributes"]
    assert tenant["status"] == "ACTIVE" and tenant["licence_id"].startswith("LIC-")
    assert tenant["apps"] == ["commerce", "crm", "isp"]
    assert [s["step"] for s in tenant["steps"]][:3] == [
        "validate",
        "reserve_subdomain",
        "create_tenant",
    ]


def test_an_operator_runs_a_tenant_through_its_lifecycle(local_stack: LocalStack) -> None:
    code, provisioned = cli(
        local_stack,
        "tenants",
        "provision",
        "--name",
        "Cli Co",
        "--subdomain",
        "cli-co",
        "--plan",
        "starter",
        "--app",
        "crm",
        "--admin-email",
        "ann@cli-co.example",
        "--admin-name",
        "Ann",
    )
    assert code == 0, provisioned
    tenant = provisioned["data"]["attributes"]
    assert tenant["status"] == "ACTIVE"
    assert all(step["outcome"] == "ok" for step in tenant["steps"])

    temporary = welcome_password(local_stack, "cli-co")
    signed_in = login(local_stack, "cli-co", "ann@cli-co.example", temporary)
    assert signed_in.status == 200, signed_in.json()
    session = signed_in.json()["data"]["attributes"]
    assert session["restriction"] == "password_change"
    bearer = {"Authorization": f"Bearer {session['access_token']}"}

    def me() -> Any:
        return local_stack.request("GET", "/api/v1/auth/me", headers=bearer)

    assert me().status == 200
    code, listed = cli(local_stack, "tenants", "list", "--status", "ACTIVE", "--all")
    assert code == 0 and "cli-co" in {t["id"] for t in listed["data"]}

    code, _ = cli(local_stack, "tenants", "suspend", "cli-co", "--reason", "unpaid")
    assert code == 0
    assert (me().status, me().json()["error"]["code"]) == (403, "TENANT_SUSPENDED")
    code, again = cli(local_stack, "tenants", "suspend", "cli-co", "--reason", "twice")
    assert code == 1 and again["error"]["code"] == "INVALID_STATE"
    code, _ = cli(local_stack, "tenants", "reactivate", "cli-co")
    assert code == 0
    assert me().status == 200

    code, gone = cli(local_stack, "tenants", "deprovision", "cli-co", "--yes")
    assert code == 0, gone
    final = gone["data"]["attributes"]
    assert final["status"] == "DEPROVISIONED"
    assert final["export_location"].startswith("s3://dotmac-e2e-objects/exports/cli-co/")
    assert me().status == 401
