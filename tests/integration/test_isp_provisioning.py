"""ISP service activation through the real Step Functions workflow (moto executes it; every
task runs the real `isp-activation-steps` handler) and the network adapter: every step with
the commands it records, the first invoice, a failure injected at each step and its
compensation, retries, conflicts, bad input, tenant isolation, roles, the block / unblock /
removal pushed by transitions, a failed push, the adapter plugged in by environment, and
DynamoDB calls per read."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from dotmac.isp.adapter import Command, RecordingAdapter
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
from tests.integration.isp_activation import (
    activated,
    address_pool,
    execution_status,
    start_activation,
    wait_for_activation,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import scan_keys
from tests.integration.test_isp_customers import Isp, counting, isp_data, items

STEPS = ["validate", "allocate_ip", "configure", "activate", "invoice"]
NET = f"T#{ABC}#ISP_SERVICE_NET#"


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


def pending_service(john: Isp, **customer: Any) -> tuple[str, str]:
    """(customer id, number) of a new PENDING service on a 100/20 Mbps plan."""
    customer_id = john.customer(**customer)
    plan = john.plan()
    number = john.created("/services", {"customer_id": customer_id, "plan_id": plan})["id"]
    return customer_id, str(number)


def commands(john: Isp, number: str) -> list[tuple[str, str, str]]:
    """(operation, target, line) of every command recorded for the service, in order."""
    answer = john.call("GET", f"/services/{number}/network-commands?limit=200")
    assert answer.status == 200, answer.json
    return [
        (c["attributes"]["operation"], c["attributes"]["target"], c["attributes"]["line"])
        for c in answer.json["data"]
    ]


def assigned(john: Isp, number: str) -> list[str]:
    answer = john.call("GET", f"/ipam/ip-addresses?assigned_to=service:{number}")
    assert answer.status == 200, answer.json
    return [a["id"] for a in answer.json["data"]]


def activation_lines(number: str, address: str = "100.64.0.1") -> list[tuple[str, str, str]]:
    return [
        ("activate", "radius", f"radreply set {number} Framed-IP-Address := {address}"),
        ("activate", "radius", f'radreply set {number} Mikrotik-Rate-Limit := "20M/100M"'),
        (
            "activate",
            "router",
            f"/queue simple add name={number} target={address}/32 max-limit=20M/100M "
            f"comment={number}",
        ),
    ]


def removal_lines(number: str) -> list[tuple[str, str, str]]:
    return [
        ("deactivate", "radius", f"disconnect {number}"),
        ("deactivate", "radius", f"radreply delete {number}"),
        ("deactivate", "router", f"/queue simple remove [find name={number}]"),
        ("deactivate", "router", f"/ip firewall address-list remove [find comment={number}]"),
    ]


# --- the workflow end to end -----------------------------------------------------------------


def test_an_activation_runs_every_step_and_invoices_a_prepaid_customer(
    platform: Platform, john: Isp
) -> None:
    customer, number = pending_service(john, billing_mode="prepaid")
    prefix = address_pool(john, "100.64.0.0/29")

    answer = start_activation(john, number, prefix, "installed on site")
    assert answer.status == 202, answer.json
    assert answer.header("Location") == f"/api/v1/isp/services/{number}/activation"
    started = answer.attributes
    assert (started["status"], started["service"], started["prefix_id"]) == (
        "RUNNING",
        number,
        prefix,
    )
    assert re.fullmatch(rf"{number}-[0-9a-f]{{16}}", started["execution"])

    view = wait_for_activation(john, number)
    john_id = platform.user_id(JOHN)
    assert view["status"] == "SUCCEEDED", view
    assert [(s["step"], s["outcome"]) for s in view["steps"]] == [(s, "ok") for s in STEPS]
    assert view["addresses"] == ["100.64.0.1"]
    assert re.fullmatch(r"ISP-\d{4}-\d{6}", view["invoice"]), view
    assert (view["error"], view["started_by"], view["reason"]) == (
        None,
        john_id,
        "installed on site",
    )
    assert view["finished_at"] is not None
    assert execution_status(platform, view["execution"])["status"] == "SUCCEEDED"

    # The address is the service's; the network got it with the plan's rate, in order.
    assert assigned(john, number) == ["100.64.0.1"]
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 1
    assert commands(john, number) == activation_lines(number)
    listed = john.call("GET", f"/services/{number}/network-commands").json["data"]
    assert [c["id"] for c in listed] == ["000001.001", "000001.002", "000001.003"]
    first = john.call("GET", f"/services/{number}/network-commands?limit=2").json
    cursor = first["meta"]["next_cursor"]
    rest = john.call("GET", f"/services/{number}/network-commands?limit=2&cursor={cursor}").json
    assert [c["id"] for c in first["data"] + rest["data"]] == [c["id"] for c in listed]
    assert {(c["attributes"]["by"], c["attributes"]["request_id"]) for c in listed} == {
        (john_id, view["execution"])
    }

    # ACTIVE with its history, as the user who started it, for the reason given.
    service = john.get(f"/services/{number}")
    assert (service["status"], service["status_cause"], service["network_error"]) == (
        "ACTIVE",
        None,
        None,
    )
    assert service["started_on"] == datetime.now(UTC).date().isoformat()
    assert [
        (h["action"], h["from"], h["to"], h["by"], h["reason"]) for h in service["history"]
    ] == [
        ("create", None, "PENDING", john_id, "created"),
        ("activate", "PENDING", "ACTIVE", john_id, "installed on site"),
    ]

    # The prorated first invoice is on the customer's book; every write is audited.
    invoices = [sk for pk, sk in scan_keys(platform, f"T#{ABC}#ISP_SUB#{customer}#INVOICE")]
    assert invoices == [view["invoice"]]
    trail = Counter(
        r["action"]
        for r in platform.audit_records()
        if r["request_id"] == view["execution"] and r["actor"] == john_id
    )
    assert trail["isp.ip_address.allocate"] == 1
    assert trail["isp.service.network_activate"] == 1
    assert trail["isp.service.activate"] == 1


def test_a_postpaid_customer_is_invoiced_at_the_end_of_the_cycle(john: Isp) -> None:
    _, number = pending_service(john, billing_mode="postpaid")
    view = activated(john, number)
    assert view["invoice"] is None
    assert view["steps"][-1]["detail"].startswith("nothing billed now")


# --- failures and compensation -------------------------------------------------------------


def inject(monkeypatch: pytest.MonkeyPatch, step: str, when: str) -> list[str]:
    """Make `step` fail for good, `before` or `after` doing its work; returns its runs."""
    from dotmac.core.workflows import StepFailedError
    from dotmac.isp import provisioning

    real = provisioning.STEPS[step]
    runs: list[str] = []

    def broken(*args: Any) -> Any:
        runs.append(step)
        if when == "after":
            real(*args)  # do the work, then fail: the worst case
        raise StepFailedError(f"injected failure in {step}")

    monkeypatch.setitem(provisioning.STEPS, step, broken)
    return runs


@pytest.mark.parametrize(
    ("step", "when"),
    [
        ("validate", "after"),
        ("allocate_ip", "after"),
        ("configure", "after"),
        ("activate", "before"),
    ],
)
def test_a_failure_before_active_is_undone(
    platform: Platform, john: Isp, monkeypatch: pytest.MonkeyPatch, step: str, when: str
) -> None:
    runs = inject(monkeypatch, step, when)
    _, number = pending_service(john)
    prefix = address_pool(john)
    assert start_activation(john, number, prefix).status == 202
    view = wait_for_activation(john, number)

    assert view["status"] == "FAILED", view
    assert f"injected failure in {step}" in view["error"]
    done = STEPS[: STEPS.index(step) + (when == "after")]
    assert [(s["step"], s["outcome"]) for s in view["steps"]] == [
        *[(s, "ok") for s in done],
        ("compensate", "compensated"),
    ]
    assert execution_status(platform, view["execution"])["error"] == "ActivationFailed"
    assert runs == [step]  # a failure for good is not retried
    # Nothing is left: no address, the network configuration removed, the service PENDING.
    assert assigned(john, number) == []
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 0
    configured = "configure" in done
    assert commands(john, number) == (
        [*activation_lines(number), *removal_lines(number)] if configured else []
    )
    service = john.get(f"/services/{number}")
    assert (service["status"], service["started_on"]) == ("PENDING", None)
    assert [h["action"] for h in service["history"]] == ["create"]


@pytest.mark.parametrize(("step", "when"), [("activate", "after"), ("invoice", "before")])
def test_a_failure_after_active_keeps_the_live_service(
    platform: Platform, john: Isp, monkeypatch: pytest.MonkeyPatch, step: str, when: str
) -> None:
    inject(monkeypatch, step, when)
    _, number = pending_service(john)
    view = activated_or_not(john, number)

    assert view["status"] == "INCOMPLETE", view
    assert f"injected failure in {step}" in view["error"]
    assert view["steps"][-1]["step"] == "compensate"
    assert view["steps"][-1]["outcome"] == "failed"
    assert view["invoice"] is None
    assert execution_status(platform, view["execution"])["error"] == "ActivationIncomplete"
    assert john.get(f"/services/{number}")["status"] == "ACTIVE"
    assert assigned(john, number) == ["100.64.0.1"]
    assert commands(john, number) == activation_lines(number)
    again = start_activation(john, number, address_pool(john))
    assert (again.status, again.error_code) == (409, "INVALID_STATE")


def activated_or_not(john: Isp, number: str) -> dict[str, Any]:
    """Start an activation from a new pool and wait for its end, whatever it is."""
    assert start_activation(john, number, address_pool(john)).status == 202
    return wait_for_activation(john, number)


def test_a_failed_activation_can_be_started_again(
    john: Isp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, number = pending_service(john)
    with monkeypatch.context() as patch:
        inject(patch, "configure", "after")
        first = activated_or_not(john, number)
    assert first["status"] == "FAILED"
    second = activated(john, number)
    assert second["execution"] != first["execution"]
    assert [s["step"] for s in second["steps"]] == STEPS
    assert commands(john, number) == [
        *activation_lines(number),
        *removal_lines(number),
        *activation_lines(number),
    ]


def test_a_retried_allocation_gets_the_same_address(
    platform: Platform, john: Isp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The allocation commits, then its step fails transiently: Step Functions runs the step
    again, and the IPAM idempotency key hands back the same address."""
    from dotmac.core.workflows import TransientStepError
    from dotmac.isp import ipam

    real = ipam.allocate
    replayed: list[bool] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        allocation = real(*args, **kwargs)
        replayed.append(allocation.replayed)
        if len(replayed) == 1:
            raise TransientStepError("the table is throttling")
        return allocation

    monkeypatch.setattr(ipam, "allocate", flaky)
    _, number = pending_service(john)
    prefix = address_pool(john)
    view = activated(john, number, prefix_id=prefix)

    assert replayed == [False, True]
    assert [s["step"] for s in view["steps"]] == STEPS
    assert view["addresses"] == assigned(john, number) == ["100.64.0.1"]
    assert john.get(f"/ipam/prefixes/{prefix}")["allocated"] == 1
    allocations = [
        r
        for r in platform.audit_records()
        if r["action"] == "isp.ip_address.allocate" and r["request_id"] == view["execution"]
    ]
    assert len(allocations) == 1


# --- conflicts, bad input, isolation, roles --------------------------------------------------


def executions_of(platform: Platform, number: str) -> list[str]:
    sfn = platform.cloud.client("stepfunctions")
    machine = platform.cloud.created.state_machines["activate_isp_service"]
    names = [e["name"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]]
    return [n for n in names if n.startswith(f"{number}-")]


def test_one_activation_at_a_time_and_never_twice(
    platform: Platform, john: Isp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.isp import provisioning

    gate = threading.Event()
    real = provisioning.STEPS["validate"]

    def held(*args: Any) -> Any:
        assert gate.wait(30)
        return real(*args)

    monkeypatch.setitem(provisioning.STEPS, "validate", held)
    _, number = pending_service(john)
    prefix = address_pool(john)
    key = {"Idempotency-Key": "activate-once"}
    first = start_activation(john, number, prefix, **key)
    assert first.status == 202, first.json
    try:
        running = start_activation(john, number, prefix)
        assert (running.status, running.error_code) == (409, "ACTIVATION_RUNNING")
        same = start_activation(john, number, prefix, **key)
        assert same.status == 202
        assert same.attributes["execution"] == first.attributes["execution"]
    finally:
        gate.set()
    assert wait_for_activation(john, number)["status"] == "SUCCEEDED"
    after = start_activation(john, number, prefix)
    assert (after.status, after.error_code) == (409, "INVALID_STATE")
    reused = start_activation(john, number, address_pool(john), **key)
    assert (reused.status, reused.error_code) == (422, "IDEMPOTENCY_KEY_REUSED")
    replay = start_activation(john, number, prefix, **key)
    assert replay.status == 202
    assert (replay.attributes["execution"], replay.attributes["status"]) == (
        first.attributes["execution"],
        "SUCCEEDED",
    )
    assert executions_of(platform, number) == [first.attributes["execution"]]
    assert assigned(john, number) == ["100.64.0.1"]


def test_a_workflow_that_cannot_start_leaves_the_activation_failed(
    platform: Platform, john: Isp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.core import workflows

    def down(*args: Any) -> str:
        raise ConnectionError("states.us-east-1.amazonaws.com is unreachable")

    _, number = pending_service(john)
    prefix = address_pool(john)
    with monkeypatch.context() as patch:
        patch.setattr(workflows, "start", down)
        answer = start_activation(john, number, prefix)
    assert (answer.status, answer.error_code) == (503, "SERVICE_UNAVAILABLE")
    view = john.get(f"/services/{number}/activation")
    assert (view["status"], view["error"]) == ("FAILED", "the activation workflow did not start")
    assert executions_of(platform, number) == []
    assert activated(john, number, prefix_id=prefix)["status"] == "SUCCEEDED"


def test_only_a_pending_service_of_a_new_or_active_customer_is_activated(
    platform: Platform, john: Isp
) -> None:
    customer, number = pending_service(john)
    _, cancelled = pending_service(john, email="c@example.net")
    assert john.act(f"/services/{cancelled}/cancel", "changed mind").status == 200
    prefix = address_pool(john)
    assert john.act(f"/customers/{customer}/deactivate", "moved away").status == 200
    before = items(platform)
    for service, code in ((number, "CUSTOMER_NOT_ACTIVE"), (cancelled, "INVALID_STATE")):
        answer = start_activation(john, service, prefix)
        assert (answer.status, answer.error_code) == (409, code), service
        assert executions_of(platform, service) == []
    assert items(platform) == before


def test_bad_input_is_a_400_or_404_and_writes_nothing(platform: Platform, john: Isp) -> None:
    _, number = pending_service(john)
    prefix = address_pool(john)
    before = items(platform)
    for body, field in [
        ({}, "prefix_id"),
        ({"prefix_id": "nope"}, "prefix_id"),
        ({"prefix_id": "0123456789abcdef"}, "prefix_id"),  # no such prefix
        ({"prefix_id": prefix, "reason": " "}, "reason"),
        ({"prefix_id": prefix, "reason": "x" * 501}, "reason"),
        ({"prefix_id": prefix, "status": "ACTIVE"}, "status"),
    ]:
        answer = john.call("POST", f"/services/{number}/activation", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"][0]["field"] == field, body
    bad_key = start_activation(john, number, prefix, **{"Idempotency-Key": "é" * 3})
    assert bad_key.status == 400
    for missing in ("INT-20260101-000000", "nope", "int-1"):
        for method, path, body in [
            ("POST", f"/services/{missing}/activation", {"prefix_id": prefix}),
            ("GET", f"/services/{missing}/activation", None),
            ("GET", f"/services/{missing}/network-commands", None),
            ("POST", f"/services/{missing}/network-sync", {}),
        ]:
            answer = john.call(method, path, body)
            assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    never = john.call("GET", f"/services/{number}/activation")
    assert (never.status, never.error_code) == (404, "NOT_FOUND")
    assert john.call("GET", f"/services/{number}/network-commands").json["data"] == []
    assert john.call("GET", f"/services/{number}/network-commands?limit=500").status == 400
    assert items(platform) == before
    assert executions_of(platform, number) == []


def test_tenants_and_roles_reach_only_their_own_activations(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    _, number = pending_service(john)
    prefix = address_pool(john)
    activated(john, number, prefix_id=prefix)
    _, other = pending_service(john, email="o@example.net")
    before = items(platform)
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    routes: list[tuple[str, str, Any]] = [
        ("POST", f"/services/{other}/activation", {"prefix_id": prefix}),
        ("GET", f"/services/{number}/activation", None),
        ("GET", f"/services/{number}/network-commands", None),
        ("POST", f"/services/{number}/network-sync", {}),
    ]
    for method, path, body in routes:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    own_customer = theirs.customer()
    own_plan = theirs.plan()
    own = theirs.created("/services", {"customer_id": own_customer, "plan_id": own_plan})["id"]
    foreign = start_activation(theirs, own, prefix)  # A's prefix means nothing in B
    assert (foreign.status, foreign.error_code) == (400, "VALIDATION_ERROR")
    assert items(platform) == before
    assert not [k for k in items(platform, tenant=GLOBEX) if "ISP_SERVICE_NET" in k[0]]

    for user in (TOM, JANE):  # technician (work orders only), portal customer
        client = Isp(platform, platform.token(user))
        for method, path, body in routes:
            answer = client.call(method, path, body)
            assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (user, path)
    assert items(platform) == before
    assert executions_of(platform, other) == []
    sarah = Isp(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    view = activated(sarah, other, prefix_id=prefix)
    assert view["started_by"] == platform.user_id(SARAH)
    assert view["addresses"] == ["100.64.0.2"]


# --- transitions push through the adapter ----------------------------------------------------


def block_lines(number: str) -> list[tuple[str, str, str]]:
    return [
        ("suspend", "radius", f'radreply set {number} Mikrotik-Address-List := "blocked"'),
        (
            "suspend",
            "router",
            f"/ip firewall address-list add list=blocked address=100.64.0.1 comment={number}",
        ),
        ("suspend", "radius", f'coa {number} Mikrotik-Address-List = "blocked"'),
    ]


def unblock_lines(number: str) -> list[tuple[str, str, str]]:
    return [
        ("resume", "radius", f"radreply delete {number} Mikrotik-Address-List"),
        (
            "resume",
            "router",
            f"/ip firewall address-list remove [find list=blocked comment={number}]",
        ),
        ("resume", "radius", f'coa {number} Mikrotik-Address-List = ""'),
    ]


def test_suspend_resume_and_cancel_push_block_unblock_and_removal(
    platform: Platform, john: Isp
) -> None:
    from dotmac.core.tenancy import TenantContext
    from dotmac.isp import customers, services

    _, number = pending_service(john)
    activated(john, number)
    ctx = TenantContext(ABC, platform.user_id(JOHN), request_id="dunning-run-1")
    stale = services.ServiceRepository(ctx).record(number, consistent=True)
    expected = activation_lines(number)

    suspended = john.act(f"/services/{number}/suspend", "unpaid")
    assert suspended.status == 200 and suspended.attributes["status"] == "SUSPENDED"
    assert suspended.attributes["status_cause"] is None  # a person did it
    expected += block_lines(number)
    assert commands(john, number) == expected
    # Pushes are idempotent, and one derived from an older state of the service is skipped.
    assert RecordingAdapter().suspend(ctx, services.ServiceRepository(ctx).record(number)) == []
    assert RecordingAdapter().resume(ctx, stale) == []
    assert commands(john, number) == expected

    assert john.act(f"/services/{number}/resume", "paid").status == 200
    expected += unblock_lines(number)
    assert commands(john, number) == expected
    for action in ("maintenance", "resume"):  # nothing is blocked: nothing to send
        assert john.act(f"/services/{number}/{action}", "fibre splice").status == 200
    assert commands(john, number) == expected

    # Dunning suspends with its cause; a person's resume clears it.
    item, _ = services.transition(
        ctx, number, "suspend", customers.TransitionRequest(reason="overdue"), cause="dunning"
    )
    assert (item.status, item.status_cause) == ("SUSPENDED", "dunning")
    assert john.get(f"/services/{number}")["status_cause"] == "dunning"
    expected += block_lines(number)
    assert commands(john, number) == expected
    resumed = john.act(f"/services/{number}/resume", "paid at the counter").attributes
    assert (resumed["status"], resumed["status_cause"]) == ("ACTIVE", None)
    expected += unblock_lines(number)

    assert john.act(f"/services/{number}/suspend", "unpaid").status == 200
    assert john.act(f"/services/{number}/cancel", "contract ended").status == 200
    expected += [*block_lines(number), *removal_lines(number)]
    assert commands(john, number) == expected
    assert assigned(john, number) == []
    pushes = Counter(
        r["action"]
        for r in platform.audit_records()
        if r["action"].startswith("isp.service.network_")
    )
    assert pushes == {
        "isp.service.network_activate": 1,
        "isp.service.network_suspend": 3,
        "isp.service.network_resume": 2,
        "isp.service.network_deactivate": 1,
    }


# --- plugging in another adapter -------------------------------------------------------------


class UnreliableAdapter(RecordingAdapter):
    """Refuses the next `refusals` pushes, then records like the default adapter."""

    refusals = 0
    seen: ClassVar[list[str]] = []

    def _gate(self, operation: str) -> None:
        UnreliableAdapter.seen.append(operation)
        if UnreliableAdapter.refusals > 0:
            UnreliableAdapter.refusals -= 1
            raise ConnectionError("RADIUS server 10.0.0.2:1812 did not answer")

    def activate(self, ctx: Any, service: Any, addresses: Sequence[str]) -> Any:
        self._gate("activate")
        return super().activate(ctx, service, addresses)

    def suspend(self, ctx: Any, service: Any) -> Any:
        self._gate("suspend")
        return super().suspend(ctx, service)

    def resume(self, ctx: Any, service: Any) -> Any:
        self._gate("resume")
        return super().resume(ctx, service)

    def deactivate(self, ctx: Any, service: Any) -> Any:
        self._gate("deactivate")
        return super().deactivate(ctx, service)


class SpyAdapter:
    """Sends nothing and records nothing in the table: remembers what it was asked, and
    refuses to activate while `refuse` is set."""

    calls: ClassVar[list[tuple[str, str, tuple[str, ...]]]] = []
    refuse = False

    def activate(self, ctx: Any, service: Any, addresses: Sequence[str]) -> list[Command]:
        SpyAdapter.calls.append(("activate", service.number, tuple(addresses)))
        if SpyAdapter.refuse:
            raise RuntimeError("router 10.0.0.1 refused the queue")
        return [Command("router", f"/queue simple add name={service.number}")]

    def suspend(self, ctx: Any, service: Any) -> list[Command]:
        SpyAdapter.calls.append(("suspend", service.number, ()))
        return []

    def resume(self, ctx: Any, service: Any) -> list[Command]:
        SpyAdapter.calls.append(("resume", service.number, ()))
        return []

    def deactivate(self, ctx: Any, service: Any) -> list[Command]:
        SpyAdapter.calls.append(("deactivate", service.number, ()))
        return []


@pytest.fixture
def plug_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Choose the network adapter as a deployment does: `DOTMAC_ISP_NETWORK_ADAPTER`."""
    from dotmac.core.settings import reset_settings

    def use(name: str) -> None:
        monkeypatch.setenv("DOTMAC_ISP_NETWORK_ADAPTER", f"{__name__}:{name}")
        reset_settings()

    monkeypatch.setattr(UnreliableAdapter, "refusals", 0)
    monkeypatch.setattr(UnreliableAdapter, "seen", [])
    monkeypatch.setattr(SpyAdapter, "calls", [])
    monkeypatch.setattr(SpyAdapter, "refuse", False)
    yield use


def test_an_adapter_plugged_in_by_environment_does_the_pushes(
    platform: Platform, john: Isp, plug_in: Callable[[str], None]
) -> None:
    plug_in("SpyAdapter")
    _, number = pending_service(john)
    view = activated(john, number)
    assert SpyAdapter.calls == [("activate", number, ("100.64.0.1",))]
    assert view["steps"][STEPS.index("configure")]["detail"] == "1 commands"
    assert commands(john, number) == []  # the spy keeps no record in the table
    assert john.act(f"/services/{number}/suspend", "unpaid").status == 200
    assert john.act(f"/services/{number}/cancel", "bye").status == 200
    assert SpyAdapter.calls[1:] == [("suspend", number, ()), ("deactivate", number, ())]

    # An adapter that refuses the configuration: the activation is undone through it.
    SpyAdapter.refuse = True
    _, refused = pending_service(john, email="r@example.net")
    failed = activated_or_not(john, refused)
    assert failed["status"] == "FAILED"
    assert "router 10.0.0.1 refused the queue" in failed["error"]
    assert SpyAdapter.calls[-2:] == [
        ("activate", refused, ("100.64.0.1",)),  # from a pool of its own
        ("deactivate", refused, ()),
    ]
    assert assigned(john, refused) == []
    assert john.get(f"/services/{refused}")["status"] == "PENDING"


def test_a_failed_push_is_retried_then_recorded_and_synced_later(
    platform: Platform, john: Isp, plug_in: Callable[[str], None]
) -> None:
    plug_in("UnreliableAdapter")
    _, number = pending_service(john)
    activated(john, number)

    UnreliableAdapter.refusals = 2  # the third try goes through
    suspended = john.act(f"/services/{number}/suspend", "unpaid").attributes
    assert (suspended["status"], suspended["network_error"]) == ("SUSPENDED", None)
    assert UnreliableAdapter.seen[-3:] == ["suspend"] * 3
    assert commands(john, number) == [*activation_lines(number), *block_lines(number)]

    UnreliableAdapter.refusals = 3  # every try fails: the transition stands, the failure shows
    resumed = john.act(f"/services/{number}/resume", "paid")
    assert resumed.status == 200, resumed.json
    assert resumed.attributes["status"] == "ACTIVE"
    error = resumed.attributes["network_error"]
    assert error == "resume: ConnectionError: RADIUS server 10.0.0.2:1812 did not answer"
    assert john.get(f"/services/{number}")["network_error"] == error
    assert commands(john, number) == [*activation_lines(number), *block_lines(number)]
    assert [
        r["resource_id"]
        for r in platform.audit_records()
        if r["action"] == "isp.service.network_push_failed"
    ] == [number]

    UnreliableAdapter.refusals = 3  # a sync that still fails changes nothing
    before = items(platform)
    refused = john.call("POST", f"/services/{number}/network-sync", {})
    assert (refused.status, refused.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert items(platform) == before

    synced = john.call("POST", f"/services/{number}/network-sync", {})
    assert synced.status == 200, synced.json
    assert (synced.attributes["status"], synced.attributes["network_error"]) == ("ACTIVE", None)
    assert commands(john, number) == [
        *activation_lines(number),
        *block_lines(number),
        *unblock_lines(number),
    ]
    again = john.call("POST", f"/services/{number}/network-sync", {})  # nothing left to send
    assert again.status == 200
    assert len(commands(john, number)) == 9

    _, pending = pending_service(john, email="p@example.net")
    nothing = john.call("POST", f"/services/{pending}/network-sync", {})
    assert (nothing.status, nothing.error_code) == (409, "INVALID_STATE")


def test_a_failed_compensation_still_ends_the_activation(
    platform: Platform, john: Isp, plug_in: Callable[[str], None]
) -> None:
    """The adapter refuses the configuration and then its removal: the compensation gives
    up after its retries, the record is FAILED with both errors, and the service can be
    activated again (its leftover address goes when it is cancelled)."""
    plug_in("UnreliableAdapter")
    UnreliableAdapter.refusals = 100
    _, number = pending_service(john)
    prefix = address_pool(john)
    view = activated_or_not(john, number)
    assert view["status"] == "FAILED", view
    assert "the clean-up failed too" in view["error"]
    assert view["steps"][-1]["step"] == "abandon"
    assert execution_status(platform, view["execution"])["error"] == "CompensationFailed"
    assert UnreliableAdapter.seen == ["activate", *["deactivate"] * 4]
    assert john.get(f"/services/{number}")["status"] == "PENDING"

    UnreliableAdapter.refusals = 0
    again = activated(john, number, prefix_id=prefix)
    assert again["status"] == "SUCCEEDED"
    assert len(assigned(john, number)) == 2
    assert john.act(f"/services/{number}/cancel", "bye").status == 200
    assert assigned(john, number) == []


# --- calls per read --------------------------------------------------------------------------


def test_reads_make_one_dynamodb_call(john: Isp) -> None:
    """DESIGN §10: the activation is one GetItem, a page of commands one Query."""
    _, number = pending_service(john)
    activated(john, number)
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get(f"/services/{number}/activation")
    call = counting(john, isp_data)
    assert call("GET", f"/services/{number}/activation")[1] == {"dynamodb:GetItem": 1}
    assert call("GET", f"/services/{number}/network-commands")[1] == {"dynamodb:Query": 1}
    _, suspended = call("POST", f"/services/{number}/suspend", {"reason": "unpaid"})
    assert suspended == {
        "dynamodb:GetItem": 2,  # the service; the network state
        "dynamodb:TransactWriteItems": 2,  # the transition; the push
        "dynamodb:Query": 1,  # the service and its history, read once after the commit
    }
