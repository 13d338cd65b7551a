"""Provisioning bench: time per tenant for N = 1, 10, 100 tenants provisioned one after another.

Runs the real workflow in in-process moto (Step Functions executing, every task dispatched
to the real `lifecycle-steps` handler, real argon2 for the admin's temporary password).
Each figure is request -> execution finished (SUCCEEDED), so it includes the welcome step.
Flatness: the mean of the last 10 tenants of the N=100 run over the mean of its first 10.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

SIZES = (1, 10, 100)
GOAL_SECONDS = 2.0


def _provision_one(name: str) -> float:
    from dotmac.core import aws
    from dotmac.management import provisioning, service
    from dotmac.management.repository import get_tenant_item
    from dotmac.management.schemas import TenantRequest

    request = TenantRequest(
        name=name.title(),
        subdomain=name,
        plan="professional",
        apps=["isp", "crm"],
        admin_email=f"admin@{name}.example",
        admin_name="Admin",
    )
    start = time.perf_counter()
    service.request_provisioning(provisioning.system_context("bench"), request, name)
    arn = get_tenant_item(name).execution_arn
    sfn = aws.client("stepfunctions")
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert status == "SUCCEEDED", (name, status)
    return elapsed


def run() -> dict[str, Any]:
    from stack import aws_calls, seeded_stack

    rows: list[dict[str, Any]] = []
    with seeded_stack(), aws_calls() as calls:
        for size in SIZES:
            calls.clear()
            times = [_provision_one(f"bench-{size}-{i:03d}") for i in range(size)]
            ours = {
                k: round(v / size, 1)
                for k, v in calls.counts().items()
                if not k.startswith("stepfunctions:DescribeExecution")
            }
            rows.append(
                {
                    "tenants": size,
                    "mean_s": statistics.mean(times),
                    "p50_s": statistics.median(times),
                    "max_s": max(times),
                    "total_s": sum(times),
                    "first10_mean_s": statistics.mean(times[:10]),
                    "last10_mean_s": statistics.mean(times[-10:]),
                    "aws_calls_per_tenant": ours,
                }
            )
    largest = rows[-1]
    return {
        "goal_s": GOAL_SECONDS,
        "rows": rows,
        "flatness": largest["last10_mean_s"] / largest["first10_mean_s"],
    }
