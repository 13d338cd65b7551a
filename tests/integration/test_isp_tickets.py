"""ISP support tickets through the gateway: the lifecycle with its history, SLA deadlines per
priority, the breach sweep (persisted flag, one escalation per breach on the notifications
queue), bad input, tenant isolation, permissions and DynamoDB calls per read."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
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
from tests.integration.test_isp_customers import Isp, counting, items

T0 = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
TICKET = {
    "subject": "No internet since this morning",
    "description": "The ONT shows a red LOS light.",
    "priority": "critical",
    "category": "outage",
}
ESCALATION = "isp.ticket.sla_breach"


class Clock:
    """The tickets module's clock, set by the test (UTC)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from dotmac.isp import tickets

        self.now = T0
        monkeypatch.setattr(tickets, "_now", lambda: self.now)

    def at(self, delta: timedelta) -> str:
        self.now = T0 + delta
        return self.now.isoformat()


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def ticket(john: Isp, **overrides: Any) -> dict[str, Any]:
    return john.created("/tickets", {**TICKET, **overrides})


def sweep(john: Isp, as_of: str | None = None) -> int:
    answer = john.call("POST", "/tickets/sweep", {} if as_of is None else {"as_of": as_of})
    assert answer.status == 200, answer.json
    return int(answer.attributes["breached"])


def ids(john: Isp, query: str) -> list[str]:
    answer = john.call("GET", f"/tickets{query}")
    assert answer.status == 200, answer.json
    return [t["id"] for t in answer.json["data"]]


# --- lifecycle -------------------------------------------------------------------------------


def test_ticket_lifecycle_with_history(platform: Platform, john: Isp, clock: Clock) -> None:
    customer = john.customer()
    created = ticket(john, customer_id=customer, priority="high")
    number = created["id"]
    assert number == created["number"] == "TCK-2026-000001"
    assert (created["status"], created["priority"], created["customer_id"]) == (
        "OPEN",
        "high",
        customer,
    )
    assert created["sla"] == {
        "clock": "24x7",
        "status": "ok",
        "first_response_due": (T0 + timedelta(hours=4)).isoformat(),
        "resolution_due": (T0 + timedelta(hours=24)).isoformat(),
        "first_response_breached": False,
        "resolution_breached": False,
    }
    john_id = platform.user_id(JOHN)
    assert [(h["action"], h["from"], h["to"], h["by"]) for h in created["history"]] == [
        ("create", None, "OPEN", john_id)
    ]
    other = ticket(john, priority="low", category="billing")
    assert other["id"] == "TCK-2026-000002"  # the tenant's gapless sequence

    clock.at(timedelta(hours=1))
    first = john.call("POST", f"/tickets/{number}/respond", {"message": "Technician paged."})
    assert first.status == 200, first.json
    assert (first.attributes["status"], first.attributes["responses"]) == ("IN_PROGRESS", 1)
    assert first.attributes["first_responded_at"] == clock.now.isoformat()
    comment = john.call("POST", f"/tickets/{number}/respond", {"message": "On site at 11:00."})
    assert (comment.attributes["status"], comment.attributes["responses"]) == ("IN_PROGRESS", 2)
    assert comment.attributes["first_responded_at"] == first.attributes["first_responded_at"]

    steps = [
        ("resolve", "fibre spliced", "RESOLVED"),
        ("reopen", "down again", "IN_PROGRESS"),
        ("resolve", "ONT replaced", "RESOLVED"),
        ("close", "customer confirmed", "CLOSED"),
    ]
    for action, reason, status in steps:
        answer = john.act(f"/tickets/{number}/{action}", reason)
        assert answer.status == 200, answer.json
        assert answer.attributes["status"] == status
    for action in ("resolve", "close", "reopen"):
        wrong = john.act(f"/tickets/{number}/{action}")
        assert (wrong.status, wrong.error_code) == (409, "INVALID_STATE"), action
    wrong = john.call("POST", f"/tickets/{number}/respond", {"message": "hello?"})
    assert (wrong.status, wrong.error_code) == (409, "INVALID_STATE")
    wrong = john.call("PATCH", f"/tickets/{number}", {"subject": "edited"})
    assert (wrong.status, wrong.error_code) == (409, "INVALID_STATE")
    assert john.act(f"/tickets/{other['id']}/close").status == 409  # OPEN cannot close

    got = john.get(f"/tickets/{number}")
    assert [(h["action"], h["from"], h["to"], h["reason"]) for h in got["history"]] == [
        ("create", None, "OPEN", "created"),
        ("respond", "OPEN", "IN_PROGRESS", "Technician paged."),
        ("respond", "IN_PROGRESS", "IN_PROGRESS", "On site at 11:00."),
        ("resolve", "IN_PROGRESS", "RESOLVED", "fibre spliced"),
        ("reopen", "RESOLVED", "IN_PROGRESS", "down again"),
        ("resolve", "IN_PROGRESS", "RESOLVED", "ONT replaced"),
        ("close", "RESOLVED", "CLOSED", "customer confirmed"),
    ]
    assert [h["details"]["first_response"] for h in got["history"][1:3]] == [True, False]
    assert {h["by"] for h in got["history"]} == {john_id}
    assert got["sla"]["status"] == "ok" and got["closed_at"] == clock.now.isoformat()
    actions = Counter(r["action"] for r in platform.audit_records() if r["resource_id"] == number)
    assert actions == {
        "isp.ticket.create": 1,
        "isp.ticket.respond": 2,
        "isp.ticket.resolve": 2,
        "isp.ticket.reopen": 1,
        "isp.ticket.close": 1,
    }

    assert ids(john, "") == [number, other["id"]]
    assert ids(john, "?status=CLOSED") == [number]
    assert ids(john, "?status=OPEN") == [other["id"]]
    assert ids(john, "?sla=ok") == [other["id"]]  # only open tickets are on the SLA board
    page = john.call("GET", "/tickets?limit=1")
    assert len(page.json["data"]) == 1 and page.json["meta"]["next_cursor"]
    rest = ids(john, f"?limit=1&cursor={page.json['meta']['next_cursor']}")
    assert rest == [other["id"]]
    assert platform.notifications(ESCALATION) == []


def test_a_priority_change_recomputes_the_deadlines_from_creation(
    platform: Platform, john: Isp, clock: Clock
) -> None:
    number = ticket(john, priority="low")["id"]
    clock.at(timedelta(minutes=30))
    patched = john.call("PATCH", f"/tickets/{number}", {"priority": "urgent", "subject": "Down"})
    assert patched.status == 200, patched.json
    sla = patched.attributes["sla"]
    assert (sla["first_response_due"], sla["resolution_due"]) == (
        (T0 + timedelta(hours=1)).isoformat(),
        (T0 + timedelta(hours=8)).isoformat(),
    )
    assert patched.attributes["subject"] == "Down"
    assert patched.attributes["history"][-1]["action"] == "reprioritise"
    assert patched.attributes["history"][-1]["details"] == {"from": "low", "to": "urgent"}
    # Raised to critical after 30 min: the first response is already late (recorded now).
    raised = john.call("PATCH", f"/tickets/{number}", {"priority": "critical"})
    assert raised.attributes["sla"]["first_response_breached"] is True
    assert [h["action"] for h in raised.attributes["history"][-2:]] == ["reprioritise", "breach"]
    (sent,) = platform.notifications(ESCALATION)
    assert (sent["id"], sent["data"]["kind"]) == (f"tck-{number}-first_response", "first_response")
    assert sweep(john) == 0
    lowered = john.call("PATCH", f"/tickets/{number}", {"priority": "low"})
    assert lowered.attributes["sla"]["first_response_breached"] is True  # never undone
    assert platform.notifications(ESCALATION) == []


# --- the SLA sweep ---------------------------------------------------------------------------


def test_breaches_are_recorded_once_and_escalated_once(
    platform: Platform, john: Isp, clock: Clock
) -> None:
    platform.notifications(ESCALATION)  # the seed's welcome messages
    number = ticket(john)["id"]  # critical: 15 min / 4 h
    assert ids(john, "?sla=ok") == [number]
    clock.at(timedelta(minutes=12))  # exactly 20% left: still ok
    assert ids(john, "?sla=at_risk") == []
    clock.at(timedelta(minutes=13))
    assert ids(john, "?sla=at_risk") == [number]
    assert ids(john, "?sla=ok") == []
    assert john.get(f"/tickets/{number}")["sla"]["status"] == "at_risk"
    assert sweep(john) == 0  # nothing due yet
    assert platform.notifications(ESCALATION) == []

    as_of = clock.at(timedelta(minutes=16))
    future = john.call("POST", "/tickets/sweep", {"as_of": (clock.now + timedelta(1)).isoformat()})
    assert (future.status, future.error_code) == (400, "VALIDATION_ERROR")
    assert sweep(john, as_of) == 1
    got = john.get(f"/tickets/{number}")
    assert got["sla"]["first_response_breached"] is True
    assert got["sla"]["resolution_breached"] is False
    assert got["sla"]["status"] == "breached"
    assert got["history"][-1]["action"] == "breach"
    assert got["history"][-1]["details"] == {
        "kind": "first_response",
        "due": (T0 + timedelta(minutes=15)).isoformat(),
    }
    (sent,) = platform.notifications(ESCALATION)
    assert sent["id"] == f"tck-{number}-first_response"
    assert sent["tenant_id"] == "abc-corp" and sent["recipient"] == "role:isp_manager"
    assert sent["data"]["ticket"] == number and sent["data"]["kind"] == "first_response"
    assert sweep(john, as_of) == 0 and sweep(john) == 0  # again: nothing new
    assert platform.notifications(ESCALATION) == []
    assert ids(john, "?sla=breached") == [number]
    assert ids(john, "?sla=breached&status=OPEN") == [number]
    assert ids(john, "?sla=breached&status=IN_PROGRESS") == []
    assert ids(john, "?sla=at_risk") == []

    # A late first response changes nothing more; the resolution timer runs on.
    clock.at(timedelta(minutes=20))
    late = john.call("POST", f"/tickets/{number}/respond", {"message": "Sorry for the wait."})
    assert late.attributes["status"] == "IN_PROGRESS"
    assert platform.notifications(ESCALATION) == []
    clock.at(timedelta(hours=4))
    assert sweep(john) == 0  # on the deadline: not breached
    clock.at(timedelta(hours=4, minutes=1))
    assert sweep(john) == 1
    (sent,) = platform.notifications(ESCALATION)
    assert (sent["id"], sent["data"]["kind"]) == (f"tck-{number}-resolution", "resolution")
    assert john.get(f"/tickets/{number}")["sla"]["resolution_breached"] is True
    assert sweep(john) == 0
    assert platform.notifications(ESCALATION) == []
    john.act(f"/tickets/{number}/resolve", "fixed, late")
    assert ids(john, "?sla=breached") == []  # resolved: off the SLA board
    breaches = [
        r
        for r in platform.audit_records()
        if r["action"] in ("isp.ticket.breach", "isp.ticket.sweep")
    ]
    assert Counter(r["action"] for r in breaches) == {"isp.ticket.breach": 2, "isp.ticket.sweep": 7}


def test_a_late_event_records_its_breach_and_the_sweep_sees_each_tenant_alone(
    platform: Platform, globex: Platform, john: Isp, clock: Clock
) -> None:
    from dotmac.isp import tickets

    platform.notifications(ESCALATION)
    late = ticket(john, priority="urgent")["id"]  # 1 h / 8 h
    both = ticket(john, priority="critical")["id"]
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    mine_there = ticket(theirs, priority="critical")["id"]
    assert mine_there == "TCK-2026-000001"  # each tenant has its own sequence

    clock.at(timedelta(hours=1, minutes=1))
    answer = john.call("POST", f"/tickets/{late}/respond", {"message": "Looking."})
    assert answer.attributes["sla"]["first_response_breached"] is True
    assert [e["id"] for e in platform.notifications(ESCALATION)] == [f"tck-{late}-first_response"]

    # The scheduler's sweep, one tenant at a time; both deadlines of `both` passed.
    clock.at(timedelta(hours=5))
    assert tickets.sweep_breaches("abc-corp") == 2
    sent = sorted(e["id"] for e in platform.notifications(ESCALATION))
    assert sent == [f"tck-{both}-first_response", f"tck-{both}-resolution"]
    assert tickets.sweep_breaches("abc-corp") == 0
    # The same number names each tenant's own ticket; abc's sweep left globex's alone.
    assert john.get(f"/tickets/{mine_there}")["sla"]["first_response_breached"] is True  # `late`
    assert theirs.get(f"/tickets/{mine_there}")["sla"]["first_response_breached"] is False
    assert tickets.sweep_all()["breached"] == 2  # globex's ticket (abc's are recorded)
    assert [e["tenant_id"] for e in platform.notifications(ESCALATION)] == [GLOBEX, GLOBEX]
    assert theirs.get(f"/tickets/{mine_there}")["sla"]["resolution_breached"] is True
    assert platform.notifications(ESCALATION) == []


# --- bad input, isolation, roles, calls ------------------------------------------------------


def test_bad_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    number = ticket(john)["id"]
    before = items(platform)
    bad: list[dict[str, Any]] = [
        {**TICKET, "priority": "asap"},
        {**TICKET, "subject": ""},
        {**TICKET, "subject": "x" * 201},
        {**TICKET, "description": ""},
        {**TICKET, "category": "Outage!"},
        {**TICKET, "customer_id": "nope"},
        {**TICKET, "customer_id": "0123456789abcdef"},  # no such customer
        {**TICKET, "status": "CLOSED"},  # states move only by transitions
        {"subject": "No description"},
        [TICKET],
    ]
    for body in bad:
        answer = john.call("POST", "/tickets", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"], body
    for patch in ({}, {"priority": None}, {"priority": "soon"}, {"status": "OPEN"}):
        assert john.call("PATCH", f"/tickets/{number}", patch).status == 400, patch
    for body in ({}, {"message": ""}, {"message": "x" * 2001}, {"message": "ok", "x": 1}):
        assert john.call("POST", f"/tickets/{number}/respond", body).status == 400, body
    for action in ("resolve", "close", "reopen"):
        for body in ({}, {"reason": ""}, {"reason": "x" * 501}):
            assert john.call("POST", f"/tickets/{number}/{action}", body).status == 400
    for body in ({"as_of": "yesterday"}, {"as_of": "2026-04-01T09:30:00"}, {"x": 1}):
        assert john.call("POST", "/tickets/sweep", body).status == 400, body
    for query in ("?status=DONE", "?sla=late", "?limit=0", "?cursor=nope"):
        assert john.call("GET", f"/tickets{query}").status == 400, query
    for missing in ("/tickets/TCK-2026-999999", "/tickets/nope"):
        assert john.call("GET", missing).status == 404
        assert john.call("PATCH", missing, {"subject": "X"}).status == 404
        assert john.call("POST", f"{missing}/respond", {"message": "x"}).status == 404
        assert john.act(f"{missing}/resolve").status == 404
    assert items(platform) == before
    assert john.get(f"/tickets/{number}")["status"] == "OPEN"


def test_tenants_and_roles_reach_only_their_own_tickets(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    number = ticket(john)["id"]
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    before = items(platform)
    for method, path, body in [
        ("GET", f"/tickets/{number}", None),
        ("PATCH", f"/tickets/{number}", {"priority": "low"}),
        ("POST", f"/tickets/{number}/respond", {"message": "x"}),
        ("POST", f"/tickets/{number}/resolve", {"reason": "x"}),
        ("POST", f"/tickets/{number}/close", {"reason": "x"}),
        ("POST", f"/tickets/{number}/reopen", {"reason": "x"}),
    ]:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    assert theirs.call("GET", "/tickets").json["data"] == []
    assert theirs.call("GET", "/tickets?sla=ok").json["data"] == []
    assert items(platform) == before

    for user in (TOM, JANE, MIKE):  # technician, portal customer, CRM rep
        client = Isp(platform, platform.token(user))
        for method, path, body in [
            ("GET", "/tickets", None),
            ("GET", f"/tickets/{number}", None),
            ("POST", "/tickets", TICKET),
            ("PATCH", f"/tickets/{number}", {"priority": "low"}),
            ("POST", f"/tickets/{number}/respond", {"message": "x"}),
            ("POST", f"/tickets/{number}/resolve", {"reason": "x"}),
            ("POST", "/tickets/sweep", {}),
        ]:
            answer = client.call(method, path, body)
            assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (user, path)
    assert items(platform) == before
    sarah = Isp(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    assert sarah.get(f"/tickets/{number}")["status"] == "OPEN"
    answer = sarah.call("POST", f"/tickets/{number}/respond", {"message": "On it."})
    assert answer.status == 200
    assert sarah.call("POST", "/tickets/sweep", {}).status == 200


def ticket_data(service: str, operation: str, params: str) -> bool:
    """Calls on ticket items, the TCK sequence, audit records written on their own, and the
    escalations sent (not the seed's provisioning workflow, which may still be sending the
    tenant's welcome message)."""
    if service == "sqs":
        return "isp.ticket" in params
    return "ISP_" in params or "SEQ#TCK" in params or '"isp.' in params


def test_reads_make_one_dynamodb_call(platform: Platform, john: Isp, clock: Clock) -> None:
    """DESIGN §10: a get (with its history) or a list page is one DynamoDB call."""
    customer = john.customer()
    number = ticket(john)["id"]
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get(f"/tickets/{number}")
    call = counting(john, ticket_data)
    assert call("GET", f"/tickets/{number}")[1] == {"dynamodb:Query": 1}
    for query in ("", "?status=OPEN", "?sla=ok", "?sla=at_risk", "?sla=breached", "?limit=1"):
        assert call("GET", f"/tickets{query}")[1] == {"dynamodb:Query": 1}, query
    assert call("POST", "/tickets", TICKET)[1] == {
        "dynamodb:GetItem": 1,  # the TCK sequence
        "dynamodb:TransactWriteItems": 1,
    }
    assert call("POST", "/tickets", {**TICKET, "customer_id": customer})[1] == {
        "dynamodb:GetItem": 2,  # + the customer
        "dynamodb:TransactWriteItems": 1,
    }
    assert call("POST", f"/tickets/{number}/respond", {"message": "hi"})[1] == {
        "dynamodb:GetItem": 1,
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:Query": 1,
    }
    assert call("POST", "/tickets/sweep", {})[1] == {
        "dynamodb:Query": 1,  # nothing due
        "dynamodb:PutItem": 1,  # the sweep's audit record
    }
    clock.at(timedelta(hours=5))
    _, swept = call("POST", "/tickets/sweep", {})
    assert swept == {
        "dynamodb:Query": 1,
        "dynamodb:GetItem": 3,  # per due ticket (3): the consistent re-read
        "dynamodb:TransactWriteItems": 3,  # and its breaches
        "sqs:SendMessage": 5,  # resolution (answered one) + both kinds x 2
        "dynamodb:PutItem": 1,
    }
