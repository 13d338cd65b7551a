"""The ISP admin dashboard through the gateway: after customers, services, plan changes,
tickets and IP addresses moved, every figure equals a recount from the list endpoints; a
refused write moves no figure; billing's receivables and a customer transition staged in
billing's own unit of work; one DynamoDB call per read; tenant isolation and roles."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
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
    MIKE,
    SARAH,
    TOM,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.test_isp_customers import Isp, counting, isp_data, items
from tests.integration.test_isp_tickets import Clock

MONTHS = {"monthly": 1, "quarterly": 3, "annual": 12}
MINOR_UNIT = {"USD": Decimal("0.01"), "JPY": Decimal("1"), "EUR": Decimal("0.01")}
STATES = ("NEW", "ACTIVE", "BLOCKED", "INACTIVE")


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def dashboard(client: Isp) -> dict[str, Any]:
    answer = client.call("GET", "/dashboard")
    assert answer.status == 200, answer.json
    assert answer.json["data"]["type"] == "isp_dashboard"
    return answer.attributes


def listed(client: Isp, path: str) -> list[dict[str, Any]]:
    """Every item of a list (the test's data fits one page of 200)."""
    answer = client.call("GET", f"{path}{'&' if '?' in path else '?'}limit=200")
    assert answer.status == 200, answer.json
    assert answer.json["meta"]["next_cursor"] is None
    return [item["attributes"] for item in answer.json["data"]]


def per_month(price: dict[str, str], cycle: str) -> Decimal:
    exact = Decimal(price["amount"]) / MONTHS[cycle]
    return exact.quantize(MINOR_UNIT[price["currency"]], rounding=ROUND_HALF_UP)


def recount(client: Isp) -> dict[str, Any]:
    """The dashboard's figures, counted from the list endpoints."""
    by_status = {status: len(listed(client, f"/customers?status={status}")) for status in STATES}
    mrr: dict[str, Decimal] = {}
    active: Counter[str] = Counter()
    for service in listed(client, "/services"):
        if service["status"] == "ACTIVE":
            currency = service["price"]["currency"]
            share = per_month(service["price"], service["billing_cycle"])
            mrr[currency] = mrr.get(currency, Decimal(0)) + share
            active[currency] += 1
    open_tickets = listed(client, "/tickets?status=OPEN") + listed(
        client, "/tickets?status=IN_PROGRESS"
    )
    breached = [
        t
        for t in open_tickets
        if t["sla"]["first_response_breached"] or t["sla"]["resolution_breached"]
    ]
    assert sorted(t["number"] for t in breached) == sorted(
        t["number"] for t in listed(client, "/tickets?sla=breached")
    )
    families = []
    leaves = [p for p in listed(client, "/ipam/prefixes") if p["kind"] == "leaf"]
    for family in (4, 6):
        mine = [p for p in leaves if p["family"] == family]
        usable = sum(p["usable"] for p in mine)
        assigned = sum(p["allocated"] for p in mine)
        families.append(
            {
                "family": family,
                "prefixes": len(mine),
                "usable": usable,
                "assigned": assigned,
                "over_threshold": sum(p["above_threshold"] for p in mine),
                "free": usable - assigned,
                "utilisation": round(assigned * 100 / usable, 2) if usable else 0.0,
            }
        )
    return {
        "customers": {"total": sum(by_status.values()), "by_status": by_status},
        "mrr": [
            {"amount": format(mrr[c], "f"), "currency": c, "active_services": active[c]}
            for c in sorted(mrr)
        ],
        "tickets": {
            "open": len(open_tickets),
            "on_track": len(open_tickets) - len(breached),
            "breached": len(breached),
        },
        "ip_addresses": families,
    }


def counted(client: Isp) -> dict[str, Any]:
    """The dashboard without the receivables (billing moves those, nothing lists them)."""
    return {k: v for k, v in dashboard(client).items() if k != "receivables"}


def activate(platform: Platform, number: str) -> None:
    """Activate a service in-process: the ACTIVE transition the activation ends in."""
    from dotmac.core.tenancy import TenantContext
    from dotmac.isp import customers, services

    ctx = TenantContext(ABC, platform.user_id(JOHN), request_id=f"activate-{number}")
    services.transition(ctx, number, "activate", customers.TransitionRequest(reason="installed"))


def service(john: Isp, customer: str, plan: str) -> str:
    return str(john.created("/services", {"customer_id": customer, "plan_id": plan})["id"])


# --- customers and MRR -----------------------------------------------------------------------


def test_customers_by_state_and_mrr_follow_transitions_and_plan_changes(
    platform: Platform, john: Isp
) -> None:
    empty = dashboard(john)
    assert empty["customers"] == {"total": 0, "by_status": dict.fromkeys(STATES, 0)}
    assert (empty["mrr"], empty["receivables"]) == ([], [])

    ada, bo, cy, di, ed = (john.customer(email=f"{n}@example.net") for n in "abcde")
    for path in (f"/customers/{ada}/activate", f"/customers/{bo}/activate"):
        assert john.act(path).status == 200
    for path in (f"/customers/{cy}/activate", f"/customers/{cy}/block"):
        assert john.act(path).status == 200
    assert john.act(f"/customers/{di}/deactivate").status == 200
    refused = john.act(f"/customers/{ed}/block")  # NEW cannot be blocked: nothing moves
    assert (refused.status, refused.error_code) == (409, "INVALID_STATE")
    figures = counted(john)
    assert figures["customers"]["by_status"] == {
        "NEW": 1,
        "ACTIVE": 2,
        "BLOCKED": 1,
        "INACTIVE": 1,
    }
    assert figures == recount(john)

    monthly = john.plan("Fibre 30", "29.99")
    quarterly = john.plan("Fibre Q", "100.00", billing_cycle="quarterly")  # 33.33 a month
    annual = john.plan("Fibre Y", "100.00", billing_cycle="annual")  # 8.33 a month
    yen = john.plan("Hikari", "10000", currency="JPY", billing_cycle="annual")  # 833
    s1, s2, s3 = (service(john, ada, plan) for plan in (monthly, quarterly, annual))
    s4, s5, s6 = service(john, bo, yen), service(john, bo, monthly), service(john, ed, monthly)
    for number in (s1, s2, s3, s4, s6):
        activate(platform, number)
    assert counted(john)["mrr"] == [
        {"amount": "833", "currency": "JPY", "active_services": 1},
        {"amount": "101.64", "currency": "USD", "active_services": 4},  # 29.99x2+33.33+8.33
    ]
    assert john.act(f"/services/{s3}/suspend", "unpaid").status == 200
    assert john.act(f"/services/{s6}/maintenance", "splicing").status == 200
    assert john.act(f"/services/{s5}/cancel", "never installed").status == 200  # PENDING
    assert counted(john)["mrr"][1] == {
        "amount": "63.32",
        "currency": "USD",
        "active_services": 2,
    }
    assert counted(john) == recount(john)

    # Plan changes: an ACTIVE service moves MRR to the new price, a SUSPENDED one does not
    # (until it resumes).
    moved = john.call("POST", f"/services/{s1}/plan-change", {"plan_id": quarterly})
    assert moved.status == 200, moved.json
    suspended = john.call("POST", f"/services/{s3}/plan-change", {"plan_id": monthly})
    assert suspended.status == 200, suspended.json
    assert counted(john)["mrr"][1]["amount"] == "66.66"  # 33.33 twice
    assert counted(john) == recount(john)
    for path in (f"/services/{s3}/resume", f"/services/{s6}/resume", f"/services/{s2}/cancel"):
        assert john.act(path).status == 200
    assert counted(john)["mrr"][1] == {
        "amount": "93.31",  # 33.33 + 29.99 + 29.99
        "currency": "USD",
        "active_services": 3,
    }
    assert counted(john) == recount(john)
    assert john.act(f"/services/{s4}/cancel", "moved away").status == 200
    assert [m["currency"] for m in counted(john)["mrr"]] == ["USD"]  # JPY back to zero
    assert counted(john) == recount(john)


def test_a_refused_write_moves_no_figure(platform: Platform, john: Isp) -> None:
    customer = john.customer()
    plan = john.plan()
    number = service(john, customer, plan)
    activate(platform, number)
    before, stored = dashboard(john), items(platform, "ISP_DASHBOARD")
    for path, body in (
        (f"/customers/{customer}/activate", {"reason": "x"}),  # ACTIVE with its service: 409
        (f"/services/{number}/resume", {"reason": "x"}),  # 409
        (f"/services/{number}/plan-change", {"plan_id": plan}),  # the same plan: 400
    ):
        assert john.call("POST", path, body).status in (400, 409), path
    assert dashboard(john) == before
    assert items(platform, "ISP_DASHBOARD") == stored
    assert before["mrr"] == [{"amount": "30.00", "currency": "USD", "active_services": 1}]


# --- tickets -----------------------------------------------------------------------------------


def test_open_tickets_by_sla_follow_breaches_resolve_close_and_reopen(
    platform: Platform, john: Isp, clock: Clock
) -> None:
    def ticket(priority: str) -> str:
        body = {"subject": "Down", "description": "No sync", "priority": priority}
        return str(john.created("/tickets", body)["id"])

    def sweep(after: timedelta) -> None:
        answer = john.call("POST", "/tickets/sweep", {"as_of": clock.at(after)})
        assert answer.status == 200, answer.json

    critical, normal, low, high = (ticket(p) for p in ("critical", "normal", "low", "high"))
    assert counted(john)["tickets"] == {"open": 4, "on_track": 4, "breached": 0}
    reply = john.call("POST", f"/tickets/{normal}/respond", {"message": "Looking"})
    assert reply.status == 200  # IN_PROGRESS: still open, on track
    sweep(timedelta(minutes=20))  # critical: first response due after 15 min
    assert counted(john)["tickets"] == {"open": 4, "on_track": 3, "breached": 1}
    assert counted(john) == recount(john)
    sweep(timedelta(minutes=25))  # nothing new: nothing moves
    assert counted(john)["tickets"] == {"open": 4, "on_track": 3, "breached": 1}

    assert john.act(f"/tickets/{low}/resolve").status == 200
    assert john.act(f"/tickets/{low}/close").status == 200
    assert john.act(f"/tickets/{high}/resolve").status == 200
    assert counted(john)["tickets"] == {"open": 2, "on_track": 1, "breached": 1}
    assert john.act(f"/tickets/{high}/reopen").status == 200
    assert counted(john)["tickets"] == {"open": 3, "on_track": 2, "breached": 1}
    assert john.act(f"/tickets/{critical}/resolve").status == 200
    assert counted(john)["tickets"] == {"open": 2, "on_track": 2, "breached": 0}
    # The breach flag stays: reopened, the ticket counts as breached again.
    assert john.act(f"/tickets/{critical}/reopen").status == 200
    assert counted(john)["tickets"] == {"open": 3, "on_track": 2, "breached": 1}
    # A write that finds a breach records it and moves the count with it.
    clock.at(timedelta(days=2))  # high: resolution due after 24 h
    assert john.call("PATCH", f"/tickets/{high}", {"category": "fibre"}).status == 200
    assert counted(john)["tickets"] == {"open": 3, "on_track": 1, "breached": 2}
    assert counted(john) == recount(john)
    refused = john.act(f"/tickets/{low}/reopen")  # CLOSED: 409, nothing moves
    assert (refused.status, refused.error_code) == (409, "INVALID_STATE")
    assert counted(john) == recount(john)


# --- IP addresses --------------------------------------------------------------------------


def test_address_totals_follow_prefixes_allocations_releases_and_thresholds(
    platform: Platform, john: Isp
) -> None:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = john.call("POST", path, body)
        assert answer.status == 201, answer.json
        return answer.json  # type: ignore[no-any-return]

    def prefix(vrf: str, cidr: str, **extra: Any) -> str:
        return str(post("/ipam/prefixes", {"vrf_id": vrf, "prefix": cidr, **extra})["data"]["id"])

    def allocate(prefix_id: str, count: int, **extra: Any) -> list[str]:
        found = post(f"/ipam/prefixes/{prefix_id}/available-ips", {"count": count, **extra})
        return [a["attributes"]["address"] for a in found["data"]]

    def v4() -> dict[str, Any]:
        return dict(counted(john)["ip_addresses"][0])

    core = str(post("/ipam/vrfs", {"name": "core"})["data"]["id"])
    block = prefix(core, "10.0.0.0/16")  # a leaf until it gets a child
    assert v4() == {
        "family": 4,
        "prefixes": 1,
        "usable": 65534,
        "assigned": 0,
        "free": 65534,
        "utilisation": 0.0,
        "over_threshold": 0,
    }
    lan = prefix(core, "10.0.1.0/24")  # the /16 becomes a container
    small = prefix(core, "10.0.2.0/29", alert_threshold=50)  # 6 usable, at/over from 3
    pool = prefix(core, "10.0.3.0/30", is_pool=True)  # 4 usable
    assert (v4()["prefixes"], v4()["usable"]) == (3, 254 + 6 + 4)
    assert counted(john) == recount(john)

    allocate(lan, 10)
    taken = allocate(small, 3)
    assert (v4()["assigned"], v4()["over_threshold"]) == (13, 1)
    assert john.call("POST", f"/ipam/vrfs/{core}/ip-addresses/{taken[0]}/release").status == 200
    assert (v4()["assigned"], v4()["over_threshold"]) == (12, 0)  # back below the threshold
    allocate(small, 1)
    assert v4()["over_threshold"] == 1
    for threshold, over in ((100, 0), (50, 1), (67, 0)):  # 3 of 6: 50 %
        changed = john.call("PATCH", f"/ipam/prefixes/{small}", {"alert_threshold": threshold})
        assert changed.status == 200, changed.json
        assert v4()["over_threshold"] == over, threshold
    assert john.call("PATCH", f"/ipam/prefixes/{small}", {"description": "p2p"}).status == 200
    allocate(pool, 4)  # 100 % of a pool
    assert v4() == {
        "family": 4,
        "prefixes": 3,
        "usable": 264,
        "assigned": 17,
        "free": 247,
        "utilisation": 6.44,
        "over_threshold": 1,
    }
    assert counted(john) == recount(john)

    # Deleting the last child makes the parent a leaf again; a prefix with addresses stays.
    edge = str(post("/ipam/vrfs", {"name": "edge"})["data"]["id"])
    parent = prefix(edge, "172.16.0.0/24")
    child = prefix(edge, "172.16.0.0/25")
    assert v4()["usable"] == 264 + 126
    assert john.call("DELETE", f"/ipam/prefixes/{child}").status == 204
    assert v4()["usable"] == 264 + 254
    assert john.call("DELETE", f"/ipam/prefixes/{parent}").status == 204
    assert john.call("DELETE", f"/ipam/prefixes/{block}").status == 409  # has children
    assert counted(john) == recount(john)

    # IPv6, and the addresses of a cancelled service released with it.
    six = prefix(core, "2001:db8::/64")
    allocate(six, 2)
    customer, plan = john.customer(), john.plan()
    number = service(john, customer, plan)
    allocate(lan, 2, assigned_to=f"service:{number}")
    allocate(six, 1, assigned_to=f"service:{number}")
    assert counted(john)["ip_addresses"][1] == {
        "family": 6,
        "prefixes": 1,
        "usable": 2**64 - 1,
        "assigned": 3,
        "free": 2**64 - 4,
        "utilisation": 0.0,
        "over_threshold": 0,
    }
    assert john.act(f"/services/{number}/cancel", "moved away").status == 200
    assert (v4()["assigned"], counted(john)["ip_addresses"][1]["assigned"]) == (17, 2)
    assert counted(john) == recount(john)


# --- receivables and billing's own unit of work -------------------------------------------


def test_receivables_and_a_transition_staged_in_billings_unit_of_work(
    platform: Platform, john: Isp
) -> None:
    from dotmac.billing.money import CurrencyMismatchError, Money
    from dotmac.core.errors import ConflictError
    from dotmac.core.tenancy import TenantContext
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.isp import customers
    from dotmac.isp import dashboard as aggregates

    ctx = TenantContext(ABC, "billing-worker", request_id="dunning-1")

    def stage(outstanding: Money, overdue: Money) -> None:
        uow = UnitOfWork(ctx)
        aggregates.stage_receivable(uow, ctx, outstanding=outstanding, overdue=overdue)
        uow.audit("isp.invoice.update", "invoice", "INV-1")
        uow.commit()

    stage(Money("120.00", "USD"), Money("0", "USD"))  # issued
    stage(Money("0", "USD"), Money("120.00", "USD"))  # fell due
    stage(Money("5000", "JPY"), Money("0", "JPY"))
    stage(Money("-20.005", "USD"), Money("-20.005", "USD"))  # paid in part: HALF_UP 20.01
    assert dashboard(john)["receivables"] == [
        {
            "currency": "JPY",
            "outstanding": {"amount": "5000", "currency": "JPY"},
            "overdue": {"amount": "0", "currency": "JPY"},
        },
        {
            "currency": "USD",
            "outstanding": {"amount": "99.99", "currency": "USD"},
            "overdue": {"amount": "99.99", "currency": "USD"},
        },
    ]
    stage(Money("-5000", "JPY"), Money("0", "JPY"))  # all zero: left out
    assert [r["currency"] for r in dashboard(john)["receivables"]] == ["USD"]
    with pytest.raises(CurrencyMismatchError):
        aggregates.stage_receivable(
            UnitOfWork(ctx), ctx, outstanding=Money("1", "USD"), overdue=Money("1", "EUR")
        )

    # Dunning: block the customer and move its debt in one transaction.
    customer = john.customer()
    assert john.act(f"/customers/{customer}/activate").status == 200
    item = customers.get_customer(ctx, customer, consistent=True).item
    uow = UnitOfWork(ctx)
    assert customers.stage_transition(uow, ctx, item, "block", "invoice overdue") == "BLOCKED"
    aggregates.stage_receivable(
        uow, ctx, outstanding=Money("10.00", "USD"), overdue=Money("10.00", "USD")
    )
    uow.commit()
    figures = dashboard(john)
    assert figures["customers"]["by_status"] == {**dict.fromkeys(STATES, 0), "BLOCKED": 1}
    assert figures["receivables"][0]["overdue"]["amount"] == "109.99"
    history = john.get(f"/customers/{customer}")["history"]
    assert (history[-1]["action"], history[-1]["by"], history[-1]["reason"]) == (
        "block",
        "billing-worker",
        "invoice overdue",
    )
    trail = [r for r in platform.audit_records() if r.get("request_id") == "dunning-1"]
    assert "isp.customer.block" in [r["action"] for r in trail]
    # A transition the state does not allow is refused before anything is staged.
    with pytest.raises(ConflictError):
        customers.stage_transition(UnitOfWork(ctx), ctx, item, "activate", "x")  # read ACTIVE
    stale = UnitOfWork(ctx)  # staged from the stale read: its version no longer holds
    customers.stage_transition(stale, ctx, item, "block", "again")
    with pytest.raises(ConflictError):
        stale.commit()
    assert dashboard(john) == figures


# --- isolation, roles, calls -------------------------------------------------------------------


def test_one_query_and_each_tenant_sees_only_its_own_figures(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    customer = john.customer()
    assert john.act(f"/customers/{customer}/activate").status == 200
    number = service(john, customer, john.plan())
    activate(platform, number)
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        dashboard(john)
    answer, calls = counting(john, isp_data)("GET", "/dashboard")
    assert calls == {"dynamodb:Query": 1}
    mine = answer.attributes
    assert (mine["customers"]["total"], len(mine["mrr"])) == (1, 1)

    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    zeros = dashboard(theirs)
    assert zeros["customers"] == {"total": 0, "by_status": dict.fromkeys(STATES, 0)}
    assert (zeros["mrr"], zeros["receivables"]) == ([], [])
    assert zeros["tickets"] == {"open": 0, "on_track": 0, "breached": 0}
    assert [f["usable"] + f["assigned"] + f["prefixes"] for f in zeros["ip_addresses"]] == [0, 0]
    theirs.customer(email="wile@globex.example")
    assert dashboard(theirs)["customers"]["by_status"]["NEW"] == 1
    assert dashboard(john) == mine  # ABC's figures did not move

    for user in (TOM, JANE, MIKE):  # technician, portal customer, CRM rep
        refused = Isp(platform, platform.token(user)).call("GET", "/dashboard")
        assert (refused.status, refused.error_code) == (403, "FORBIDDEN"), user
    assert dashboard(Isp(platform, platform.token(SARAH))) == mine  # isp_manager: isp:*:*
