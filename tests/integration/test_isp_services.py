"""ISP service plans and services through the gateway: plan CRUD against the plan limit, the
service state machine with recorded transitions, numbering, prorated plan changes (preview,
then apply), IPAM release on cancel, bad input, tenant isolation, permissions and DynamoDB
calls per read."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

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
from tests.integration.isp_activation import activated, address_pool, start_activation
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.test_isp_customers import (
    Isp,
    counting,
    isp_data,
    items,
    used,
)


class Clock:
    """The services module's clock, set by the test (UTC)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from dotmac.isp import services

        self.now = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
        monkeypatch.setattr(services, "_now", lambda: self.now)

    def set(self, year: int, month: int, day: int) -> None:
        self.now = datetime(year, month, day, 9, 30, tzinfo=UTC)


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def new_service(john: Isp, customer: str, plan: str) -> dict[str, Any]:
    return john.created("/services", {"customer_id": customer, "plan_id": plan})


def plan_services(john: Isp, plan: str) -> int:
    return int(john.get(f"/service-plans/{plan}")["services"])


# --- service plans -------------------------------------------------------------------------


def test_plans_count_against_the_limit_and_delete_only_when_unused(
    platform: Platform, john: Isp
) -> None:
    counted = used(platform, "service_plans")
    created = john.created(
        "/service-plans",
        {
            "name": "Fibre 100",
            "price": "29.99",
            "download_mbps": 100,
            "upload_mbps": 20,
            "billing_cycle": "monthly",
            "description": "home fibre",
        },
    )
    plan = created["id"]
    assert used(platform, "service_plans") == counted + 1
    assert created["price"] == {"amount": "29.99", "currency": "USD"}
    assert (created["service_type"], created["billing_cycle"], created["services"]) == (
        "internet",
        "monthly",
        0,
    )
    yen = john.created("/service-plans", {"name": "TV", "price": "5000", "currency": "JPY"})
    assert yen["price"] == {"amount": "5000", "currency": "JPY"}
    assert [p["id"] for p in john.call("GET", "/service-plans").json["data"]] == sorted(
        [plan, yen["id"]]
    )
    assert john.get(f"/service-plans/{plan}")["name"] == "Fibre 100"

    customer = john.customer()
    service = new_service(john, customer, plan)
    patched = john.call("PATCH", f"/service-plans/{plan}", {"price": "34.50", "download_mbps": 200})
    assert patched.status == 200, patched.json
    assert patched.attributes["price"]["amount"] == "34.50"
    assert patched.attributes["download_mbps"] == 200
    # The service keeps the price it was sold at.
    assert john.get(f"/services/{service['id']}")["price"]["amount"] == "29.99"
    assert new_service(john, customer, plan)["price"]["amount"] == "34.50"

    in_use = john.call("DELETE", f"/service-plans/{plan}")
    assert (in_use.status, in_use.error_code) == (409, "PLAN_IN_USE")
    assert plan_services(john, plan) == 2
    for number in [s["id"] for s in john.call("GET", "/services").json["data"]]:
        assert john.act(f"/services/{number}/cancel", "test over").status == 200
    assert plan_services(john, plan) == 0
    counted = used(platform, "service_plans")
    assert john.call("DELETE", f"/service-plans/{plan}").status == 204
    assert used(platform, "service_plans") == counted - 1
    assert john.call("GET", f"/service-plans/{plan}").status == 404
    assert john.call("DELETE", f"/service-plans/{plan}").status == 404
    assert used(platform, "service_plans") == counted - 1

    # Over the limit after the grace period: 403, nothing written, the counter unchanged.
    client, table = platform.cloud.client("dynamodb"), platform.cloud.created.table
    client.update_item(
        TableName=table,
        Key={"PK": {"S": f"T#{ABC}#USAGE"}, "SK": {"S": "service_plans"}},
        UpdateExpression="SET #count = :n, exceeded_at = :t",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={
            ":n": {"N": "25"},  # professional: 25 plans
            ":t": {"N": str(int(datetime.now(UTC).timestamp()) - 25 * 3600)},
        },
    )
    before = items(platform)
    refused = john.call("POST", "/service-plans", {"name": "One too many", "price": "1.00"})
    assert (refused.status, refused.error_code) == (403, "PLAN_LIMIT_EXCEEDED")
    assert items(platform) == before and used(platform, "service_plans") == 25
    # Deleting one brings usage back under the limit (and ends the grace clock).
    assert john.call("DELETE", f"/service-plans/{yen['id']}").status == 204
    assert used(platform, "service_plans") == 24
    assert john.call("POST", "/service-plans", {"name": "Fits", "price": "1.00"}).status == 201


def test_bad_plan_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    plan = john.plan()
    before, counted = items(platform), used(platform, "service_plans")
    for body in [
        {"name": "X", "price": 30.0},  # a float
        {"name": "X", "price": "30.001"},
        {"name": "X", "price": "-1.00"},
        {"name": "X", "price": "1.5", "currency": "JPY"},
        {"name": "X", "price": "1.00", "currency": "usd"},
        {"name": "X", "price": "1.00", "billing_cycle": "weekly"},
        {"name": "X", "price": "1.00", "service_type": "satellite"},
        {"name": "X", "price": "1.00", "download_mbps": 0},
        {"name": "", "price": "1.00"},
        {"price": "1.00"},
        {"name": "X", "price": "1.00", "services": 3},
    ]:
        answer = john.call("POST", "/service-plans", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
    for patch in (
        {},
        {"price": None},
        {"price": "1.001"},
        {"currency": "EUR"},
        {"billing_cycle": "annual"},
    ):
        assert john.call("PATCH", f"/service-plans/{plan}", patch).status == 400, patch
    assert items(platform) == before and used(platform, "service_plans") == counted
    for missing in ("/service-plans/0123456789abcdef", "/service-plans/nope"):
        assert john.call("GET", missing).status == 404
        assert john.call("PATCH", missing, {"name": "Y"}).status == 404
        assert john.call("DELETE", missing).status == 404


# --- services --------------------------------------------------------------------------------


def test_service_lifecycle_numbering_and_history(
    platform: Platform, john: Isp, clock: Clock
) -> None:
    customer, plan = john.customer(), john.plan()
    created = new_service(john, customer, plan)
    number = created["id"]
    assert re.fullmatch(r"INT-20260401-[0-9a-f]{6}", number)
    assert (created["status"], created["customer_id"], created["plan_id"]) == (
        "PENDING",
        customer,
        plan,
    )
    assert created["price"] == {"amount": "30.00", "currency": "USD"}
    assert (created["download_mbps"], created["started_on"]) == (100, None)
    assert plan_services(john, plan) == 1
    phone_plan = john.plan("Voice", "5.00", service_type="phone")
    assert new_service(john, customer, phone_plan)["id"].startswith("PHN-20260401-")
    tv = john.plan("TV", "9.00", service_type="tv")
    assert new_service(john, customer, tv)["id"].startswith("TV-20260401-")
    bundle = john.plan("Bundle", "59.00", service_type="bundle")
    assert new_service(john, customer, bundle)["id"].startswith("BDL-20260401-")

    # Activation runs through the workflow (test_isp_provisioning); the rest are actions.
    pool = address_pool(john)
    assert activated(john, number, "installed", prefix_id=pool)["status"] == "SUCCEEDED"
    assert start_activation(john, number, pool).error_code == "INVALID_STATE"
    assert john.act(f"/services/{number}/resume").error_code == "INVALID_STATE"
    steps = [
        ("activate", "installed", "ACTIVE"),
        ("suspend", "unpaid", "SUSPENDED"),
        ("resume", "paid", "ACTIVE"),
        ("maintenance", "fibre splice", "MAINTENANCE"),
        ("resume", "splice done", "ACTIVE"),
        ("cancel", "moving abroad", "CANCELLED"),
    ]
    for action, reason, status in steps[1:]:
        answer = john.act(f"/services/{number}/{action}", reason)
        assert answer.status == 200, (action, answer.json)
        assert answer.attributes["status"] == status
        if action == "maintenance":
            for wrong in ("cancel", "suspend", "maintenance"):
                refused = john.act(f"/services/{number}/{wrong}")
                assert (refused.status, refused.error_code) == (409, "INVALID_STATE"), wrong
            assert start_activation(john, number, pool).error_code == "INVALID_STATE"
    for action in ("suspend", "resume", "maintenance", "cancel"):
        refused = john.act(f"/services/{number}/{action}")  # CANCELLED is terminal
        assert (refused.status, refused.error_code) == (409, "INVALID_STATE"), action
    refused = start_activation(john, number, pool)
    assert (refused.status, refused.error_code) == (409, "INVALID_STATE")

    view = john.get(f"/services/{number}")
    assert (view["started_on"], view["plan_since"]) == ("2026-04-01", "2026-04-01")
    assert view["cancelled_at"] is not None
    john_id = platform.user_id(JOHN)
    assert [(h["action"], h["from"], h["to"], h["reason"], h["by"]) for h in view["history"]] == [
        ("create", None, "PENDING", "created", john_id),
        *[
            (action, before, after, reason, john_id)
            for (action, reason, after), before in zip(
                steps,
                ["PENDING", "ACTIVE", "SUSPENDED", "ACTIVE", "MAINTENANCE", "ACTIVE"],
                strict=True,
            )
        ],
    ]
    assert plan_services(john, plan) == 0  # the cancelled service no longer holds the plan
    trail = Counter(r["action"] for r in platform.audit_records() if r["resource_id"] == number)
    assert trail["isp.service.create"] == 1 and trail["isp.service.resume"] == 2
    assert trail["isp.service.cancel"] == 1

    # A PENDING service can be cancelled; lists, all and per customer (an index).
    other_customer = john.customer(email="b@example.net")
    pending = new_service(john, other_customer, plan)["id"]
    assert john.act(f"/services/{pending}/cancel", "changed mind").attributes["status"] == (
        "CANCELLED"
    )
    everything = [s["id"] for s in john.call("GET", "/services").json["data"]]
    assert len(everything) == 5 and number in everything
    assert everything == sorted(everything)  # by creation time (frozen here), then number
    assert [
        s["id"] for s in john.call("GET", f"/services?customer={other_customer}").json["data"]
    ] == [pending]
    page = john.call("GET", f"/services?customer={customer}&limit=2")
    assert len(page.json["data"]) == 2 and page.json["meta"]["next_cursor"]

    # Only NEW or ACTIVE customers get new services.
    assert john.act(f"/customers/{other_customer}/deactivate", "gone").status == 200
    refused = john.call("POST", "/services", {"customer_id": other_customer, "plan_id": plan})
    assert (refused.status, refused.error_code) == (409, "CUSTOMER_NOT_ACTIVE")


def test_a_plan_change_is_previewed_then_applied_prorated(
    platform: Platform, john: Isp, clock: Clock
) -> None:
    customer = john.customer(billing_day=1)
    basic, fast = john.plan("Basic", "30.00"), john.plan("Fast", "60.00")
    annual = john.plan("Yearly", "365.00", billing_cycle="annual")
    phone = john.plan("Voice", "5.00", service_type="phone")
    euro = john.plan("Euro", "10.00", currency="EUR")
    number = new_service(john, customer, basic)["id"]

    # PENDING: not billed yet, the change is free.
    preview = john.call("POST", f"/services/{number}/plan-change/preview", {"plan_id": annual})
    assert preview.status == 200, preview.json
    assert preview.attributes["net"] == {"amount": "0.00", "currency": "USD"}
    activated(john, number)  # 2026-04-01

    clock.set(2026, 4, 11)  # 20 of April's 30 days left
    before = items(platform)
    preview = john.call("POST", f"/services/{number}/plan-change/preview", {"plan_id": fast})
    assert preview.status == 200, preview.json
    quote = preview.attributes
    assert quote["from_plan"]["price"] == {"amount": "30.00", "currency": "USD"}
    assert quote["to_plan"]["id"] == fast
    assert quote["cycle"] == {
        "start": "2026-04-01",
        "end": "2026-05-01",
        "days": 30,
        "remaining_days": 20,
    }
    assert (quote["credit"]["amount"], quote["charge"]["amount"], quote["net"]["amount"]) == (
        "20.00",
        "40.00",
        "20.00",
    )
    assert items(platform) == before  # a preview writes nothing

    to_annual = john.call(
        "POST",
        f"/services/{number}/plan-change/preview",
        {"plan_id": annual, "effective": "2026-04-21"},
    ).attributes
    assert to_annual["credit"]["amount"] == "10.00"  # 10 of 30 days
    assert to_annual["new_cycle"]["start"] == "2026-04-01"
    assert to_annual["new_cycle"]["end"] == "2027-04-01"
    assert to_annual["charge"]["amount"] == "345.00"  # 345 of 365 days

    for body, field in [
        ({"plan_id": basic}, "plan_id"),  # already on it
        ({"plan_id": phone}, "plan_id"),  # another service type
        ({"plan_id": euro}, "plan_id"),  # another currency
        ({"plan_id": "0123456789abcdef"}, "plan_id"),
        ({"plan_id": fast, "effective": "2026-03-31"}, "effective"),  # before the plan began
        ({"plan_id": fast, "effective": "2026-05-01"}, "effective"),  # next cycle
        ({"plan_id": fast, "effective": "someday"}, "effective"),
        ({"plan_id": fast, "x": 1}, "x"),
    ]:
        for path in ("plan-change/preview", "plan-change"):
            answer = john.call("POST", f"/services/{number}/{path}", body)
            assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
            assert answer.json["error"]["details"][0]["field"] == field, body
    assert items(platform) == before

    applied = john.call(
        "POST", f"/services/{number}/plan-change", {"plan_id": fast, "reason": "wants speed"}
    )
    assert applied.status == 200, applied.json
    service = applied.attributes
    change = service["plan_change"]
    assert {k: change[k] for k in ("credit", "charge", "net", "cycle", "effective")} == {
        k: quote[k] for k in ("credit", "charge", "net", "cycle", "effective")
    }
    assert (service["plan_id"], service["plan_name"], service["price"]["amount"]) == (
        fast,
        "Fast",
        "60.00",
    )
    assert (service["status"], service["plan_since"]) == ("ACTIVE", "2026-04-11")
    last = service["history"][-1]
    assert (last["action"], last["from"], last["to"], last["reason"]) == (
        "plan_change",
        "ACTIVE",
        "ACTIVE",
        "wants speed",
    )
    assert last["details"]["credit"] == {"amount": "20.00", "currency": "USD"}
    assert last["details"]["from_plan"]["id"] == basic
    assert (plan_services(john, basic), plan_services(john, fast)) == (0, 1)

    # Back-dating before the current plan began is refused; later in the cycle is fine.
    clock.set(2026, 4, 25)
    back = john.call(
        "POST",
        f"/services/{number}/plan-change/preview",
        {"plan_id": basic, "effective": "2026-04-10"},
    )
    assert back.status == 400
    down = john.call("POST", f"/services/{number}/plan-change/preview", {"plan_id": basic})
    assert down.attributes["net"]["amount"] == "-6.00"  # 6 of 30 days: -12.00 + 6.00
    # A cancelled service cannot change plan.
    assert john.act(f"/services/{number}/cancel", "bye").status == 200
    refused = john.call("POST", f"/services/{number}/plan-change", {"plan_id": basic})
    assert (refused.status, refused.error_code) == (409, "INVALID_STATE")
    assert plan_services(john, fast) == 0


def test_an_address_assigned_to_a_service_needs_that_service(john: Isp) -> None:
    """`service:<number>` must name one of the tenant's services (400, nothing allocated);
    other kinds label things outside the platform."""
    vrf = john.created("/ipam/vrfs", {"name": "customers"})["id"]
    prefix = john.created("/ipam/prefixes", {"vrf_id": vrf, "prefix": "100.64.0.0/29"})["id"]
    path = f"/ipam/prefixes/{prefix}/available-ips"
    refused = john.call("POST", path, {"count": 1, "assigned_to": "service:INT-20260101-000000"})
    assert (refused.status, refused.error_code) == (400, "VALIDATION_ERROR"), refused.json
    assert refused.json["error"]["details"] == [
        {"field": "assigned_to", "message": "no such service"}
    ]
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 0
    number = new_service(john, john.customer(), john.plan())["id"]
    assert john.call("POST", path, {"count": 1, "assigned_to": f"service:{number}"}).status == 201


def test_cancelling_releases_the_services_addresses(platform: Platform, john: Isp) -> None:
    number = new_service(john, john.customer(), john.plan())["id"]
    vrf = john.created("/ipam/vrfs", {"name": "customers"})["id"]
    prefix = john.created("/ipam/prefixes", {"vrf_id": vrf, "prefix": "100.64.0.0/29"})["id"]
    mine = john.call(
        "POST",
        f"/ipam/prefixes/{prefix}/available-ips",
        {"count": 2, "assigned_to": f"service:{number}"},
    )
    assert mine.status == 201, mine.json
    other = john.call(
        "POST", f"/ipam/prefixes/{prefix}/available-ips", {"count": 1, "assigned_to": "device:r1"}
    )
    assert other.status == 201
    assert activated(john, number, prefix_id=prefix)["addresses"] == ["100.64.0.4"]
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 4
    assert john.act(f"/services/{number}/cancel", "contract ended").status == 200
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 1
    held = john.call("GET", f"/ipam/ip-addresses?assigned_to=service:{number}")
    assert held.json["data"] == []
    kept = john.call("GET", "/ipam/ip-addresses?assigned_to=device:r1").json["data"]
    assert [a["id"] for a in kept] == ["100.64.0.3"]
    released = [
        r
        for r in platform.audit_records()
        if r["action"] == "isp.ip_address.release" and r["resource_id"] == number
    ]
    assert len(released) == 1


def test_bad_service_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    customer, plan = john.customer(), john.plan()
    number = new_service(john, customer, plan)["id"]
    before = items(platform)
    for body, field in [
        ({"customer_id": "0123456789abcdef", "plan_id": plan}, "customer_id"),
        ({"customer_id": customer, "plan_id": "0123456789abcdef"}, "plan_id"),
        ({"customer_id": "nope", "plan_id": plan}, "customer_id"),
        ({"plan_id": plan}, "customer_id"),
        ({"customer_id": customer, "plan_id": plan, "status": "ACTIVE"}, "status"),
    ]:
        answer = john.call("POST", "/services", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"][0]["field"] == field, body
    for action in ("suspend", "cancel"):
        for body in ({}, {"reason": " "}, {"reason": "x" * 501}):
            assert john.call("POST", f"/services/{number}/{action}", body).status == 400
    assert john.call("GET", "/services?customer=a%23b").status == 400
    assert john.call("GET", "/services?limit=500").status == 400
    for missing in ("/services/INT-20260101-000000", "/services/nope", "/services/int-1"):
        assert john.call("GET", missing).status == 404, missing
        activation = {"prefix_id": "0123456789abcdef"}
        assert john.call("POST", f"{missing}/activation", activation).status == 404, missing
        assert john.call("POST", f"{missing}/plan-change", {"plan_id": plan}).status == 404
    assert items(platform) == before
    assert john.get(f"/services/{number}")["status"] == "PENDING"
    assert plan_services(john, plan) == 1


# --- isolation, roles, calls -----------------------------------------------------------------


def test_tenants_and_roles_reach_only_their_own_plans_and_services(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    customer, plan = john.customer(), john.plan()
    number = new_service(john, customer, plan)["id"]
    before = items(platform)
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    reason = {"reason": "x"}
    for method, path, body in [
        ("GET", f"/service-plans/{plan}", None),
        ("PATCH", f"/service-plans/{plan}", {"price": "1.00"}),
        ("DELETE", f"/service-plans/{plan}", None),
        ("GET", f"/services/{number}", None),
        ("POST", f"/services/{number}/activation", {"prefix_id": "0123456789abcdef"}),
        *[("POST", f"/services/{number}/{a}", reason) for a in ("suspend", "cancel")],
        *[("POST", f"/services/{number}/{a}", reason) for a in ("resume", "maintenance")],
        ("POST", f"/services/{number}/plan-change/preview", {"plan_id": plan}),
        ("POST", f"/services/{number}/plan-change", {"plan_id": plan}),
    ]:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    for path in ("/services", f"/services?customer={customer}", "/service-plans"):
        assert theirs.call("GET", path).json["data"] == [], path
    foreign = theirs.call("POST", "/services", {"customer_id": customer, "plan_id": plan})
    assert foreign.status == 400  # A's ids mean nothing in B
    assert items(platform) == before

    for user in (TOM, JANE):  # technician (work orders only), portal customer
        client = Isp(platform, platform.token(user))
        for method, path, body in [
            ("GET", "/service-plans", None),
            ("POST", "/service-plans", {"name": "X", "price": "1.00"}),
            ("GET", "/services", None),
            ("GET", f"/services/{number}", None),
            ("POST", f"/services/{number}/activation", {"prefix_id": "0123456789abcdef"}),
            ("POST", f"/services/{number}/plan-change/preview", {"plan_id": plan}),
        ]:
            answer = client.call(method, path, body)
            assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (user, path)
    sarah = Isp(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    assert activated(sarah, number)["started_by"] == platform.user_id(SARAH)
    assert sarah.get(f"/service-plans/{plan}")["services"] == 1


def test_reads_make_one_dynamodb_call(platform: Platform, john: Isp) -> None:
    """DESIGN §10: a get (with its history) or a list page is one DynamoDB call."""
    customer, plan, fast = john.customer(), john.plan(), john.plan("Fast", "60.00")
    number = new_service(john, customer, plan)["id"]
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get(f"/services/{number}")
    call = counting(john, isp_data)
    for path in (
        "/service-plans",
        f"/service-plans/{plan}",
        "/services",
        f"/services?customer={customer}",
        f"/services/{number}",
    ):
        assert sum(call("GET", path)[1].values()) == 1, path
    _, preview = call("POST", f"/services/{number}/plan-change/preview", {"plan_id": fast})
    assert preview == {
        "dynamodb:GetItem": 1,
        "dynamodb:TransactGetItems": 1,
        "dynamodb:PutItem": 1,  # the audit record of the quote
    }
    _, created = call("POST", "/services", {"customer_id": customer, "plan_id": plan})
    assert created == {"dynamodb:TransactGetItems": 1, "dynamodb:TransactWriteItems": 1}
    activated(john, number)  # the workflow's calls are test_isp_provisioning's
    _, moved = call("POST", f"/services/{number}/suspend", {"reason": "unpaid"})
    assert moved == {
        "dynamodb:GetItem": 2,  # the service; the network state (the adapter's push)
        "dynamodb:TransactWriteItems": 2,  # the transition; the push
        "dynamodb:Query": 1,
    }
    _, changed = call("POST", f"/services/{number}/plan-change", {"plan_id": fast})
    assert changed == {
        "dynamodb:GetItem": 1,
        "dynamodb:TransactGetItems": 1,
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:Query": 1,
    }
    _, cancelled = call("POST", f"/services/{number}/cancel", {"reason": "bye"})
    assert cancelled == {
        "dynamodb:GetItem": 2,  # the service; the network state
        "dynamodb:TransactWriteItems": 3,  # the transition; the removal; the address released
        "dynamodb:Query": 2,  # the service after the commit, then the IPAM release's lookup
        "dynamodb:BatchGetItem": 1,  # the released addresses' prefixes
    }


def test_parallel_transitions_apply_once(platform: Platform, john: Isp) -> None:
    """Eight parallel cancels of one service: one wins, the others see CANCELLED (409), and
    the plan's counter moves once."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    plan = john.plan()
    number = new_service(john, john.customer(), plan)["id"]
    activated(john, number)
    start = Barrier(8)

    def cancel(index: int) -> int:
        start.wait()
        return john.act(f"/services/{number}/cancel", f"attempt {index}").status

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(cancel, range(8)))
    assert statuses == {200: 1, 409: 7}
    history = john.get(f"/services/{number}")["history"]
    assert [h["action"] for h in history] == ["create", "activate", "cancel"]
    assert plan_services(john, plan) == 0
