"""IPAM through the gateway: VRFs, the prefix tree, usable-address rules, race-free
allocation (50 parallel requests in a /26), the threshold alert, Idempotency-Key replays,
releases (one address, or all of a cancelled service's), tenant isolation and permissions."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JOHN,
    MIKE,
    SARAH,
    TOM,
    Answer,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import admin_token, scan_keys, signup
from tests.integration.test_isp_customers import Isp

BASE = "/api/v1/isp/ipam"
ALERT_TEMPLATE = "isp.ipam.prefix_threshold"


class Ipam:
    """One user's IPAM calls."""

    def __init__(self, platform: Platform, token: str) -> None:
        self.platform = platform
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        return self.platform.call(method, BASE + path, self.token, body=body, headers=headers)

    def vrf(self, name: str) -> str:
        answer = self.call("POST", "/vrfs", {"name": name})
        assert answer.status == 201, answer.json
        return str(answer.json["data"]["id"])

    def prefix(self, vrf_id: str, prefix: str, **extra: Any) -> str:
        answer = self.call("POST", "/prefixes", {"vrf_id": vrf_id, "prefix": prefix, **extra})
        assert answer.status == 201, answer.json
        return str(answer.json["data"]["id"])

    def get_prefix(self, prefix_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/prefixes/{prefix_id}")
        assert answer.status == 200, answer.json
        return answer.attributes

    def allocate(
        self, prefix_id: str, count: int = 1, key: str | None = None, **extra: Any
    ) -> Answer:
        headers = {} if key is None else {"Idempotency-Key": key}
        body = {"count": count, **extra}
        return self.call("POST", f"/prefixes/{prefix_id}/available-ips", body, **headers)

    def allocated(self, prefix_id: str, count: int = 1, **extra: Any) -> list[str]:
        answer = self.allocate(prefix_id, count, **extra)
        assert answer.status == 201, answer.json
        return addresses(answer)


def addresses(answer: Answer) -> list[str]:
    return [item["attributes"]["address"] for item in answer.json["data"]]


def ipam_items(platform: Platform, tenant: str = ABC) -> list[tuple[str, str]]:
    return [k for k in scan_keys(platform, f"T#{tenant}#") if "IPAM" in k[0]]


@pytest.fixture
def john(platform: Platform) -> Ipam:
    return Ipam(platform, platform.token(JOHN))


# --- VRFs and the prefix tree ------------------------------------------------------------


def test_vrfs_and_the_prefix_tree(platform: Platform, john: Ipam) -> None:
    core = john.vrf("core")
    assert john.call("POST", "/vrfs", {"name": "Core"}).error_code == "VRF_NAME_TAKEN"
    customers = john.vrf("customers")
    listed = john.call("GET", "/vrfs")
    assert sorted(v["attributes"]["name"] for v in listed.json["data"]) == ["core", "customers"]
    assert john.call("GET", f"/vrfs/{core}").attributes["name"] == "core"

    slash16 = john.prefix(core, "10.0.0.0/16")
    slash24 = john.prefix(core, "10.0.1.0/24")
    assert john.get_prefix(slash24)["parent_id"] == slash16
    duplicate = john.call("POST", "/prefixes", {"vrf_id": core, "prefix": "10.0.1.0/24"})
    assert (duplicate.status, duplicate.error_code) == (409, "PREFIX_OVERLAP")
    # Unique per VRF, not globally.
    other = john.prefix(customers, "10.0.1.0/24")
    assert john.get_prefix(other)["parent_id"] is None

    # A prefix between two existing ones takes its place in the tree.
    slash20 = john.prefix(core, "10.0.0.0/20", description="site A")
    assert john.get_prefix(slash20)["parent_id"] == slash16
    assert john.get_prefix(slash24)["parent_id"] == slash20
    top = john.get_prefix(slash16)
    assert (top["kind"], top["child_prefixes"], top["covered"]) == ("container", 1, 4096)
    assert top["utilisation"] == 6.25  # 4096 of 65536 carved into children
    assert john.get_prefix(slash24)["kind"] == "leaf"
    # A supernet above everything: the old root becomes its child.
    slash8 = john.prefix(core, "10.0.0.0/8")
    assert john.get_prefix(slash16)["parent_id"] == slash8
    assert john.get_prefix(slash8)["parent_id"] is None

    in_core = john.call("GET", f"/prefixes?vrf_id={core}").json["data"]
    assert [p["attributes"]["prefix"] for p in in_core] == [
        "10.0.0.0/8",
        "10.0.0.0/16",
        "10.0.0.0/20",
        "10.0.1.0/24",
    ]
    assert len(john.call("GET", "/prefixes").json["data"]) == 5
    page = john.call("GET", "/prefixes?limit=2")
    assert len(page.json["data"]) == 2 and page.json["meta"]["next_cursor"]
    assert john.call("GET", f"/vrfs/{core}").attributes["prefixes"] == 4

    six = john.prefix(core, "2001:db8::/48")
    assert john.get_prefix(six)["family"] == 6
    assert john.get_prefix(john.prefix(core, "2001:db8:0:1::/64"))["parent_id"] == six

    not_empty = john.call("DELETE", f"/prefixes/{slash20}")
    assert (not_empty.status, not_empty.error_code) == (409, "PREFIX_NOT_EMPTY")
    assert john.call("DELETE", f"/prefixes/{slash24}").status == 204
    assert john.call("GET", f"/prefixes/{slash24}").status == 404
    after = john.get_prefix(slash20)
    assert (after["kind"], after["child_prefixes"], after["covered"]) == ("leaf", 0, 0)
    assert john.call("DELETE", f"/prefixes/{slash20}").status == 204
    assert john.get_prefix(slash16)["child_prefixes"] == 0
    # The deleted CIDR can be created again (its uniqueness item went with it).
    assert john.get_prefix(john.prefix(core, "10.0.1.0/24"))["parent_id"] == slash16

    patched = john.call("PATCH", f"/prefixes/{slash16}", {"alert_threshold": 90})
    assert patched.status == 200 and patched.attributes["alert_threshold"] == 90
    assert john.get_prefix(slash16)["alert_threshold"] == 90


def test_bad_input_is_a_400_and_writes_nothing(platform: Platform, john: Ipam) -> None:
    core = john.vrf("core")
    leaf = john.prefix(core, "192.0.2.0/28")
    before = ipam_items(platform)
    bad_prefixes: list[dict[str, Any]] = [
        {"vrf_id": core, "prefix": "192.0.2.1/28"},  # host bits set
        {"vrf_id": core, "prefix": "192.0.2.1"},
        {"vrf_id": core, "prefix": "banana"},
        {"vrf_id": core, "prefix": "10.0.0.0/24", "alert_threshold": 0},
        {"vrf_id": core, "prefix": "10.0.0.0/24", "is_pool": "yes"},
        {"vrf_id": "0123456789abcdef", "prefix": "10.0.0.0/24"},  # no such VRF
        {"prefix": "10.0.0.0/24"},
        {"vrf_id": core, "prefix": "10.0.0.0/24", "unknown": 1},
    ]
    for body in bad_prefixes:
        answer = john.call("POST", "/prefixes", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"], body
    for body in ({"count": 0}, {"count": 65}, {"count": "2"}, {}, {"count": 1, "x": 1}):
        answer = john.call("POST", f"/prefixes/{leaf}/available-ips", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
    not_json = platform.gateway.handle(
        "POST",
        f"{BASE}/prefixes/{leaf}/available-ips",
        {"Content-Type": "application/json", "Authorization": f"Bearer {john.token}"},
        b"{count: 1",
    )
    assert not_json[0] == 400
    assert john.allocate(leaf, 1, key="x" * 300).status == 400
    assert john.call("GET", f"/prefixes/{leaf}/available-ips?limit=0").status == 400
    assert john.call("GET", f"/vrfs/{core}/ip-addresses/not-an-ip").status == 400
    assert john.call("GET", "/ip-addresses?assigned_to=nope").status == 400
    assert john.call("GET", "/prefixes?vrf_id=a%23b").status == 400
    assert john.call("PATCH", f"/prefixes/{leaf}", {}).status == 400
    assert john.call("PATCH", f"/prefixes/{leaf}", {"alert_threshold": None}).status == 400
    assert john.call("POST", "/vrfs", {"name": "bad#name"}).status == 400
    assert ipam_items(platform) == before
    assert john.get_prefix(leaf)["allocated"] == 0
    for missing in ("/prefixes/0123456789abcdef", "/prefixes/nope", "/vrfs/0123456789abcdef"):
        assert john.call("GET", missing).status == 404, missing


# --- usable addresses, utilisation, the alert, releases ----------------------------------


def test_allocation_usable_rules_utilisation_alert_and_release(
    platform: Platform, john: Ipam
) -> None:
    core = john.vrf("core")
    platform.notifications(ALERT_TEMPLATE)  # whatever the seed queued
    leaf = john.prefix(core, "10.9.0.0/29", alert_threshold=50)  # 6 usable; alert at 3
    preview = john.call("GET", f"/prefixes/{leaf}/available-ips?limit=3")
    assert [a["id"] for a in preview.json["data"]] == ["10.9.0.1", "10.9.0.2", "10.9.0.3"]
    again = john.call("GET", f"/prefixes/{leaf}/available-ips?limit=3")
    assert again.json["data"] == preview.json["data"]  # a preview allocates nothing
    assert john.get_prefix(leaf)["allocated"] == 0

    first = john.allocate(leaf, 2, description="uplinks", assigned_to="device:r1")
    assert first.status == 201
    assert addresses(first) == ["10.9.0.1", "10.9.0.2"]
    assert first.json["data"][0]["attributes"]["assigned_to"] == "device:r1"
    view = john.get_prefix(leaf)
    assert (view["allocated"], view["usable"], view["free"]) == (2, 6, 4)
    assert view["utilisation"] == 33.33 and not view["above_threshold"]
    assert platform.notifications(ALERT_TEMPLATE) == []

    assert john.allocated(leaf, 2) == ["10.9.0.3", "10.9.0.4"]  # 2 -> 4 of 6: crosses 50 %
    sent = platform.notifications(ALERT_TEMPLATE)
    assert len(sent) == 1
    assert sent[0]["tenant_id"] == ABC and sent[0]["channel"] == "email"
    assert sent[0]["data"]["prefix_id"] == leaf
    assert (sent[0]["data"]["allocated"], sent[0]["data"]["threshold"]) == (4, 50)
    assert john.get_prefix(leaf)["last_alert_at"] is not None
    assert john.allocated(leaf, 1) == ["10.9.0.5"]
    assert platform.notifications(ALERT_TEMPLATE) == []  # already above: no second alert

    too_many = john.allocate(leaf, 2)
    assert (too_many.status, too_many.error_code) == (409, "PREFIX_EXHAUSTED")
    assert john.allocated(leaf, 1) == ["10.9.0.6"]
    assert john.allocate(leaf, 1).error_code == "PREFIX_EXHAUSTED"
    assert john.call("GET", f"/prefixes/{leaf}/available-ips").json["data"] == []
    full = john.get_prefix(leaf)
    assert (full["utilisation"], full["free"]) == (100.0, 0)

    got = john.call("GET", f"/vrfs/{core}/ip-addresses/10.9.0.3")
    assert got.status == 200 and got.attributes["prefix_id"] == leaf
    listed = john.call("GET", f"/prefixes/{leaf}/ip-addresses?limit=4")
    assert addresses(listed) == ["10.9.0.1", "10.9.0.2", "10.9.0.3", "10.9.0.4"]
    rest = john.call(
        "GET", f"/prefixes/{leaf}/ip-addresses?cursor={listed.json['meta']['next_cursor']}"
    )
    assert addresses(rest) == ["10.9.0.5", "10.9.0.6"]
    assert len(john.call("GET", f"/vrfs/{core}/ip-addresses").json["data"]) == 6
    assert addresses(john.call("GET", "/ip-addresses?assigned_to=device:r1")) == [
        "10.9.0.1",
        "10.9.0.2",
    ]

    # Release: DELETE, or POST .../release; back below the threshold, the next crossing alerts.
    assert john.call("DELETE", f"/vrfs/{core}/ip-addresses/10.9.0.1").status == 204
    assert john.call("GET", f"/vrfs/{core}/ip-addresses/10.9.0.1").status == 404
    assert john.call("DELETE", f"/vrfs/{core}/ip-addresses/10.9.0.1").status == 404
    for address in ("10.9.0.2", "10.9.0.3", "10.9.0.4"):
        released = john.call("POST", f"/vrfs/{core}/ip-addresses/{address}/release")
        assert released.status == 200 and released.attributes["status"] == "RELEASED"
    assert john.get_prefix(leaf)["allocated"] == 2
    assert john.allocated(leaf, 1) == ["10.9.0.1"]  # 2 -> 3: crosses again
    assert len(platform.notifications(ALERT_TEMPLATE)) == 1

    # /31 and /32 use every address; a pool uses network and broadcast too.
    p2p = john.prefix(core, "10.9.1.0/31")
    assert john.allocated(p2p, 2) == ["10.9.1.0", "10.9.1.1"]
    host = john.prefix(core, "10.9.1.7/32")
    assert john.allocated(host, 1) == ["10.9.1.7"]
    pool = john.prefix(core, "10.9.2.0/30", is_pool=True)
    assert john.allocated(pool, 4) == ["10.9.2.0", "10.9.2.1", "10.9.2.2", "10.9.2.3"]
    six = john.prefix(core, "2001:db8:9::/126")
    assert john.allocated(six, 3) == ["2001:db8:9::1", "2001:db8:9::2", "2001:db8:9::3"]
    got6 = john.call("GET", f"/vrfs/{core}/ip-addresses/2001:db8:9::2")
    assert got6.status == 200 and got6.attributes["prefix_id"] == six

    # Containers hold prefixes, leaves hold addresses, never both.
    container = john.prefix(core, "10.10.0.0/16")
    john.prefix(core, "10.10.1.0/24")
    refused = john.allocate(container, 1)
    assert (refused.status, refused.error_code) == (409, "PREFIX_IS_CONTAINER")
    inside_used = john.call("POST", "/prefixes", {"vrf_id": core, "prefix": "10.9.0.0/30"})
    assert (inside_used.status, inside_used.error_code) == (409, "PREFIX_HAS_ADDRESSES")
    busy = john.call("DELETE", f"/prefixes/{leaf}")
    assert (busy.status, busy.error_code) == (409, "PREFIX_NOT_EMPTY")


# --- concurrency -------------------------------------------------------------------------


def test_fifty_parallel_allocations_in_a_26_are_distinct_and_never_overshoot(
    platform: Platform, john: Ipam
) -> None:
    core = john.vrf("core")
    platform.notifications(ALERT_TEMPLATE)
    leaf = john.prefix(core, "100.64.0.0/26")  # 62 usable; the 80 % alert at 50
    usable = {str(a) for a in ipaddress.ip_network("100.64.0.0/26").hosts()}

    def race(count: int, requests: int) -> list[Answer]:
        start = Barrier(requests)

        def one(_: int) -> Answer:
            start.wait()
            return john.allocate(leaf, count)

        with ThreadPoolExecutor(requests) as pool:
            return list(pool.map(one, range(requests)))

    first = race(1, 50)
    assert [a.status for a in first] == [201] * 50, [a.json for a in first if a.status != 201]
    got = [address for answer in first for address in addresses(answer)]
    assert len(got) == len(set(got)) == 50 and set(got) <= usable
    assert john.get_prefix(leaf)["allocated"] == 50
    assert len(platform.notifications(ALERT_TEMPLATE)) == 1  # 49 -> 50 crossed 80 % exactly once

    second = race(5, 10)  # 12 left: two fit, eight are refused
    statuses = Counter(a.status for a in second)
    assert statuses == {201: 2, 409: 8}
    assert {a.error_code for a in second if a.status == 409} == {"PREFIX_EXHAUSTED"}
    got += [address for answer in second if answer.status == 201 for address in addresses(answer)]

    third = race(1, 5)  # 2 left
    assert Counter(a.status for a in third) == {201: 2, 409: 3}
    got += [address for answer in third if answer.status == 201 for address in addresses(answer)]
    assert sorted(got) == sorted(usable) and len(got) == 62
    assert john.get_prefix(leaf)["allocated"] == 62
    stored = john.call("GET", f"/prefixes/{leaf}/ip-addresses?limit=100")
    assert sorted(addresses(stored)) == sorted(usable)
    assert platform.notifications(ALERT_TEMPLATE) == []


def test_an_idempotency_key_replays_the_same_addresses(platform: Platform, john: Ipam) -> None:
    core = john.vrf("core")
    leaf = john.prefix(core, "198.51.100.0/24")
    key = uuid.uuid4().hex
    first = john.allocate(leaf, 3, key=key, assigned_to="cpe:7")
    assert first.status == 201 and first.header("Idempotent-Replayed") is None
    again = john.allocate(leaf, 3, key=key, assigned_to="cpe:7")
    assert again.status == 201 and again.header("Idempotent-Replayed") == "true"
    assert addresses(again) == addresses(first) == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert john.get_prefix(leaf)["allocated"] == 3
    reused = john.allocate(leaf, 4, key=key, assigned_to="cpe:7")
    assert (reused.status, reused.error_code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert john.allocated(leaf, 1) == ["198.51.100.4"]  # no key: a new allocation

    # Parallel retries of one request allocate once and all answer the same addresses.
    racing_key = uuid.uuid4().hex
    start = Barrier(8)

    def retry(_: int) -> Answer:
        start.wait()
        return john.allocate(leaf, 2, key=racing_key)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(retry, range(8)))
    assert {a.status for a in answers} == {201}
    assert {tuple(addresses(a)) for a in answers} == {("198.51.100.5", "198.51.100.6")}
    assert john.get_prefix(leaf)["allocated"] == 6

    # Keys are scoped per tenant: another tenant's same key is its own request.
    other = signup(platform, "fibre-co", apps=["isp"])
    assert other["status"] == "ACTIVE"
    theirs = Ipam(platform, admin_token(platform, "fibre-co"))
    their_leaf = theirs.prefix(theirs.vrf("core"), "198.51.100.0/24")
    mine = theirs.allocate(their_leaf, 3, key=key, assigned_to="cpe:7")
    assert mine.status == 201 and mine.header("Idempotent-Replayed") is None
    assert addresses(mine) == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]


# --- isolation and permissions -----------------------------------------------------------


def test_tenants_and_roles_reach_only_their_own_ipam(platform: Platform, john: Ipam) -> None:
    core = john.vrf("core")
    leaf = john.prefix(core, "10.20.0.0/24")
    john.allocated(leaf, 2)
    before = ipam_items(platform)

    platform.add_tenant("globex", users=((GLOBEX_USER, GLOBEX_PASSWORD, ("tenant_admin",)),))
    globex = Ipam(platform, platform.token(GLOBEX_USER, "globex", password=GLOBEX_PASSWORD))
    for method, path, body in [
        ("GET", f"/prefixes/{leaf}", None),
        ("GET", f"/prefixes/{leaf}/available-ips", None),
        ("POST", f"/prefixes/{leaf}/available-ips", {"count": 1}),
        ("GET", f"/prefixes/{leaf}/ip-addresses", None),
        ("PATCH", f"/prefixes/{leaf}", {"alert_threshold": 50}),
        ("DELETE", f"/prefixes/{leaf}", None),
        ("GET", f"/vrfs/{core}", None),
        ("GET", f"/vrfs/{core}/ip-addresses", None),
        ("GET", f"/vrfs/{core}/ip-addresses/10.20.0.1", None),
        ("DELETE", f"/vrfs/{core}/ip-addresses/10.20.0.1", None),
        ("POST", f"/vrfs/{core}/ip-addresses/10.20.0.2/release", None),
    ]:
        answer = globex.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    assert globex.call("GET", "/prefixes").json["data"] == []
    foreign = globex.call("POST", "/prefixes", {"vrf_id": core, "prefix": "10.20.0.0/24"})
    assert foreign.status == 400  # A's VRF id means nothing in B
    assert ipam_items(platform) == before

    # Subscription and permissions: isp:ipam:read / isp:ipam:write.
    platform.add_tenant(
        "crm-only",
        apps=frozenset({"crm"}),
        users=(("boss@crm-only.example", "Crm-only-2026!", ("tenant_admin",)),),
    )
    crm_only = platform.token("boss@crm-only.example", "crm-only", password="Crm-only-2026!")
    refused = platform.call("GET", f"{BASE}/prefixes", crm_only)
    assert (refused.status, refused.error_code) == (403, "APP_NOT_SUBSCRIBED")
    for user in (MIKE, TOM):  # CRM/commerce only; ISP technician (work orders only)
        answer = platform.call("GET", f"{BASE}/prefixes/{leaf}", platform.token(user))
        assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), user
    sarah = Ipam(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    assert sarah.get_prefix(leaf)["allocated"] == 2
    assert sarah.allocated(leaf, 1) == ["10.20.0.3"]
    assert platform.call("GET", f"{BASE}/prefixes").status == 401


# --- releasing a cancelled service's addresses -------------------------------------------


def test_release_for_service(platform: Platform, john: Ipam) -> None:
    from dotmac.core.tenancy import TenantContext
    from dotmac.isp import ipam

    isp = Isp(platform, john.token)
    customer, plan = isp.customer(), isp.plan()
    one, two = (
        isp.created("/services", {"customer_id": customer, "plan_id": plan})["id"] for _ in "12"
    )
    core, customers = john.vrf("core"), john.vrf("customers")
    mgmt = john.prefix(core, "10.30.0.0/24")
    public = john.prefix(customers, "203.0.113.0/24")
    mine = john.allocated(mgmt, 2, assigned_to=f"service:{one}")
    mine += john.allocated(public, 1, assigned_to=f"service:{one}")
    theirs = john.allocated(public, 1, assigned_to=f"service:{two}")
    listed = john.call("GET", f"/ip-addresses?assigned_to=service:{one}")
    assert sorted(addresses(listed)) == sorted(mine)

    ctx = TenantContext(ABC, "services-worker", request_id="cancel-svc-1")
    released = ipam.release_for_service(ctx, one)
    assert sorted(i.address for i in released) == sorted(mine)
    assert john.get_prefix(mgmt)["allocated"] == 0
    assert john.get_prefix(public)["allocated"] == 1
    assert john.call("GET", f"/ip-addresses?assigned_to=service:{one}").json["data"] == []
    assert addresses(john.call("GET", f"/ip-addresses?assigned_to=service:{two}")) == theirs
    assert ipam.release_for_service(ctx, one) == []  # again: nothing left, nothing done
    trail = [r for r in platform.audit_records() if r.get("request_id") == "cancel-svc-1"]
    assert [(r["action"], r["resource_id"]) for r in trail] == [("isp.ip_address.release", one)]
    assert john.allocated(mgmt, 1) == ["10.30.0.1"]  # released addresses are free again


# --- DynamoDB calls per request ----------------------------------------------------------


def test_reads_make_one_dynamodb_call_and_an_allocation_three(
    platform: Platform, john: Ipam
) -> None:
    """DESIGN §10: a get or a list page is one call. Counted at the botocore client: the
    calls that touch IPAM keys (not the authorizer's caches or the API meters' leases)."""
    core = john.vrf("core")
    leaf = john.prefix(core, "10.40.0.0/24")
    john.allocated(leaf, 2, assigned_to="cpe:9")
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get_prefix(leaf)

    def calls(method: str, path: str, body: Any = None) -> Counter[str]:
        import botocore.client

        counted: Counter[str] = Counter()
        original = botocore.client.BaseClient._make_api_call

        def counting(client: Any, operation: str, params: Any) -> Any:
            if "IPAM" in json.dumps(params, default=str):
                counted[f"{client.meta.service_model.service_name}:{operation}"] += 1
            return original(client, operation, params)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
            answer = john.call(method, path, body)
        assert answer.status < 300, answer.json
        return counted

    for path in (
        "/vrfs",
        f"/vrfs/{core}",
        "/prefixes",
        f"/prefixes?vrf_id={core}",
        f"/prefixes/{leaf}",
        f"/prefixes/{leaf}/ip-addresses",
        f"/vrfs/{core}/ip-addresses",
        f"/vrfs/{core}/ip-addresses/10.40.0.1",
        "/ip-addresses?assigned_to=cpe:9",
    ):
        assert sum(calls("GET", path).values()) == 1, path
    assert calls("GET", f"/prefixes/{leaf}/available-ips") == {
        "dynamodb:GetItem": 1,
        "dynamodb:Query": 1,
    }
    assert calls("POST", f"/prefixes/{leaf}/available-ips", {"count": 10}) == {
        "dynamodb:GetItem": 1,
        "dynamodb:Query": 1,
        "dynamodb:TransactWriteItems": 1,
    }
    assert calls("DELETE", f"/vrfs/{core}/ip-addresses/10.40.0.1") == {
        "dynamodb:GetItem": 1,
        "dynamodb:BatchGetItem": 1,  # its prefix: the counter's guard (threshold crossing)
        "dynamodb:TransactWriteItems": 1,
    }
