"""ISP network inventory through the gateway: devices (plan limit, unique names), interfaces
(percent-encoded names), circuits linked to services, device status reports through the real
`device-events` queue and worker (ordering, duplicates, one DOWN alert, dead letters), bad
input, tenant isolation, permissions and DynamoDB calls per read."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devcloud.events import queue_mappings
from devcloud.pollers import QueuePoller
from infra.naming import physical
from infra.resources import STACK
from tests.integration.conftest import STAGE
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JANE,
    JOHN,
    SARAH,
    TOM,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import scan_keys
from tests.integration.test_isp_customers import Isp, counting, isp_data, items, raw_item, used

DEVICE = {
    "name": "core-rtr-01.lagos",
    "device_type": "router",
    "vendor": "Juniper",
    "model": "MX204",
    "serial": "JN1234AB",
    "management_ip": "10.0.0.1",
    "site": "Lagos POP 1",
}
ALERT = "isp.device.down"
HOUR = timedelta(hours=1)


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


@pytest.fixture
def worker(platform: Platform) -> QueuePoller:
    """The `device-events` event source mapping, polled on demand by the test."""
    (mapping,) = [m for m in queue_mappings(STACK, STAGE) if m.function == "device-events-worker"]
    return QueuePoller(platform.cloud.session, mapping, physical(STAGE, mapping.function))


def device(john: Isp, **overrides: Any) -> str:
    return str(john.created("/devices", {**DEVICE, **overrides})["id"])


def interface(john: Isp, device_id: str, name: str, **extra: Any) -> dict[str, Any]:
    answer = john.call("POST", f"/devices/{device_id}/interfaces", {"name": name, **extra})
    assert answer.status == 201, answer.json
    return answer.attributes


def service(john: Isp) -> str:
    plan = john.plan()
    body = {"customer_id": john.customer(), "plan_id": plan}
    return str(john.created("/services", body)["id"])


def circuit(john: Isp, **overrides: Any) -> dict[str, Any]:
    body = {
        "cid": "ACME-LAG-00123",
        "provider": "Acme Transit",
        "circuit_type": "transit",
        "commit_rate_mbps": 1000,
        "a_termination": {"site": "Acme POP Lagos"},
        "z_termination": {"site": "Customer premises"},
        **overrides,
    }
    return john.created("/circuits", body)


def depth(platform: Platform, logical: str) -> int:
    attributes = platform.cloud.client("sqs").get_queue_attributes(
        QueueUrl=platform.cloud.queue_url(logical),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def enqueue(platform: Platform, body: Any) -> None:
    """A message straight onto `device-events`, as a collector (or a redelivery) puts it."""
    payload = body if isinstance(body, str) else json.dumps(body)
    platform.cloud.client("sqs").send_message(
        QueueUrl=platform.cloud.queue_url("device-events"), MessageBody=payload
    )


def event(device_id: str, status: str, at: datetime) -> dict[str, Any]:
    return {"tenant_id": ABC, "device_id": device_id, "status": status, "at": at.isoformat()}


def history(john: Isp, device_id: str) -> list[tuple[str, str | None, str, str]]:
    answer = john.call("GET", f"/devices/{device_id}/status-history")
    assert answer.status == 200, answer.json
    return [
        (h["attributes"]["action"], h["attributes"]["from"], h["attributes"]["to"], h["id"])
        for h in answer.json["data"]
    ]


# --- devices and interfaces --------------------------------------------------------------------


def test_device_lifecycle_with_interfaces(platform: Platform, john: Isp) -> None:
    before = used(platform, "devices")
    created = john.created("/devices", DEVICE)
    device_id = created["id"]
    assert used(platform, "devices") == before + 1
    assert (created["status"], created["reported_status"], created["interfaces"]) == (
        "UNKNOWN",
        "UNKNOWN",
        [],
    )
    assert (created["management_ip"], created["last_seen"]) == ("10.0.0.1", None)

    # Interface names carry `/`: the URL segment is the percent-encoded name.
    first = john.call(
        "POST",
        f"/devices/{device_id}/interfaces",
        {
            "name": "ge-0/0/1",
            "speed_mbps": 1000,
            "mac": "001A.2B3C.4D5E",
            "interface_type": "fiber",
        },
    )
    assert first.status == 201, first.json
    assert first.json["data"]["id"] == "ge-0/0/1"
    location = f"/api/v1/isp/devices/{device_id}/interfaces/ge-0%2F0%2F1"
    assert first.header("Location") == location
    assert first.attributes["mac"] == "00:1a:2b:3c:4d:5e"
    interface(john, device_id, "xe-1/0/0:1", mac="00-1A-2B-3C-4D-5F")
    interface(john, device_id, "ae0", interface_type="lag")
    got = john.get(f"/devices/{device_id}")
    assert [i["name"] for i in got["interfaces"]] == ["ae0", "ge-0/0/1", "xe-1/0/0:1"]
    assert got["interface_count"] == 3
    assert got["interfaces"][2]["mac"] == "00:1a:2b:3c:4d:5f"

    assert john.get(f"/devices/{device_id}/interfaces/ge-0%2F0%2F1")["speed_mbps"] == 1000
    patched = john.call(
        "PATCH",
        f"/devices/{device_id}/interfaces/ge-0%2F0%2F1",
        {"oper_status": "UP", "description": "uplink to core-2", "mac": None},
    )
    assert patched.status == 200, patched.json
    assert (patched.attributes["oper_status"], patched.attributes["mac"]) == ("UP", None)
    assert patched.attributes["speed_mbps"] == 1000  # untouched
    gone = john.call("DELETE", f"/devices/{device_id}/interfaces/xe-1%2F0%2F0%3A1")
    assert gone.status == 204
    assert john.call("GET", f"/devices/{device_id}/interfaces/xe-1%2F0%2F0%3A1").status == 404
    assert john.get(f"/devices/{device_id}")["interface_count"] == 2

    # A rename moves the name's reservation; names are unique case-insensitively.
    renamed = john.call("PATCH", f"/devices/{device_id}", {"name": "core-rtr-02", "site": None})
    assert renamed.status == 200, renamed.json
    assert (renamed.attributes["name"], renamed.attributes["site"]) == ("core-rtr-02", None)
    assert len(renamed.attributes["interfaces"]) == 2
    other = device(john, name=DEVICE["name"], device_type="switch")  # the old name is free
    taken = john.call("POST", "/devices", {**DEVICE, "name": "CORE-RTR-02"})
    assert (taken.status, taken.error_code) == (409, "DEVICE_NAME_TAKEN")
    taken = john.call("PATCH", f"/devices/{other}", {"name": "Core-Rtr-02"})
    assert (taken.status, taken.error_code) == (409, "DEVICE_NAME_TAKEN")
    cased = john.call("PATCH", f"/devices/{device_id}", {"name": "CORE-rtr-02"})
    assert cased.status == 200 and cased.attributes["name"] == "CORE-rtr-02"

    listed = john.call("GET", "/devices").json["data"]
    assert [d["id"] for d in listed] == [other, device_id]  # by name: core-rtr-01.lagos first
    assert "interfaces" not in listed[0]["attributes"]
    page = john.call("GET", "/devices?limit=1")
    assert [d["id"] for d in page.json["data"]] == [other]
    rest = john.call("GET", f"/devices?limit=1&cursor={page.json['meta']['next_cursor']}")
    assert [d["id"] for d in rest.json["data"]] == [device_id]

    # Maintenance is a status of its own, recorded as transitions.
    on = john.call("PATCH", f"/devices/{device_id}", {"maintenance": True})
    assert on.attributes["status"] == "MAINTENANCE"
    assert [d["id"] for d in john.call("GET", "/devices?status=MAINTENANCE").json["data"]] == [
        device_id
    ]
    off = john.call("PATCH", f"/devices/{device_id}", {"maintenance": False})
    assert off.attributes["status"] == "UNKNOWN"
    assert [(a, f, t) for a, f, t, _ in history(john, device_id)] == [
        ("end_maintenance", "MAINTENANCE", "UNKNOWN"),
        ("maintenance", "UNKNOWN", "MAINTENANCE"),
        ("create", None, "UNKNOWN"),
    ]

    # Decommissioning frees the plan slot, the name, and the whole item collection.
    assert john.call("DELETE", f"/devices/{device_id}").status == 204
    assert used(platform, "devices") == before + 1  # `other` is still counted
    assert john.call("GET", f"/devices/{device_id}").status == 404
    assert john.call("GET", f"/devices/{device_id}/status-history").status == 404
    assert scan_keys(platform, f"T#{ABC}#ISP_DEVICE#{device_id}") == []
    device(john, name="core-rtr-02")
    actions = Counter(
        r["action"]
        for r in platform.audit_records()
        if r["resource_id"] == device_id or r["resource_id"].startswith(f"{device_id}/")
    )
    assert actions == {
        "isp.device.create": 1,
        "isp.interface.create": 3,
        "isp.interface.update": 1,
        "isp.interface.delete": 1,
        "isp.device.update": 4,
        "isp.device.delete": 1,
    }


def test_bad_device_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    device_id = device(john)
    interface(john, device_id, "ge-0/0/1")
    before, counted = items(platform), used(platform, "devices")
    bad: list[dict[str, Any]] = [
        {**DEVICE, "management_ip": "10.0.0.256"},
        {**DEVICE, "management_ip": "224.0.0.1"},  # multicast
        {**DEVICE, "management_ip": "0.0.0.0"},
        {**DEVICE, "management_ip": 167772161},  # an integer is not an address here
        {**DEVICE, "management_ip": "10.0.0.0/24"},
        {**DEVICE, "name": "core rtr"},
        {**DEVICE, "name": "-core"},
        {**DEVICE, "name": "x" * 64},
        {**DEVICE, "device_type": "toaster"},
        {**DEVICE, "vendor": ""},
        {**DEVICE, "status": "UP"},  # status comes from reports and maintenance only
        {k: v for k, v in DEVICE.items() if k != "model"},
    ]
    for body in bad:
        answer = john.call("POST", "/devices", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"], body
    for patch in ({}, {"name": None}, {"maintenance": None}, {"maintenance": "yes"}, {"x": 1}):
        assert john.call("PATCH", f"/devices/{device_id}", patch).status == 400, patch
    bad_interfaces: list[dict[str, Any]] = [
        {"name": "ge-0%2F0%2F2"},  # `%` cannot be part of a name
        {"name": "ge 0/0/2"},
        {"name": "ge-0/0/2#1"},
        {"name": "ge-0/0/2", "mac": "00:1a:2b:3c:4d"},
        {"name": "ge-0/0/2", "mac": "00:1a:2b:3c:4d:5e:6f"},
        {"name": "ge-0/0/2", "mac": "001a.2b3c.4d5g"},
        {"name": "ge-0/0/2", "speed_mbps": 0},
        {"name": "ge-0/0/2", "admin_status": "ON"},
    ]
    for body in bad_interfaces:
        answer = john.call("POST", f"/devices/{device_id}/interfaces", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
    path = f"/devices/{device_id}/interfaces/ge-0%2F0%2F1"
    for patch in ({}, {"name": "ge-0/0/9"}, {"oper_status": None}, {"speed_mbps": -1}):
        assert john.call("PATCH", path, patch).status == 400, patch
    again = john.call("POST", f"/devices/{device_id}/interfaces", {"name": "ge-0/0/1"})
    assert (again.status, again.error_code) == (409, "INTERFACE_EXISTS")
    for missing in ("/devices/0123456789abcdef", "/devices/nope"):
        assert john.call("GET", missing).status == 404
        assert john.call("PATCH", missing, {"vendor": "X"}).status == 404
        assert john.call("DELETE", missing).status == 404
        assert john.call("POST", f"{missing}/interfaces", {"name": "ge-0/0/1"}).status == 404
        assert john.call("GET", f"{missing}/status-history").status == 404
    for name in ("ge-0%2F0%2F9", "ge-0/0/1"):  # unknown; not encoded (no such route)
        assert john.call("GET", f"/devices/{device_id}/interfaces/{name}").status == 404
        assert john.call("DELETE", f"/devices/{device_id}/interfaces/{name}").status == 404
    assert john.call("GET", "/devices?status=BROKEN").status == 400
    assert john.call("GET", "/devices?cursor=nope").status == 400
    assert items(platform) == before
    assert used(platform, "devices") == counted


def test_a_failed_device_create_counts_nothing(platform: Platform, john: Isp) -> None:
    """The counter, the name and the device commit together: a taken name moves nothing."""
    device(john)
    before, counted = items(platform), used(platform, "devices")
    answer = john.call("POST", "/devices", {**DEVICE, "model": "MX480"})
    assert (answer.status, answer.error_code) == (409, "DEVICE_NAME_TAKEN")
    assert items(platform) == before
    assert used(platform, "devices") == counted


def test_the_device_limit_has_a_grace_period_then_refuses(
    platform: Platform, globex: Platform
) -> None:
    """Starter plan: 5 network devices. Over it, writes go on for 24 h, then 403; a
    decommissioned device frees its slot."""
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    first = device(theirs, name="edge-1")
    assert used(platform, "devices", GLOBEX) == 1
    client, table = platform.cloud.client("dynamodb"), platform.cloud.created.table
    key = {"PK": {"S": f"T#{GLOBEX}#USAGE"}, "SK": {"S": "devices"}}
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #count = :n",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={":n": {"N": "5"}},
    )
    device(theirs, name="edge-6")  # the 6th: allowed, the grace period starts
    assert used(platform, "devices", GLOBEX) == 6
    started = int(client.get_item(TableName=table, Key=key)["Item"]["exceeded_at"]["N"])
    assert abs(started - time.time()) < 60
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET exceeded_at = :t",
        ExpressionAttributeValues={":t": {"N": str(started - 25 * 3600)}},
    )
    before = items(platform, tenant=GLOBEX)
    refused = theirs.call("POST", "/devices", {**DEVICE, "name": "edge-7"})
    assert (refused.status, refused.error_code) == (403, "PLAN_LIMIT_EXCEEDED")
    assert used(platform, "devices", GLOBEX) == 6
    assert items(platform, tenant=GLOBEX) == before

    assert theirs.call("DELETE", f"/devices/{first}").status == 204
    assert used(platform, "devices", GLOBEX) == 5
    assert "exceeded_at" not in client.get_item(TableName=table, Key=key)["Item"]
    device(theirs, name="edge-7")  # back within the limit: a new grace period may start


# --- circuits ----------------------------------------------------------------------------------


def test_circuits_connect_interfaces_and_carry_services(platform: Platform, john: Isp) -> None:
    core, edge = device(john), device(john, name="olt-01", device_type="olt")
    interface(john, core, "ge-0/0/1")
    interface(john, edge, "pon-1/1")
    first_service, second_service = service(john), service(john)
    created = circuit(
        john,
        a_termination={"device_id": core, "interface": "ge-0/0/1"},
        burst_mbps=2000,
        services=[first_service],
    )
    circuit_id = created["id"]
    assert created["a_termination"] == {"device_id": core, "interface": "ge-0/0/1", "site": None}
    assert created["z_termination"]["site"] == "Customer premises"
    assert (created["status"], created["burst_mbps"], created["services"]) == (
        "ACTIVE",
        2000,
        [first_service],
    )
    port = john.get(f"/devices/{core}/interfaces/ge-0%2F0%2F1")
    assert port["circuit_ends"] == 1
    assert john.get(f"/devices/{core}")["circuit_ends"] == 1
    carried = john.call("GET", f"/services/{first_service}/circuits").json["data"]
    assert [(c["id"], c["attributes"]["commit_rate_mbps"]) for c in carried] == [(circuit_id, 1000)]
    assert john.call("GET", f"/services/{second_service}/circuits").json["data"] == []

    # In use: neither the interface nor the device can go.
    busy = john.call("DELETE", f"/devices/{core}/interfaces/ge-0%2F0%2F1")
    assert (busy.status, busy.error_code) == (409, "INTERFACE_IN_USE")
    busy = john.call("DELETE", f"/devices/{core}")
    assert (busy.status, busy.error_code) == (409, "DEVICE_IN_USE")
    # One circuit id per provider (case-insensitive); another provider may reuse it.
    twin = john.call(
        "POST",
        "/circuits",
        {
            "cid": "acme-lag-00123",
            "provider": "ACME TRANSIT",
            "circuit_type": "p2p",
            "commit_rate_mbps": 10,
            "a_termination": {"site": "a"},
            "z_termination": {"site": "b"},
        },
    )
    assert (twin.status, twin.error_code) == (409, "CIRCUIT_EXISTS")
    other = circuit(john, provider="Other Carrier", circuit_type="mpls")["id"]

    # Moving the Z end and the services moves the counters and the copies.
    moved = john.call(
        "PATCH",
        f"/circuits/{circuit_id}",
        {
            "z_termination": {"device_id": edge, "interface": "pon-1/1"},
            "services": [second_service],
            "commit_rate_mbps": 1500,
            "status": "OFFLINE",
        },
    )
    assert moved.status == 200, moved.json
    assert (moved.attributes["commit_rate_mbps"], moved.attributes["status"]) == (1500, "OFFLINE")
    assert john.get(f"/devices/{edge}")["circuit_ends"] == 1
    assert john.get(f"/devices/{edge}/interfaces/pon-1%2F1")["circuit_ends"] == 1
    assert john.call("GET", f"/services/{first_service}/circuits").json["data"] == []
    carried = john.call("GET", f"/services/{second_service}/circuits").json["data"]
    assert [(c["id"], c["attributes"]["status"]) for c in carried] == [(circuit_id, "OFFLINE")]
    assert john.get(f"/circuits/{circuit_id}")["services"] == [second_service]
    listed = john.call("GET", "/circuits").json["data"]
    assert [c["id"] for c in listed] == [circuit_id, other]  # by provider, then circuit id
    # Both ends on one device count twice on it, once on each interface.
    interface(john, edge, "pon-1/2")
    both = john.call(
        "PATCH",
        f"/circuits/{circuit_id}",
        {"a_termination": {"device_id": edge, "interface": "pon-1/2"}},
    )
    assert both.status == 200, both.json
    assert john.get(f"/devices/{edge}")["circuit_ends"] == 2
    assert john.get(f"/devices/{core}")["circuit_ends"] == 0
    assert john.get(f"/devices/{core}/interfaces/ge-0%2F0%2F1")["circuit_ends"] == 0

    assert john.call("DELETE", f"/circuits/{circuit_id}").status == 204
    assert john.call("GET", f"/circuits/{circuit_id}").status == 404
    assert john.get(f"/devices/{edge}")["circuit_ends"] == 0
    assert john.call("GET", f"/services/{second_service}/circuits").json["data"] == []
    assert scan_keys(platform, f"T#{ABC}#ISP_CIRCUIT#{circuit_id}") == []
    assert john.call("DELETE", f"/devices/{edge}").status == 204
    reused = circuit(john, services=[first_service])  # the ref is free again
    assert reused["cid"] == "ACME-LAG-00123"
    actions = Counter(
        r["action"] for r in platform.audit_records() if r["resource_id"] == circuit_id
    )
    assert actions == {"isp.circuit.create": 1, "isp.circuit.update": 2, "isp.circuit.delete": 1}


def test_bad_circuit_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    core = device(john)
    interface(john, core, "ge-0/0/1")
    number = service(john)
    existing = circuit(john, services=[number])["id"]
    before = items(platform)
    on_core = {"device_id": core, "interface": "ge-0/0/1"}
    base = {
        "cid": "NEW-1",
        "provider": "Acme Transit",
        "circuit_type": "transit",
        "commit_rate_mbps": 100,
        "a_termination": on_core,
        "z_termination": {"site": "far end"},
    }
    unknown_service = "INT-20260101-abcdef"
    cases: list[tuple[dict[str, Any], str]] = [
        ({**base, "services": [unknown_service]}, "services"),
        ({**base, "a_termination": {"device_id": core, "interface": "ge-9/9/9"}}, "interface"),
        (
            {**base, "a_termination": {"device_id": "0123456789abcdef", "interface": "ge-0/0/1"}},
            "interface",
        ),
        ({**base, "a_termination": {"device_id": core}}, "a_termination"),
        ({**base, "a_termination": {**on_core, "site": "x"}}, "a_termination"),
        ({**base, "a_termination": {}}, "a_termination"),
        ({**base, "z_termination": on_core}, "z_termination"),  # the same interface twice
        ({**base, "burst_mbps": 50}, "burst_mbps"),
        ({**base, "commit_rate_mbps": 0}, "commit_rate_mbps"),
        ({**base, "commit_rate_mbps": "100"}, "commit_rate_mbps"),
        ({**base, "services": [number, number]}, "services"),
        ({**base, "services": ["INT-1"]}, "services"),
        ({**base, "provider": "Acme#Transit"}, "provider"),
        ({**base, "status": "BROKEN"}, "status"),
        ({k: v for k, v in base.items() if k != "z_termination"}, "z_termination"),
    ]
    for body, field in cases:
        answer = john.call("POST", "/circuits", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        fields = [d["field"] for d in answer.json["error"]["details"]]
        assert any(field in f for f in fields), (body, fields)
    for patch in (
        {},
        {"cid": "X"},  # provider and cid do not change
        {"services": None},
        {"services": [unknown_service]},
        {"burst_mbps": 10},  # below the stored commit rate
        {"z_termination": {"device_id": core, "interface": "nope"}},
    ):
        answer = john.call("PATCH", f"/circuits/{existing}", patch)
        assert answer.status == 400, (patch, answer.json)
    for missing in ("/circuits/0123456789abcdef", "/circuits/nope"):
        assert john.call("GET", missing).status == 404
        assert john.call("PATCH", missing, {"status": "OFFLINE"}).status == 404
        assert john.call("DELETE", missing).status == 404
    assert john.call("GET", "/services/nope/circuits").status == 404
    assert john.call("GET", f"/services/{unknown_service}/circuits").status == 404
    assert items(platform) == before


# --- status reports through the queue ----------------------------------------------------------


def test_status_reports_apply_in_order_and_alert_once_per_down(
    platform: Platform, john: Isp, worker: QueuePoller
) -> None:
    device_id = device(john)
    now = datetime.now(UTC).replace(microsecond=0)
    t1, t0 = now - 4 * HOUR, now - 5 * HOUR

    down = john.call(
        "POST",
        f"/devices/{device_id}/status-events",
        {"status": "DOWN", "at": t1.isoformat(), "detail": "no ICMP reply from 10.0.0.1"},
    )
    assert down.status == 202, down.json
    queued = down.attributes
    assert datetime.fromisoformat(queued.pop("at")) == t1
    assert queued == {
        "tenant_id": ABC,
        "device_id": device_id,
        "status": "DOWN",
        "detail": "no ICMP reply from 10.0.0.1",
    }
    assert john.get(f"/devices/{device_id}")["status"] == "UNKNOWN"  # not applied yet
    assert worker.poll_once() == 1
    got = john.get(f"/devices/{device_id}")
    assert (got["status"], got["reported_at"], got["status_changed_at"]) == (
        "DOWN",
        t1.isoformat(),
        t1.isoformat(),
    )
    (alert,) = platform.notifications(ALERT)
    assert alert["id"] == f"dev-{device_id}-down-{t1:%Y%m%dT%H%M%S%f}"
    assert (alert["tenant_id"], alert["recipient"]) == (ABC, "role:isp_manager")
    assert alert["data"]["name"] == DEVICE["name"]
    assert "alert_pending_at" not in raw_item(platform, f"T#{ABC}#ISP_DEVICE#{device_id}")

    # A duplicate delivery and an older report change nothing and alert nobody.
    enqueue(platform, {**event(device_id, "DOWN", t1), "detail": "no ICMP reply from 10.0.0.1"})
    assert worker.poll_once() == 1
    enqueue(platform, event(device_id, "UP", t0))
    assert worker.poll_once() == 1
    got = john.get(f"/devices/{device_id}")
    assert (got["status"], got["reported_at"], got["last_seen"]) == ("DOWN", t1.isoformat(), None)
    assert platform.notifications(ALERT) == []
    assert worker.failed == 0

    # Back UP; a heartbeat moves only the times; DOWN again is a new alert.
    t2, t3, t4 = now - 3 * HOUR, now - 2 * HOUR, now - HOUR
    enqueue(platform, event(device_id, "UP", t2))
    assert worker.poll_once() == 1
    enqueue(platform, event(device_id, "UP", t3))
    assert worker.poll_once() == 1
    got = john.get(f"/devices/{device_id}")
    assert (got["status"], got["status_changed_at"], got["last_seen"]) == (
        "UP",
        t2.isoformat(),
        t3.isoformat(),
    )
    enqueue(platform, event(device_id, "DOWN", t4))
    assert worker.poll_once() == 1
    expected = f"dev-{device_id}-down-{t4:%Y%m%dT%H%M%S%f}"
    assert [a["id"] for a in platform.notifications(ALERT)] == [expected]
    assert [d["id"] for d in john.call("GET", "/devices?status=DOWN").json["data"]] == [device_id]
    assert john.call("GET", "/devices?status=UP").json["data"] == []

    moves = history(john, device_id)
    assert [(a, f, t) for a, f, t, _ in moves] == [
        ("report", "UP", "DOWN"),
        ("report", "DOWN", "UP"),
        ("report", "UNKNOWN", "DOWN"),
        ("create", None, "UNKNOWN"),
    ]
    reports = [r for r in platform.audit_records() if r["action"] == "isp.device.report"]
    assert len(reports) == 3 and {r["actor"] for r in reports} == {"device-events"}
    answer = john.call("GET", f"/devices/{device_id}/status-history?limit=1")
    assert [h["attributes"]["to"] for h in answer.json["data"]] == ["DOWN"]
    cursor = answer.json["meta"]["next_cursor"]
    rest = john.call("GET", f"/devices/{device_id}/status-history?limit=1&cursor={cursor}")
    assert [h["attributes"]["to"] for h in rest.json["data"]] == ["UP"]


def test_reports_in_maintenance_are_kept_without_alerts(
    platform: Platform, john: Isp, worker: QueuePoller
) -> None:
    device_id = device(john)
    now = datetime.now(UTC)
    assert john.call("PATCH", f"/devices/{device_id}", {"maintenance": True}).status == 200
    enqueue(platform, event(device_id, "UP", now - 2 * HOUR))
    enqueue(platform, event(device_id, "DOWN", now - HOUR))
    handled = worker.poll_once()
    handled += worker.poll_once() if handled < 2 else 0
    assert handled == 2
    got = john.get(f"/devices/{device_id}")
    assert (got["status"], got["reported_status"]) == ("MAINTENANCE", "DOWN")
    assert platform.notifications(ALERT) == []
    ended = john.call("PATCH", f"/devices/{device_id}", {"maintenance": False})
    assert ended.attributes["status"] == "DOWN"  # what the device last reported
    assert platform.notifications(ALERT) == []


def test_an_alert_that_could_not_be_queued_is_queued_on_redelivery(
    platform: Platform, john: Isp, worker: QueuePoller, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.core import queues

    device_id = device(john)
    at = datetime.now(UTC) - HOUR
    platform.cloud.client("sqs").set_queue_attributes(
        QueueUrl=platform.cloud.queue_url("device-events"), Attributes={"VisibilityTimeout": "0"}
    )
    real_send = queues.send

    def notifications_down(logical: str, body: dict[str, Any], **kwargs: Any) -> str:
        if logical == "notifications":
            raise RuntimeError("SQS unavailable")
        return real_send(logical, body, **kwargs)

    enqueue(platform, event(device_id, "DOWN", at))
    with monkeypatch.context() as patch:
        patch.setattr(queues, "send", notifications_down)
        assert worker.poll_once() == 1
    assert worker.failed == 1
    assert john.get(f"/devices/{device_id}")["status"] == "DOWN"  # the change stands
    stored = raw_item(platform, f"T#{ABC}#ISP_DEVICE#{device_id}")
    assert "alert_pending_at" in stored
    assert platform.notifications(ALERT) == []

    assert worker.poll_once() == 1  # the same message, delivered again
    assert worker.failed == 1 and worker.deleted == 1
    assert len(platform.notifications(ALERT)) == 1
    assert "alert_pending_at" not in raw_item(platform, f"T#{ABC}#ISP_DEVICE#{device_id}")
    enqueue(platform, event(device_id, "DOWN", at))  # a later duplicate: nothing pending
    assert worker.poll_once() == 1
    assert platform.notifications(ALERT) == []
    assert [a for a, *_ in history(john, device_id)] == ["report", "create"]


def test_bad_reports_reach_the_dlq_without_failing_the_batch(
    platform: Platform, john: Isp, worker: QueuePoller
) -> None:
    device_id = device(john)
    now = datetime.now(UTC)
    platform.cloud.client("sqs").set_queue_attributes(
        QueueUrl=platform.cloud.queue_url("device-events"), Attributes={"VisibilityTimeout": "0"}
    )
    good = event(device_id, "UP", now - HOUR)
    bad: list[Any] = [
        "not json at all",
        {**good, "status": "SIDEWAYS"},
        {**good, "device_id": "0123456789abcdef"},  # no such device
        {**good, "tenant_id": GLOBEX},  # not Globex's device
        {**good, "at": (now + HOUR).isoformat()},  # from the future
        {**good, "at": "2026-01-01T00:00:00"},  # no time zone
        {**good, "extra": 1},
    ]
    enqueue(platform, good)
    for body in bad:
        enqueue(platform, body)
    assert worker.poll_once() == 1 + len(bad)
    assert (worker.deleted, worker.failed) == (1, len(bad))
    assert john.get(f"/devices/{device_id}")["status"] == "UP"
    max_receives = next(q.max_receive_count for q in STACK.queues if q.name == "device-events")
    for _ in range(max_receives):
        worker.poll_once()
    assert depth(platform, "device-events") == 0
    assert depth(platform, "device-events-dlq") == len(bad)
    assert worker.deleted == 1


def test_reporting_over_http_checks_the_report(platform: Platform, john: Isp) -> None:
    device_id = device(john)
    path = f"/devices/{device_id}/status-events"
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    for body in (
        {"status": "SIDEWAYS"},
        {"status": "DOWN", "at": future},
        {"status": "DOWN", "at": "2026-01-01T00:00:00"},
        {"status": "DOWN", "tenant_id": GLOBEX},
        {"status": "DOWN", "device_id": device_id},
        {},
    ):
        answer = john.call("POST", path, body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
    unknown = john.call("POST", "/devices/0123456789abcdef/status-events", {"status": "UP"})
    assert unknown.status == 404
    assert depth(platform, "device-events") == 0
    now = john.call("POST", path, {"status": "UP"})  # `at` defaults to now
    assert now.status == 202 and now.attributes["at"]
    assert depth(platform, "device-events") == 1


# --- isolation, roles, calls -------------------------------------------------------------------


def test_tenants_and_roles_reach_only_their_own_network(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    device_id = device(john)
    interface(john, device_id, "ge-0/0/1")
    number = service(john)
    circuit_id = circuit(
        john, a_termination={"device_id": device_id, "interface": "ge-0/0/1"}, services=[number]
    )["id"]
    before = items(platform)
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    port = f"/devices/{device_id}/interfaces/ge-0%2F0%2F1"
    for method, path, body in [
        ("GET", f"/devices/{device_id}", None),
        ("PATCH", f"/devices/{device_id}", {"vendor": "Mallory"}),
        ("DELETE", f"/devices/{device_id}", None),
        ("GET", f"/devices/{device_id}/status-history", None),
        ("POST", f"/devices/{device_id}/status-events", {"status": "DOWN"}),
        ("POST", f"/devices/{device_id}/interfaces", {"name": "ge-0/0/2"}),
        ("GET", port, None),
        ("PATCH", port, {"description": "x"}),
        ("DELETE", port, None),
        ("GET", f"/circuits/{circuit_id}", None),
        ("PATCH", f"/circuits/{circuit_id}", {"status": "OFFLINE"}),
        ("DELETE", f"/circuits/{circuit_id}", None),
    ]:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    for path in ("/devices", "/circuits"):
        assert theirs.call("GET", path).json["data"] == [], path
    assert theirs.call("GET", f"/services/{number}/circuits").status == 404
    # Their circuit cannot end on our device either.
    answer = theirs.call(
        "POST",
        "/circuits",
        {
            "cid": "G-1",
            "provider": "Acme",
            "circuit_type": "p2p",
            "commit_rate_mbps": 10,
            "a_termination": {"device_id": device_id, "interface": "ge-0/0/1"},
            "z_termination": {"site": "x"},
            "services": [number],
        },
    )
    assert answer.status == 400
    assert {d["field"] for d in answer.json["error"]["details"]} == {
        "a_termination.interface",
        "services",
    }
    assert items(platform) == before
    assert depth(platform, "device-events") == 0
    mine = device(theirs, name=DEVICE["name"])  # names are unique per tenant only
    assert [d["id"] for d in theirs.call("GET", "/devices").json["data"]] == [mine]

    for user in (TOM, JANE):  # technician, portal customer
        client = Isp(platform, platform.token(user))
        for method, path, body in [
            ("GET", "/devices", None),
            ("GET", f"/devices/{device_id}", None),
            ("POST", "/devices", DEVICE),
            ("POST", f"/devices/{device_id}/status-events", {"status": "DOWN"}),
            ("GET", "/circuits", None),
            ("GET", f"/services/{number}/circuits", None),
            ("DELETE", f"/circuits/{circuit_id}", None),
        ]:
            answer = client.call(method, path, body)
            assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (user, path)
    sarah = Isp(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    assert sarah.get(f"/devices/{device_id}")["interface_count"] == 1
    assert sarah.call("PATCH", f"/circuits/{circuit_id}", {"status": "OFFLINE"}).status == 200


def test_reads_make_one_dynamodb_call(platform: Platform, john: Isp) -> None:
    """DESIGN §10: a get (a device with all its interfaces) or a list page is one call."""
    device_id = device(john)
    for name in ("ge-0/0/1", "ge-0/0/2", "ge-0/0/3"):
        interface(john, device_id, name)
    number = service(john)
    circuit_id = circuit(john, services=[number])["id"]
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get(f"/devices/{device_id}")
    call = counting(john, isp_data)
    answer, got = call("GET", f"/devices/{device_id}")
    assert len(answer.attributes["interfaces"]) == 3
    assert got == {"dynamodb:Query": 1}
    for path in (
        "/devices",
        "/devices?status=UNKNOWN",
        "/devices?limit=1",
        f"/devices/{device_id}/status-history",
        "/circuits",
        f"/services/{number}/circuits",
    ):
        assert call("GET", path)[1] == {"dynamodb:Query": 1}, path
    for path in (f"/devices/{device_id}/interfaces/ge-0%2F0%2F2", f"/circuits/{circuit_id}"):
        assert call("GET", path)[1] == {"dynamodb:GetItem": 1}, path
    _, created = call("POST", "/devices", {**DEVICE, "name": "sw-9"})
    assert created == {
        "dynamodb:GetItem": 1,  # the plan-limit counter
        "dynamodb:TransactWriteItems": 1,
    }
    _, reported = call("POST", f"/devices/{device_id}/status-events", {"status": "UP"})
    assert reported == {"dynamodb:GetItem": 1, "dynamodb:PutItem": 1}  # the device, the audit
