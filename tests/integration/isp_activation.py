"""Activating ISP services through the real workflow (moto executes
`activate_isp_service`; every task runs the real `isp-activation-steps` handler). Used by
the tests of every ISP area that needs an ACTIVE service."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.integration.identity_fixtures import Answer, Platform
from tests.integration.test_isp_customers import Isp

MACHINE = "activate_isp_service"


def address_pool(isp: Isp, prefix: str = "100.64.0.0/24") -> str:
    """A new VRF with one leaf prefix; returns the prefix id."""
    vrf = isp.created("/ipam/vrfs", {"name": f"pool-{uuid.uuid4().hex[:8]}"})["id"]
    return str(isp.created("/ipam/prefixes", {"vrf_id": vrf, "prefix": prefix})["id"])


def start_activation(
    isp: Isp, number: str, prefix_id: str, reason: str | None = None, **headers: str
) -> Answer:
    body: dict[str, Any] = {"prefix_id": prefix_id}
    if reason is not None:
        body["reason"] = reason
    return isp.call("POST", f"/services/{number}/activation", body, **headers)


def execution_status(platform: Platform, execution: str) -> dict[str, Any]:
    """The Step Functions execution `execution` of the activation machine."""
    machine = platform.cloud.created.state_machines[MACHINE]
    arn = machine.replace(":stateMachine:", ":execution:") + f":{execution}"
    return dict(platform.cloud.client("stepfunctions").describe_execution(executionArn=arn))


def wait_for_activation(isp: Isp, number: str) -> dict[str, Any]:
    """Poll until the activation record is finished and its execution has ended."""
    deadline = time.monotonic() + 60
    while True:
        view = isp.get(f"/services/{number}/activation")
        finished = view["status"] != "RUNNING"
        if finished and execution_status(isp.platform, view["execution"])["status"] != "RUNNING":
            return isp.get(f"/services/{number}/activation")
        assert time.monotonic() < deadline, view
        time.sleep(0.02)


def activated(
    isp: Isp, number: str, reason: str = "installed", prefix_id: str | None = None
) -> dict[str, Any]:
    """Activate `number` through the workflow (from a new address pool unless `prefix_id`)
    and wait: the SUCCEEDED activation."""
    answer = start_activation(isp, number, prefix_id or address_pool(isp), reason)
    assert answer.status == 202, answer.json
    view = wait_for_activation(isp, number)
    assert view["status"] == "SUCCEEDED", view
    return view


__all__ = [
    "activated",
    "address_pool",
    "execution_status",
    "start_activation",
    "wait_for_activation",
]
