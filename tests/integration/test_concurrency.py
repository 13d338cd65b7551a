"""Concurrency against the emulator with real threads: invoice numbering, the rate limiter's
leases across containers, optimistic locking on one customer / device / service, plan-limit
and usage counters, one payment per Idempotency-Key and the dashboard's figures.

The run ends with one line per test class counting the anomalies its tests looked for
(duplicates, gaps, overshoot, lost updates; `race_fixtures`); every count must be 0. The emulator
serialises DynamoDB requests (`devcloud.dynamodb_atomicity`, proven by
`test_dynamodb_atomicity.py`), so the races below are between whole requests, as between
Lambda instances on DynamoDB.

Already proven with real threads elsewhere (not repeated here):
- IPAM: 50 parallel allocations in a /26 and parallel retries of one Idempotency-Key
  (`test_isp_ipam.py`).
- The numbering primitive: 40 documents from 16 threads (`test_billing_numbering.py`).
- One limiter window: 200 hits from 32 threads against 50 (`test_ratelimit.py`); 5 logins
  per IP and 100 calls per user through the gateway (`test_identity_limits.py`).
- Eight parallel cancels of one service (`test_isp_services.py`), a partner's revenue from
  8 threads (`test_partners_metrics.py`), the users limit after its grace period
  (`test_management_api.py`), one tenant-ledger payment per key (`test_billing_ledger.py`),
  one subscriber invoice per day from parallel runs (`test_isp_billing.py`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.integration.conftest import MotoCloud
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import ABC, JOHN, Answer, Platform
from tests.integration.isp_activation import activated
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import scan_keys
from tests.integration.race_fixtures import *  # noqa: F403
from tests.integration.race_fixtures import Anomalies, duplicates, in_parallel, sequence_gaps
from tests.integration.test_isp_billing import (
    PREPAID,
    Clock,
    Staff,
    active_service,
    first_invoice,
    invoices,
)
from tests.integration.test_isp_customers import Isp, raw_item, used
from tests.integration.test_isp_dashboard import counted, recount
from tests.integration.test_isp_network import DEVICE


def chain_breaks(history: Sequence[dict[str, Any]]) -> int:
    """Transitions (oldest first) whose `from` is not the state the previous one led to: a
    transition decided on a stale state."""
    return sum(1 for prev, nxt in itertools.pairwise(history) if prev["to"] != nxt["from"])


def version_of(platform: Platform, pk: str) -> int:
    return int(raw_item(platform, pk)["version"]["N"])


def audit_actions(platform: Platform, resource_id: str) -> Counter[str]:
    return Counter(r["action"] for r in platform.audit_records() if r["resource_id"] == resource_id)


# --- invoice numbering -----------------------------------------------------------------------


class TestInvoiceNumbering:
    def test_parallel_subscriber_invoices_and_credit_notes_take_gapless_numbers(
        self, platform: Platform, anomalies: Anomalies, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Six prepaid customers' next invoices (the ISP series) and twelve credit notes on
        their first invoices (the CN series) issued at once: each series stays gapless, no
        number twice, and every credit note reached its invoice's balance."""
        from dotmac.core.tenancy import TenantContext
        from dotmac.isp import subscriber_billing

        clock = Clock(monkeypatch)
        john = Staff(platform)
        plan = john.plan()
        firsts: dict[str, str] = {}
        for i in range(6):
            customer = john.customer(**PREPAID, email=f"payer{i}@example.net")
            number = active_service(john, clock, customer, plan, date(2026, 4, 15))
            invoice = first_invoice(john, number)
            assert invoice is not None
            firsts[customer] = invoice
        worker = TenantContext(ABC, subscriber_billing.WORKER, request_id="numbering-race")

        def bill(customer: str) -> Callable[[], str | None]:
            return lambda: subscriber_billing.bill(worker, customer, date(2026, 5, 15))

        def credit(customer: str, k: int) -> Callable[[], Answer]:
            path = f"/customers/{customer}/invoices/{firsts[customer]}/credit-notes"
            return lambda: john.call("POST", path, {"amount": "1.00", "reason": f"goodwill {k}"})

        tasks: list[Callable[[], Any]] = []
        for customer in firsts:
            tasks += [credit(customer, 0), bill(customer), credit(customer, 1)]
        results = in_parallel(tasks)

        notes = [r for r in results if isinstance(r, Answer)]
        assert [a.status for a in notes] == [201] * 12, [a.json for a in notes]
        billed = [r for r in results if not isinstance(r, Answer)]
        assert all(billed), billed
        stored = [i["number"] for c in firsts for i in invoices(john, c)]
        stored_notes = [
            sk for pk, sk in scan_keys(platform, f"T#{ABC}#") if pk.endswith("#CREDIT_NOTE")
        ]
        year = datetime.now(UTC).year  # credit notes are numbered in the year they are issued
        balances = [
            i["balance"]
            for c, first in firsts.items()
            for i in invoices(john, c)
            if i["number"] == first
        ]
        anomalies.check(
            duplicates=duplicates(stored) + duplicates(stored_notes),
            gaps=sequence_gaps(stored, "ISP", 2026, 12)
            + sequence_gaps(stored_notes, "CN", year, 12),
            lost_updates=sum(1 for b in balances if b != "28.00"),  # 30.00 less two notes
        )
        assert sorted(a.json["data"]["id"] for a in notes) == sorted(stored_notes)
        assert sorted(billed) == sorted(set(stored) - set(firsts.values()))


# --- the rate limiter ------------------------------------------------------------------------


class TestRateLimiter:
    @pytest.mark.usefixtures("eager_thread_switching")
    def test_leases_of_several_containers_never_overshoot(
        self, moto_cloud: MotoCloud, anomalies: Anomalies
    ) -> None:
        """Four warm containers, each leasing 10 hits at a time, serve 400 calls of one
        user from 16 threads against a limit of 100: the window holds exactly 100 hits and
        the calls accepted never exceed it (only a container's unspent lease is lost)."""
        from dotmac.core.errors import RateLimitedError
        from dotmac.core.model import bind_table, ensure_bound
        from dotmac.core.ratelimit import AllowanceLeases, Limit, RateWindow, Window, partition_key

        bind_table(moto_cloud.created.table)
        ensure_bound()
        limit, subject, now = Limit("test-fleet", 100, 60), "abc-corp:john", 1_700_000_010.5
        containers = [AllowanceLeases(lease=10) for _ in range(4)]

        def call(i: int) -> Callable[[], bool]:
            def spend() -> bool:
                try:
                    containers[i % 4].spend(limit, subject, now=now)
                except RateLimitedError:
                    return False
                return True

            return spend

        accepted = sum(in_parallel([call(i) for i in range(400)], workers=16))
        stored = int(
            RateWindow.get(partition_key(limit, subject), Window.at(limit, now).sort_key).hits
        )
        anomalies.check(overshoot=max(0, accepted - 100) + max(0, stored - 100))
        assert stored == 100
        assert accepted >= 100 - 4 * 9  # at most one partly spent lease per container


# --- optimistic locking ----------------------------------------------------------------------


@pytest.mark.usefixtures("eager_thread_switching")
class TestOptimisticLocking:
    def test_parallel_patches_and_transitions_of_one_customer_lose_nothing(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """12 profile PATCHes and 12 transitions of one customer at once: each write either
        wins (200) or is refused for the state it found (409); every won transition is in
        the history, each starting where the previous one ended; version = 1 + wins."""
        john = Isp(platform, platform.token(JOHN))
        customer = john.customer()
        path = f"/customers/{customer}"
        actions = ("activate", "block", "deactivate")
        tasks: list[Callable[[], tuple[str, str, Answer]]] = []
        for i in range(12):
            name, reason = f"writer {i}", f"attempt {i}"
            tasks.append(
                lambda name=name: ("patch", name, john.call("PATCH", path, {"name": name}))
            )
            act = f"{path}/{actions[i % 3]}"
            tasks.append(lambda act=act, reason=reason: ("move", reason, john.act(act, reason)))
        results = in_parallel(tasks)

        outcomes = Counter((kind, a.status, a.error_code) for kind, _, a in results)
        assert set(outcomes) <= {
            ("patch", 200, None),
            ("move", 200, None),
            ("move", 409, "INVALID_STATE"),
        }, outcomes
        patched = [name for kind, name, a in results if kind == "patch" and a.status == 200]
        moved = [reason for kind, reason, a in results if kind == "move" and a.status == 200]
        view = john.get(path)
        history = view["history"]
        version = version_of(platform, f"T#{ABC}#ISP_CUSTOMER#{customer}")
        audits = audit_actions(platform, customer)
        anomalies.check(
            lost_updates=chain_breaks(history)
            + len({h["reason"] for h in history[1:]} ^ set(moved))
            + abs(version - (1 + len(patched) + len(moved)))
            + abs(audits["isp.customer.update"] - len(patched)),
        )
        assert moved and view["status"] == history[-1]["to"]
        assert view["name"] in patched
        assert counted(john)["customers"] == recount(john)["customers"]

    def test_parallel_device_writes_lose_nothing(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """10 PATCHes toggling maintenance and 10 new interfaces of one device at once: every
        interface is counted on the device, every maintenance change is a transition from the
        state the previous one left, version = 1 + PATCHes."""
        john = Isp(platform, platform.token(JOHN))
        device = str(john.created("/devices", DEVICE)["id"])
        path = f"/devices/{device}"
        tasks: list[Callable[[], tuple[str, Answer]]] = []
        for i in range(10):
            body = {"maintenance": i % 2 == 0, "description": f"window {i}"}
            tasks.append(lambda body=body: ("patch", john.call("PATCH", path, body)))
            port = {"name": f"ge-0/0/{i}"}
            tasks.append(lambda port=port: ("port", john.call("POST", f"{path}/interfaces", port)))
        results = in_parallel(tasks)

        outcomes = Counter((kind, a.status) for kind, a in results)
        assert outcomes == {("patch", 200): 10, ("port", 201): 10}, outcomes
        view = john.get(path)
        changes = john.call("GET", f"{path}/status-history?limit=200").json["data"]
        history = [h["attributes"] for h in reversed(changes)]
        version = version_of(platform, f"T#{ABC}#ISP_DEVICE#{device}")
        logged = [int(h["id"].removeprefix("LOG#")) for h in reversed(changes)]
        audits = audit_actions(platform, device)
        anomalies.check(
            lost_updates=chain_breaks(history)
            + abs(version - 11)
            + abs(view["interface_count"] - 10)
            + abs(len(view["interfaces"]) - 10)
            + abs(audits["isp.device.update"] - 10),
            duplicates=duplicates(logged) + sum(1 for v in logged if v > version),
        )
        assert view["status"] == history[-1]["to"]

    def test_parallel_service_transitions_leave_the_network_in_the_services_state(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """12 suspends, resumes and maintenance windows of one ACTIVE service at once: the
        history is one chain, version = before + wins, the network ends blocked exactly when
        the service ends SUSPENDED, and the MRR equals a recount."""
        john = Staff(platform)
        customer, plan = john.customer(), john.plan()
        number = str(john.created("/services", {"customer_id": customer, "plan_id": plan})["id"])
        activated(john, number, prefix_id=john.pool)
        pk = f"T#{ABC}#ISP_SERVICE#{number}"
        before = version_of(platform, pk)
        actions = ("suspend", "resume", "maintenance")
        tasks = [
            (
                lambda act=f"/services/{number}/{actions[i % 3]}", reason=f"attempt {i}": (
                    reason,
                    john.act(act, reason),
                )
            )
            for i in range(12)
        ]
        results = in_parallel(tasks)

        assert {(a.status, a.error_code) for _, a in results} <= {
            (200, None),
            (409, "INVALID_STATE"),
        }
        moved = [reason for reason, a in results if a.status == 200]
        view = john.get(f"/services/{number}")
        history = view["history"]
        blocked = raw_item(platform, f"T#{ABC}#ISP_SERVICE_NET#{number}", "STATE")["blocked"][
            "BOOL"
        ]
        anomalies.check(
            lost_updates=chain_breaks(history)
            + len({h["reason"] for h in history[2:]} ^ set(moved))
            + abs(version_of(platform, pk) - (before + len(moved)))
            + int(blocked != (view["status"] == "SUSPENDED")),
        )
        assert moved and view["network_error"] is None
        assert counted(john)["mrr"] == recount(john)["mrr"]

    def test_a_late_push_of_an_older_state_does_not_undo_a_newer_one(
        self, platform: Platform, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A suspend commits, but its push is held back; a resume commits and pushes
        (nothing to send: the network was never blocked). The suspend's push, derived from
        an older version of the service, must then be skipped: the customer is ACTIVE."""
        from dotmac.isp import adapter

        john = Staff(platform)
        customer, plan = john.customer(), john.plan()
        number = str(john.created("/services", {"customer_id": customer, "plan_id": plan})["id"])
        activated(john, number, prefix_id=john.pool)
        held, release = threading.Event(), threading.Event()
        real = adapter.push_transition

        def push_later(ctx: Any, service: Any, action: str) -> bool:
            if action == "suspend":
                held.set()
                assert release.wait(30)
            return real(ctx, service, action)

        monkeypatch.setattr(adapter, "push_transition", push_later)
        suspended: list[Answer] = []
        suspender = threading.Thread(
            target=lambda: suspended.append(john.act(f"/services/{number}/suspend", "unpaid"))
        )
        suspender.start()
        try:
            assert held.wait(30)
            assert john.act(f"/services/{number}/resume", "paid").status == 200
        finally:
            release.set()
            suspender.join(30)
        assert suspended[0].status == 200
        assert john.get(f"/services/{number}")["status"] == "ACTIVE"
        state = raw_item(platform, f"T#{ABC}#ISP_SERVICE_NET#{number}", "STATE")
        assert state["blocked"]["BOOL"] is False


# --- usage counters, payments, dashboard -----------------------------------------------------


def fleet_admin(platform: Platform) -> Isp:
    """The admin of a new starter-plan ISP tenant, `fleet` (5 devices)."""
    platform.add_tenant(
        "fleet", users=(("admin@fleet.example", "Fleet-secret-2026", ("tenant_admin",)),)
    )
    return Isp(
        platform, platform.token("admin@fleet.example", "fleet", password="Fleet-secret-2026")
    )


def set_device_usage(platform: Platform, count: int, exceeded_at: int | None) -> None:
    """Write `fleet`'s devices counter (and when it went over the limit, if it did)."""
    item = {
        "PK": {"S": "T#fleet#USAGE"},
        "SK": {"S": "devices"},
        "count": {"N": str(count)},
        "kind": {"S": "usage"},
    }
    if exceeded_at is not None:
        item["exceeded_at"] = {"N": str(exceeded_at)}
    platform.cloud.client("dynamodb").put_item(TableName=platform.cloud.created.table, Item=item)


class TestUsageCounters:
    @pytest.mark.usefixtures("eager_thread_switching")
    def test_parallel_device_creates_keep_the_plan_limit(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """Starter plan, 5 devices. With the grace period over, 12 parallel creates get
        exactly the 5 the limit leaves (403 for the rest); one more device crossing the
        limit opens the grace period once, and 8 parallel creates in it all count."""
        fleet = fleet_admin(platform)

        def create(i: int) -> Callable[[], Answer]:
            return lambda: fleet.call("POST", "/devices", {**DEVICE, "name": f"rtr-{i:02d}"})

        set_device_usage(platform, 0, int(time.time()) - 25 * 3600)  # a grace period that ran out
        first = in_parallel([create(i) for i in range(12)])
        assert Counter((a.status, a.error_code) for a in first) == {
            (201, None): 5,
            (403, "PLAN_LIMIT_EXCEEDED"): 7,
        }
        listed = len(fleet.call("GET", "/devices?limit=200").json["data"])
        anomalies.check(
            overshoot=max(0, sum(a.status == 201 for a in first) - 5),
            lost_updates=abs(used(platform, "devices", "fleet") - listed),
        )

        set_device_usage(platform, 5, None)  # at the limit, no grace period yet
        second = in_parallel([create(i) for i in range(20, 28)])
        assert {a.status for a in second} == {201}
        listed = len(fleet.call("GET", "/devices?limit=200").json["data"])
        counter = raw_item(platform, "T#fleet#USAGE", "devices")
        anomalies.check(lost_updates=abs(used(platform, "devices", "fleet") - listed))
        assert listed == 13 and abs(int(counter["exceeded_at"]["N"]) - time.time()) < 300

    def test_duplicate_usage_records_in_parallel_count_once(
        self, platform: Platform, anomalies: Anomalies, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """12 accounting records over two months, each sent twice, all at once: 12 counted,
        12 answered `counted: false`, and each month holds exactly the sum of its records."""
        clock = Clock(monkeypatch)
        john = Staff(platform)
        number = active_service(john, clock, john.customer(), john.plan(), date(2026, 4, 10))
        records = [
            {
                "record_id": f"sess-1:{i}",
                "at": f"2026-0{4 + i % 2}-2{i % 8}T12:00:00Z",
                "download_bytes": 1_000_003 * (i + 1),
                "upload_bytes": 7 * (i + 1),
            }
            for i in range(12)
        ]
        path = f"/services/{number}/usage"
        answers = in_parallel([lambda r=r: john.call("POST", path, r) for r in records * 2])
        counted_ids = [a.attributes["record_id"] for a in answers if a.attributes["counted"]]
        assert Counter(a.status for a in answers) == {201: 12, 200: 12}
        months = {
            m["attributes"]["month"]: m["attributes"] for m in john.call("GET", path).json["data"]
        }
        lost = 0
        for month in ("2026-04", "2026-05"):
            mine = [r for r in records if r["at"].startswith(month)]
            got = months[month]
            lost += abs(got["download_bytes"] - sum(r["download_bytes"] for r in mine))
            lost += abs(got["upload_bytes"] - sum(r["upload_bytes"] for r in mine))
            lost += abs(got["records"] - len(mine))
        anomalies.check(
            duplicates=duplicates(counted_ids), lost_updates=lost + 12 - len(counted_ids)
        )

    @pytest.mark.usefixtures("eager_thread_switching")
    def test_parallel_payments_count_once_per_key(
        self, platform: Platform, anomalies: Anomalies, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """8 copies of one payment (one Idempotency-Key) and 8 payments with their own keys,
        all at once on one customer: the copies pay once and all answer the same payment;
        each other payment counts once; the account adds up."""
        clock = Clock(monkeypatch)
        john = Staff(platform)
        customer = john.customer(**PREPAID)
        active_service(john, clock, customer, john.plan(), date(2026, 4, 15))  # owes 30.00
        path = f"/customers/{customer}/payments"

        def pay(amount: str, key: str) -> Callable[[], Answer]:
            return lambda: john.call("POST", path, {"amount": amount}, **{"Idempotency-Key": key})

        tasks = [t for i in range(8) for t in (pay("10.00", "same"), pay("1.00", f"own-{i}"))]
        answers = in_parallel(tasks)
        copies, own = answers[0::2], answers[1::2]
        assert sorted(a.status for a in copies) == [200] * 7 + [201]
        assert [a.status for a in own] == [201] * 8
        payments = john.call("GET", f"{path}?limit=200").json["data"]
        account = john.get(f"/customers/{customer}/billing-account")
        anomalies.check(
            duplicates=len({a.json["data"]["id"] for a in copies})
            - 1
            + duplicates([p["id"] for p in payments]),
            lost_updates=abs(len(payments) - 9)
            + int(account["paid"] != "18.00")
            + int(account["balance"] != "12.00"),
        )

    @pytest.mark.usefixtures("eager_thread_switching")
    def test_dashboard_figures_equal_a_recount_after_parallel_transitions(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """Six customers, each sent activate, block, deactivate and activate again from
        parallel threads: however they interleave, customers by state equal a recount."""
        john = Isp(platform, platform.token(JOHN))
        customers = [john.customer(email=f"c{i}@example.net") for i in range(6)]
        tasks = [
            (lambda p=f"/customers/{c}/{action}": john.act(p, "parallel"))
            for action in ("activate", "block", "deactivate", "activate")
            for c in customers
        ]
        answers = in_parallel(tasks)
        assert {a.status for a in answers} <= {200, 409}
        figures, truth = counted(john)["customers"], recount(john)["customers"]
        anomalies.check(
            lost_updates=sum(
                abs(figures["by_status"][s] - truth["by_status"][s]) for s in truth["by_status"]
            )
            + abs(figures["total"] - 6)
        )
        assert figures == truth
