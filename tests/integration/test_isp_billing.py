"""ISP subscriber billing and the customer portal through the gateway: the prorated first
invoice of a prepaid activation, postpaid cycles, runs that never bill a day twice, the
dunning ladder blocking the customer and suspending his services through the network
adapter, the payment that reconnects him, the portal's scoping (Jane sees only her own
records), bad input, tenant isolation, permissions and DynamoDB calls per read."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.integration.billing_fixtures import drain
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
from tests.integration.isp_activation import activated, address_pool
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.test_isp_customers import Isp, counting, isp_data, items

PREPAID = {"billing_day": 15, "billing_mode": "prepaid"}
POSTPAID = {"billing_day": 1, "billing_mode": "postpaid"}


class Clock:
    """The services module's clock (the day a service starts), set by the test."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from dotmac.isp import services

        self.now = datetime(2026, 4, 10, 9, 30, tzinfo=UTC)
        monkeypatch.setattr(services, "_now", lambda: self.now)

    def on(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 9, 30, tzinfo=UTC)


class Staff(Isp):
    """John's calls, with an address pool for the activations."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform, platform.token(JOHN))
        self.pool = address_pool(self)


@pytest.fixture
def john(platform: Platform) -> Staff:
    return Staff(platform)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def active_service(john: Staff, clock: Clock, customer: str, plan: str, on: date) -> str:
    """A service of `customer` on `plan`, activated on `on` through the activation workflow
    (which issues a prepaid customer's first invoice)."""
    number = str(john.created("/services", {"customer_id": customer, "plan_id": plan})["id"])
    clock.on(on)
    activated(john, number, prefix_id=john.pool)
    return number


def first_invoice(john: Staff, number: str) -> str | None:
    """The invoice the activation issued (None for a postpaid customer)."""
    invoice = john.get(f"/services/{number}/activation")["invoice"]
    return None if invoice is None else str(invoice)


def invoice_again(number: str) -> str | None:
    from dotmac.core.tenancy import TenantContext
    from dotmac.isp import subscriber_billing

    return subscriber_billing.invoice_activation(TenantContext(ABC, "workflow"), number)


def run_day(john: Staff, as_of: date) -> None:
    answer = john.call("POST", "/billing/days", {"as_of": as_of.isoformat()})
    assert answer.status == 202, answer.json
    drain(john.platform)


def invoices(client: Isp, customer: str) -> list[dict[str, Any]]:
    answer = client.call("GET", f"/customers/{customer}/invoices")
    assert answer.status == 200, answer.json
    return [{"number": i["id"], **i["attributes"]} for i in answer.json["data"]]


def status(john: Staff, path: str) -> str:
    return str(john.get(path)["status"])


def link(platform: Platform, email: str, customer: str) -> Isp:
    """Link the portal user `email` to `customer`; returns his calls (a fresh token)."""
    admin = platform.token(JOHN)
    users = platform.call("GET", "/api/v1/users?limit=100", admin).json["data"]
    user = next(u["id"] for u in users if u["attributes"]["email"] == email)
    answer = platform.call("PATCH", f"/api/v1/users/{user}", admin, body={"customer_id": customer})
    assert answer.status == 200, answer.json
    return Isp(platform, platform.token(email))


# --- invoicing -----------------------------------------------------------------------------


def test_a_prepaid_activation_invoices_the_prorated_rest_of_the_cycle_once(
    john: Staff, clock: Clock
) -> None:
    customer = john.customer(**PREPAID)
    number = active_service(john, clock, customer, john.plan(price="30.00"), date(2026, 4, 10))

    invoice = first_invoice(john, number)
    assert invoice == "ISP-2026-000001"
    assert invoice_again(number) is None  # the days are invoiced: nothing more
    (found,) = invoices(john, customer)
    # 5 of the 31 days of the cycle [03-15, 04-15)
    assert (found["number"], found["total"], found["status"]) == (invoice, "4.84", "OPEN")
    assert (found["issued_on"], found["due_on"]) == ("2026-04-10", "2026-05-10")
    assert found["lines"][0]["description"].endswith("2026-04-10 to 2026-04-14 (prorated)")
    assert john.get(f"/services/{number}")["status"] == "ACTIVE"
    moved = john.get(f"/customers/{customer}")  # NEW until his first service is active
    assert moved["status"] == "ACTIVE"
    assert (moved["history"][-1]["action"], moved["history"][-1]["reason"]) == (
        "activate",
        "first service activated",
    )

    run_day(john, date(2026, 4, 15))  # the billing day: the cycle ahead, in full
    run_day(john, date(2026, 4, 15))  # again: nothing more
    newest, first = invoices(john, customer)
    assert first["number"] == invoice
    assert (newest["total"], newest["period"]) == ("30.00", "2026-04-15/2026-05-15")
    account = john.get(f"/customers/{customer}/billing-account")
    assert (account["balance"], account["invoiced"]) == ("34.84", "34.84")


def test_postpaid_customers_are_billed_when_the_cycle_ends(john: Staff, clock: Clock) -> None:
    customer = john.customer(**POSTPAID)
    number = active_service(john, clock, customer, john.plan(price="30.00"), date(2026, 4, 20))
    other_day = john.customer(billing_day=2, billing_mode="postpaid")
    active_service(john, clock, other_day, john.plan(name="Other"), date(2026, 4, 20))

    assert first_invoice(john, number) is None  # postpaid: billed in arrears
    assert invoice_again(number) is None
    run_day(john, date(2026, 5, 1))
    (first,) = invoices(john, customer)
    assert first["total"] == "11.00"  # 11 of April's 30 days
    assert invoices(john, other_day) == []  # not its billing day

    run_day(john, date(2026, 7, 1))  # June 1st was missed: both cycles, one line each
    newest = next(i for i in invoices(john, customer) if i["category"] == "SUBSCRIPTION")
    assert [line["amount"] for line in newest["lines"]] == ["30.00", "30.00"]
    assert newest["period"] == "2026-05-01/2026-07-01"


def test_parallel_runs_bill_each_day_once(john: Staff, clock: Clock) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from dotmac.core.errors import ConflictError
    from dotmac.core.tenancy import TenantContext
    from dotmac.isp import subscriber_billing

    customer = john.customer(billing_day=15, billing_mode="postpaid")
    active_service(john, clock, customer, john.plan(), date(2026, 4, 15))
    ctx = TenantContext(ABC, "worker")

    def bill(_: int) -> str | None:
        try:
            return subscriber_billing.bill(ctx, customer, date(2026, 5, 15))
        except ConflictError:  # lost every retry to the others: billed nothing
            return None

    with ThreadPoolExecutor(6) as pool:
        numbers = [n for n in pool.map(bill, range(6)) if n is not None]
    assert len(numbers) == 1
    assert [i["total"] for i in invoices(john, customer)] == ["30.00"]


# --- dunning, blocking and reconnection ----------------------------------------------------

LADDER = {
    "payment_terms_days": 10,
    "late_fee": {"kind": "flat", "amount": "5.00"},
    "dunning": [
        {"after_days": 1, "action": "remind"},
        {"after_days": 3, "action": "late_fee"},
        {"after_days": 5, "action": "suspend"},
        {"after_days": 20, "action": "deactivate"},
    ],
}


def pushed(john: Staff, number: str) -> list[str]:
    """The operations pushed to the network for a service, in order (each is several lines)."""
    answer = john.call("GET", f"/services/{number}/network-commands?limit=100")
    operations = [c["attributes"]["operation"] for c in answer.json["data"]]
    return [op for i, op in enumerate(operations) if i == 0 or operations[i - 1] != op]


def receivables(john: Staff) -> list[dict[str, Any]]:
    return list(john.get("/dashboard")["receivables"])


def test_dunning_blocks_the_customer_suspends_his_services_and_a_payment_reconnects(
    platform: Platform, john: Staff, clock: Clock
) -> None:
    customer = john.customer(**PREPAID)
    answer = john.call("PUT", f"/customers/{customer}/billing-account", LADDER)
    assert answer.status == 200, answer.json
    assert answer.attributes["dunning"][-1] == {"after_days": 20, "action": "deactivate"}
    number = active_service(john, clock, customer, john.plan(price="30.00"), date(2026, 4, 15))
    invoice = first_invoice(john, number)
    due = date(2026, 4, 25)
    assert john.get(f"/customers/{customer}/invoices/{invoice}")["due_on"] == due.isoformat()
    platform.notifications("isp.billing.reminder")

    run_day(john, due + timedelta(days=1))
    (reminder,) = platform.notifications("isp.billing.reminder")
    assert (reminder["recipient"], reminder["data"]["invoice"]) == ("ada.obi@example.net", invoice)
    assert john.get(f"/customers/{customer}/invoices/{invoice}")["overdue"] is True

    run_day(john, due + timedelta(days=3))  # the late fee
    assert john.get(f"/customers/{customer}/billing-account")["balance"] == "35.00"
    assert status(john, f"/customers/{customer}") == "ACTIVE"

    run_day(john, due + timedelta(days=5))  # suspend: the customer is blocked
    assert status(john, f"/customers/{customer}") == "BLOCKED"
    service = john.get(f"/services/{number}")
    assert (service["status"], service["status_cause"]) == ("SUSPENDED", "dunning")
    (owed,) = receivables(john)
    assert (owed["currency"], owed["outstanding"], owed["overdue"]) == (
        "USD",
        {"amount": "35.00", "currency": "USD"},
        {"amount": "30.00", "currency": "USD"},  # the late fee is not overdue yet
    )
    assert pushed(john, number)[-1] == "suspend"

    jane = link(platform, JANE, customer)
    assert jane.get("/portal/billing-account")["balance"] == "35.00"
    partial = jane.call(
        "POST", "/portal/payments", {"amount": "10.00"}, **{"Idempotency-Key": "p1"}
    )
    assert partial.status == 201, partial.json
    assert status(john, f"/customers/{customer}") == "BLOCKED"  # still owes 25.00

    paid = jane.call("POST", "/portal/payments", {"amount": "25.00"}, **{"Idempotency-Key": "p2"})
    assert paid.status == 201, paid.json
    assert status(john, f"/customers/{customer}") == "ACTIVE"
    service = john.get(f"/services/{number}")
    assert (service["status"], service.get("status_cause")) == ("ACTIVE", None)
    assert pushed(john, number) == ["activate", "suspend", "resume"]
    history = john.get(f"/customers/{customer}")["history"]
    assert [(h["action"], h["reason"]) for h in history[-2:]] == [
        ("block", "dunning: invoice overdue"),
        ("activate", "payment cleared the balance"),
    ]
    assert receivables(john) == []  # nothing owed, nothing overdue


def test_a_manual_suspension_is_not_lifted_by_a_payment(
    platform: Platform, john: Staff, clock: Clock
) -> None:
    customer = john.customer(**PREPAID)
    john.call("PUT", f"/customers/{customer}/billing-account", LADDER)
    plan = john.plan()
    number = active_service(john, clock, customer, plan, date(2026, 4, 15))
    kept = active_service(john, clock, customer, plan, date(2026, 4, 15))
    assert john.act(f"/services/{kept}/suspend", "customer asked for a pause").status == 200
    run_day(john, date(2026, 4, 15))
    run_day(john, date(2026, 4, 25) + timedelta(days=5))
    assert status(john, f"/services/{number}") == "SUSPENDED"

    balance = john.get(f"/customers/{customer}/billing-account")["balance"]
    paid = john.call(
        "POST", f"/customers/{customer}/payments", {"amount": balance}, **{"Idempotency-Key": "k"}
    )
    assert paid.status == 201, paid.json
    assert status(john, f"/services/{number}") == "ACTIVE"
    assert status(john, f"/services/{kept}") == "SUSPENDED"


def test_the_last_step_deactivates_and_billing_stops(john: Staff, clock: Clock) -> None:
    customer = john.customer(**PREPAID)
    john.call("PUT", f"/customers/{customer}/billing-account", LADDER)
    active_service(john, clock, customer, john.plan(), date(2026, 4, 15))
    run_day(john, date(2026, 4, 15))
    run_day(john, date(2026, 4, 25) + timedelta(days=5))
    run_day(john, date(2026, 4, 25) + timedelta(days=20))
    assert status(john, f"/customers/{customer}") == "INACTIVE"
    billed = len(invoices(john, customer))
    run_day(john, date(2026, 5, 15))  # his billing day: nothing
    assert len(invoices(john, customer)) == billed


# --- the portal ----------------------------------------------------------------------------


def test_the_portal_shows_jane_her_own_records_and_nothing_else(
    platform: Platform, john: Staff, clock: Clock
) -> None:
    mine, theirs = john.customer(**PREPAID), john.customer(**PREPAID, name="Other")
    plan = john.plan()
    own_service = active_service(john, clock, mine, plan, date(2026, 4, 10))
    other_service = active_service(john, clock, theirs, plan, date(2026, 4, 10))
    own_invoice = first_invoice(john, own_service)
    other_invoice = first_invoice(john, other_service)
    other_ticket = john.created(
        "/tickets", {"customer_id": theirs, "subject": "x", "description": "y"}
    )["id"]
    jane = link(platform, JANE, mine)

    assert jane.get("/portal/profile")["email"] == "ada.obi@example.net"
    assert [s["id"] for s in jane.call("GET", "/portal/services").json["data"]] == [own_service]
    assert jane.get(f"/portal/services/{own_service}")["status"] == "ACTIVE"
    assert [i["id"] for i in jane.call("GET", "/portal/invoices").json["data"]] == [own_invoice]
    assert jane.get(f"/portal/invoices/{own_invoice}")["total"] == "4.84"
    opened = jane.call(
        "POST", "/portal/tickets", {"subject": "Slow at night", "description": "Since Monday"}
    )
    assert opened.status == 201, opened.json
    ticket = opened.json["data"]["id"]
    assert opened.header("Location") == f"/api/v1/isp/portal/tickets/{ticket}"
    assert [t["id"] for t in jane.call("GET", "/portal/tickets").json["data"]] == [ticket]
    assert john.get(f"/tickets/{ticket}")["customer_id"] == mine
    # Staff's answer shows in the customer's list (one Query), as in the ticket itself.
    answered = john.call("POST", f"/tickets/{ticket}/respond", {"message": "Checking the line."})
    assert answered.status == 200, answered.json
    listed, counted = counting(jane, isp_data)("GET", "/portal/tickets")
    assert counted == Counter({"dynamodb:Query": 1})
    (summary,) = listed.json["data"]
    assert (summary["attributes"]["status"], summary["attributes"]["responses"]) == (
        jane.get(f"/portal/tickets/{ticket}")["status"],
        1,
    )

    for path in (
        f"/portal/services/{other_service}",
        f"/portal/invoices/{other_invoice}",
        f"/portal/tickets/{other_ticket}",
    ):
        assert jane.call("GET", path).status == 404, path
    for path in (
        "/customers",
        f"/customers/{theirs}",
        f"/customers/{theirs}/invoices",
        f"/customers/{mine}/invoices",
        "/services",
        "/tickets",
        "/dashboard",
    ):
        assert jane.call("GET", path).status == 403, path
    refused = jane.call(
        "POST", "/portal/tickets", {"subject": "x", "description": "y", "priority": "critical"}
    )
    assert refused.status == 400
    unlinked = john.call("GET", "/portal/profile")
    assert (unlinked.status, unlinked.error_code) == (403, "NOT_LINKED_TO_CUSTOMER")
    tom = Isp(platform, platform.token(TOM))
    assert tom.call("GET", "/portal/invoices").status == 403
    assert tom.call("GET", f"/customers/{mine}/invoices").status == 403


def test_payments_refuse_bad_input_and_replay_by_key(
    platform: Platform, john: Staff, clock: Clock
) -> None:
    customer = john.customer(**PREPAID)
    active_service(john, clock, customer, john.plan(), date(2026, 4, 10))
    path = f"/customers/{customer}/payments"
    before = items(platform, "ISP_SUB")
    for body, headers in (
        ({"amount": "4.84"}, {}),  # no Idempotency-Key
        ({"amount": "0"}, {"Idempotency-Key": "a"}),
        ({"amount": "-1"}, {"Idempotency-Key": "a"}),
        ({"amount": "1.001"}, {"Idempotency-Key": "a"}),
        ({"amount": "1", "currency": "EUR"}, {"Idempotency-Key": "a"}),
        ({"amount": "1", "method": "barter"}, {"Idempotency-Key": "a"}),
        ({"amount": "1", "extra": 1}, {"Idempotency-Key": "a"}),
    ):
        answer = john.call("POST", path, body, **headers)
        assert answer.status == 400, (body, answer.json)
        assert answer.error_code == "VALIDATION_ERROR"
    assert items(platform, "ISP_SUB") == before

    first = john.call("POST", path, {"amount": "2.00"}, **{"Idempotency-Key": "same"})
    again = john.call("POST", path, {"amount": "2.00"}, **{"Idempotency-Key": "same"})
    assert (first.status, again.status) == (201, 200)
    assert first.json["data"]["id"] == again.json["data"]["id"]
    reused = john.call("POST", path, {"amount": "3.00"}, **{"Idempotency-Key": "same"})
    assert (reused.status, reused.error_code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert john.get(f"/customers/{customer}/billing-account")["balance"] == "2.84"
    bad_ladder = {"dunning": [{"after_days": 5, "action": "explode"}]}
    assert john.call("PUT", f"/customers/{customer}/billing-account", bad_ladder).status == 400


def test_account_settings_refuse_null_for_a_setting_that_cannot_be_cleared(
    john: Staff,
) -> None:
    customer = john.customer(**PREPAID)
    path = f"/customers/{customer}/billing-account"
    before = john.get(path)
    for name in ("payment_terms_days", "tax_inclusive"):  # found by `make fuzz`: a 500
        answer = john.call("PUT", path, {name: None})
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), answer.json
        assert [d["field"] for d in answer.json["error"]["details"]] == [name]
    assert john.get(path) == before
    cleared = john.call("PUT", path, {"billing_email": "a@b.example", "late_fee": None})
    assert cleared.status == 200, cleared.json


def test_another_tenant_never_reaches_a_customers_billing(
    globex: Platform, john: Staff, clock: Clock
) -> None:
    platform = globex
    customer = john.customer(**PREPAID)
    number = active_service(john, clock, customer, john.plan(), date(2026, 4, 10))
    invoice = first_invoice(john, number)
    paid = john.call(
        "POST", f"/customers/{customer}/payments", {"amount": "1.00"}, **{"Idempotency-Key": "k"}
    )
    payment = paid.json["data"]["id"]
    globex = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))

    for path in (
        f"/customers/{customer}/billing-account",
        f"/customers/{customer}/invoices/{invoice}",
        f"/customers/{customer}/payments/{payment}",
    ):
        assert globex.call("GET", path).status == 404, path
    for path in (f"/customers/{customer}/invoices", f"/customers/{customer}/payments"):
        assert globex.call("GET", path).status == 404, path  # not "none", as for its own
    for method, path, body in (
        ("POST", f"/customers/{customer}/payments", {"amount": "1.00"}),
        ("PUT", f"/customers/{customer}/billing-account", {"payment_terms_days": 1}),
        (
            "POST",
            f"/customers/{customer}/invoices/{invoice}/credit-notes",
            {"amount": "1", "reason": "x"},
        ),
    ):
        answer = globex.call(method, path, body, **{"Idempotency-Key": "g"})
        assert answer.status == 404, (path, answer.json)
    assert john.get(f"/customers/{customer}/billing-account")["paid"] == "1.00"
    sarah = Isp(platform, platform.token(SARAH))
    assert sarah.call("GET", f"/customers/{customer}/invoices").status == 200


def test_billing_reads_take_one_call(john: Staff, clock: Clock, platform: Platform) -> None:
    customer = john.customer(**PREPAID)
    number = active_service(john, clock, customer, john.plan(), date(2026, 4, 10))
    invoice = first_invoice(john, number)
    jane = link(platform, JANE, customer)
    fresh = john.customer(**POSTPAID)
    accounts = [pk for pk, _ in items(platform, "#BILLING")]
    assert any(customer in pk for pk in accounts)
    assert not any(fresh in pk for pk in accounts)  # no account yet: a new one is shown
    for client, path, expected in (
        (john, f"/customers/{customer}/billing-account", {"dynamodb:TransactGetItems": 1}),
        (john, f"/customers/{fresh}/billing-account", {"dynamodb:TransactGetItems": 1}),
        (john, f"/customers/{customer}/invoices", {"dynamodb:Query": 1}),
        (john, f"/customers/{customer}/invoices/{invoice}", {"dynamodb:GetItem": 1}),
        # No payment yet: an empty first page also reads the customer (404 if none).
        (john, f"/customers/{customer}/payments", {"dynamodb:Query": 1, "dynamodb:GetItem": 1}),
        (jane, "/portal/invoices", {"dynamodb:Query": 1}),
        (jane, f"/portal/invoices/{invoice}", {"dynamodb:GetItem": 1}),
        (jane, "/portal/services", {"dynamodb:Query": 1}),
    ):
        _, counted = counting(client, isp_data)("GET", path)
        assert counted == Counter(expected), (path, counted)


def _change_plan(john: Staff, clock: Clock, number: str, plan: str, on: date) -> None:
    clock.on(on)
    answer = john.call("POST", f"/services/{number}/plan-change", {"plan_id": plan})
    assert answer.status == 200, answer.json


@pytest.mark.parametrize(
    ("old", "new", "amounts", "credited", "total"),
    [
        # upgrade: 15 of 30 days at 60.00 less 15 days of 30.00 unused, then a full cycle
        ("30.00", "60.00", ["30.00", "60.00"], "15.00", "75.00"),
        # downgrade: the 30.00 credit covers the 15.00 charge and half the next cycle
        ("60.00", "30.00", ["15.00", "30.00"], "30.00", "15.00"),
    ],
)
def test_a_prepaid_plan_change_credits_the_unused_days_on_the_next_invoice(
    john: Staff,
    clock: Clock,
    old: str,
    new: str,
    amounts: list[str],
    credited: str,
    total: str,
) -> None:
    customer = john.customer(**PREPAID)
    number = active_service(
        john, clock, customer, john.plan(name="Old", price=old), date(2026, 4, 15)
    )
    _change_plan(john, clock, number, john.plan(name="New", price=new), date(2026, 4, 30))
    assert len(invoices(john, customer)) == 1  # nothing billed at the change itself

    run_day(john, date(2026, 5, 15))
    newest = invoices(john, customer)[0]
    assert [line["amount"] for line in newest["lines"]] == amounts
    assert (newest["discount_total"], newest["total"]) == (credited, total)
    assert "after the plan change" in newest["lines"][0]["description"]


def test_a_postpaid_plan_change_bills_each_plan_for_its_days(john: Staff, clock: Clock) -> None:
    customer = john.customer(**POSTPAID)
    number = active_service(
        john, clock, customer, john.plan(name="Old", price="30.00"), date(2026, 4, 1)
    )
    run_day(john, date(2026, 5, 1))
    _change_plan(john, clock, number, john.plan(name="New", price="60.00"), date(2026, 5, 11))
    run_day(john, date(2026, 6, 1))
    newest = invoices(john, customer)[0]
    # 10 of May's 31 days at 30.00, then 21 at 60.00
    assert [line["amount"] for line in newest["lines"]] == ["9.68", "40.65"]
    assert newest["total"] == "50.33"
    assert newest["lines"][0]["description"].startswith("Old ")
    assert newest["lines"][1]["description"].startswith("New ")


# --- usage -----------------------------------------------------------------------------------


def _usage(client: Isp, path: str) -> list[dict[str, Any]]:
    answer = client.call("GET", path)
    assert answer.status == 200, answer.json
    return [u["attributes"] for u in answer.json["data"]]


def test_usage_is_counted_once_per_record_and_shown_only_to_its_customer(
    globex: Platform, john: Staff, clock: Clock
) -> None:
    platform = globex
    mine, theirs = john.customer(**PREPAID), john.customer(**PREPAID, name="Other")
    plan = john.plan()
    number = active_service(john, clock, mine, plan, date(2026, 4, 10))
    other = active_service(john, clock, theirs, plan, date(2026, 4, 10))
    path = f"/services/{number}/usage"
    record = {"at": "2026-04-30T23:00:00Z", "download_bytes": 7_000, "upload_bytes": 1_000}
    for record_id, at in (("s1:1", "2026-04-30T23:00:00Z"), ("s1:2", "2026-05-01T01:00:00Z")):
        answer = john.call("POST", path, {**record, "record_id": record_id, "at": at})
        assert (answer.status, answer.attributes["counted"]) == (201, True), answer.json
    again = john.call("POST", path, {**record, "record_id": "s1:1"})
    assert (again.status, again.attributes["counted"]) == (200, False)
    john.call("POST", f"/services/{other}/usage", {**record, "record_id": "o:1"})

    expected = [
        {"month": "2026-05", "download_bytes": 7_000, "upload_bytes": 1_000, "records": 1},
        {"month": "2026-04", "download_bytes": 7_000, "upload_bytes": 1_000, "records": 1},
    ]
    assert _usage(john, path) == expected
    before = items(platform, "ISP_USAGE")
    for body, status in (
        ({**record, "record_id": "x", "at": "2026-04-01T00:00:00Z"}, 400),  # before activation
        ({**record, "record_id": "x", "at": "2030-01-01T00:00:00Z"}, 400),  # the future
        ({**record, "record_id": "x", "download_bytes": -1}, 400),
        ({**record, "record_id": "x", "at": "2026-04-30T23:00:00"}, 400),  # no time zone
        ({**record, "record_id": "bad id"}, 400),
    ):
        assert john.call("POST", path, body).status == status, body
    assert (
        john.call(
            "POST", "/services/INT-20260410-000000/usage", {**record, "record_id": "x"}
        ).status
        == 404
    )
    assert items(platform, "ISP_USAGE") == before

    jane = link(platform, JANE, mine)
    assert _usage(jane, f"/portal/services/{number}/usage") == expected
    assert jane.call("GET", f"/portal/services/{other}/usage").status == 404
    assert jane.call("GET", path).status == 403
    globex_admin = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    assert globex_admin.call("POST", path, {**record, "record_id": "g"}).status == 404
    assert globex_admin.call("GET", path).status == 404
    # A service with no usage yet is an empty list, to its customer only.
    quiet, theirs_quiet = (
        active_service(john, clock, c, plan, date(2026, 4, 10)) for c in (mine, theirs)
    )
    assert _usage(john, f"/services/{quiet}/usage") == []
    assert _usage(jane, f"/portal/services/{quiet}/usage") == []
    assert jane.call("GET", f"/portal/services/{theirs_quiet}/usage").status == 404
    _, counted = counting(jane, isp_data)("GET", f"/portal/services/{number}/usage")
    assert counted == Counter({"dynamodb:Query": 1})
