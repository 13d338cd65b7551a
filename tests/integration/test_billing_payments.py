"""Payments, credit notes, dunning and partner commissions through the HTTP API, with the
jobs worked by the real invoice-worker on the local queues."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dotmac.billing import invoicing
from tests.integration.billing_fixtures import drain, next_period
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    GLOBEX,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JOHN,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import (
    Operator,
    operator_token,
    platform_reads,
    provision,
    scan_keys,
    wait_for,
)
from tests.integration.test_isp_customers import counting

PAYMENTS = "/api/v1/tenant/payments"
ACCOUNT = "/api/v1/tenant/billing-account"
OPERATOR_ACCOUNT = "/api/v1/platform/tenants/{}/billing-account"
DUNNING = "/api/v1/platform/billing/dunning"


def issue(tenant_id: str = "abc-corp") -> str:
    """Invoice the tenant for the next period (what the billing run's worker does)."""
    number = invoicing.invoice_tenant(tenant_id, next_period()).number
    assert number is not None
    return number


def pay(platform: Platform, token: str, amount: str, key: str | None = "k-1") -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return platform.call("POST", PAYMENTS, token, body={"amount": amount}, headers=headers)


def account(platform: Platform, token: str) -> dict[str, Any]:
    answer = platform.call("GET", ACCOUNT, token)
    assert answer.status == 200, answer.json
    return answer.attributes


def test_an_invoice_takes_three_dynamodb_calls_and_two_objects(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the invoice-worker spends per tenant: its first reads in one TransactGetItems,
    the subscription events, one transaction; the PDF and JSON documents."""
    import threading

    import botocore.client

    counted: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call
    worker = threading.get_ident()  # not the emulator's workflow threads, still settling

    def spy(self: Any, operation: str, params: Any) -> Any:
        if threading.get_ident() == worker:
            counted[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    assert invoicing.invoice_tenant("abc-corp", next_period()).created
    assert counted == Counter(
        {
            "dynamodb:TransactGetItems": 1,
            "dynamodb:Query": 1,
            "dynamodb:TransactWriteItems": 1,
            "s3:PutObject": 2,
        }
    )


def test_paying_over_http_is_idempotent_and_stays_in_the_tenant(platform: Platform) -> None:
    john = platform.token(JOHN)
    number = issue()  # ABC Corp: 3 apps x 149.00
    assert account(platform, john)["balance"] == "447.00"

    for body, headers in (
        ({"amount": "10.00"}, {}),  # no Idempotency-Key
        ({"amount": "10.00"}, {"Idempotency-Key": "x" * 256}),
        ({"amount": "10.00"}, {"Idempotency-Key": "tab\there"}),
        ({"amount": "-5"}, {"Idempotency-Key": "bad"}),
        ({"amount": "1.001"}, {"Idempotency-Key": "bad"}),
        ({"amount": "10", "currency": "EUR"}, {"Idempotency-Key": "bad"}),
        ({"amount": "10", "method": "barter"}, {"Idempotency-Key": "bad"}),
        ({"amount": 1e400}, {"Idempotency-Key": "bad"}),
    ):
        refused = platform.call("POST", PAYMENTS, john, body=body, headers=headers)
        assert (refused.status, refused.error_code) == (400, "VALIDATION_ERROR"), body
    assert scan_keys(platform, "T#abc-corp#PAYMENT") == []

    paid = pay(platform, john, "400.00")
    assert paid.status == 201, paid.json
    assert paid.attributes["allocations"] == [{"invoice": number, "amount": "400.00"}]
    again = pay(platform, john, "400.00")
    assert (again.status, again.json["data"]["id"]) == (200, paid.json["data"]["id"])
    reused = pay(platform, john, "1.00")
    assert (reused.status, reused.error_code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert account(platform, john)["balance"] == "47.00"

    payment_id = paid.json["data"]["id"]
    listed = platform.call("GET", PAYMENTS, john).json["data"]
    assert [p["id"] for p in listed] == [payment_id]
    assert platform.call("GET", f"{PAYMENTS}/{payment_id}", john).status == 200


def test_another_tenant_never_sees_or_pays_into_this_one(
    platform: Platform, globex: Platform
) -> None:
    john = platform.token(JOHN)
    issue()
    paid = pay(platform, john, "100.00")
    payment_id = paid.json["data"]["id"]
    intruder = platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD)
    assert platform.call("GET", PAYMENTS, intruder).json["data"] == []
    missing = platform.call("GET", f"{PAYMENTS}/{payment_id}", intruder)
    assert (missing.status, missing.error_code) == (404, "NOT_FOUND")
    assert platform.call("GET", "/api/v1/tenant/invoices", intruder).json["data"] == []
    # The same key in another tenant is another payment (keys are scoped per tenant).
    theirs = pay(platform, intruder, "100.00")
    assert theirs.status == 201 and theirs.json["data"]["id"] != payment_id
    assert account(platform, john)["balance"] == "347.00"
    assert account(platform, intruder)["credit"] == "100.00"  # globex had nothing to pay
    for path in (OPERATOR_ACCOUNT.format("abc-corp"), DUNNING):
        refused = platform.call("GET" if "account" in path else "POST", path, john, body={})
        assert refused.status == 403, path


def test_an_operator_reads_a_tenants_account_in_one_call(platform: Platform) -> None:
    operator, john = Operator(platform), platform.token(JOHN)
    path = OPERATOR_ACCOUNT.format("abc-corp")
    operator.call("GET", path)  # warm: the authorizer's caches
    read = counting(operator, platform_reads)
    fresh, counted = read("GET", path)  # no account yet: a new one, nothing saved
    assert counted == Counter({"dynamodb:TransactGetItems": 1})
    assert (fresh.attributes["balance"], fresh.attributes["currency"]) == ("0.00", "USD")
    issue()
    answer, counted = read("GET", path)
    assert counted == Counter({"dynamodb:TransactGetItems": 1})  # the tenant and its account
    assert answer.attributes == account(platform, john)
    assert answer.attributes["balance"] == "447.00"
    for tenant, status in (("no-such-tenant", 404), ("Not_A_Tenant", 400)):
        refused = operator.call("GET", OPERATOR_ACCOUNT.format(tenant))
        assert refused.status == status, refused.json


def test_an_operator_credits_an_invoice_but_never_beyond_its_balance(platform: Platform) -> None:
    operator, john = operator_token(platform), platform.token(JOHN)
    number = issue()
    path = f"/api/v1/platform/tenants/abc-corp/invoices/{number}/credit-notes"
    too_much = platform.call("POST", path, operator, body={"amount": "447.01", "reason": "x"})
    assert (too_much.status, too_much.error_code) == (409, "CREDIT_EXCEEDS_BALANCE")
    note = platform.call(
        "POST",
        path,
        operator,
        body={"amount": "47.00", "reason": "outage in March"},
        headers={"Idempotency-Key": "cn-1"},
    )
    assert note.status == 201, note.json
    replay = platform.call(
        "POST",
        path,
        operator,
        body={"amount": "47.00", "reason": "outage in March"},
        headers={"Idempotency-Key": "cn-1"},
    )
    assert (replay.status, replay.json["data"]["id"]) == (200, note.json["data"]["id"])
    notes = platform.call("GET", "/api/v1/tenant/credit-notes", john).json["data"]
    assert [n["attributes"]["amount"] for n in notes] == ["47.00"]
    view = account(platform, john)
    assert (view["balance"], view["credited"]) == ("400.00", "47.00")
    missing = platform.call(
        "POST",
        "/api/v1/platform/tenants/nobody/payments",
        operator,
        body={"amount": "1"},
        headers={"Idempotency-Key": "x"},
    )
    assert missing.status == 404


def _dun(platform: Platform, as_of: date) -> None:
    answer = platform.call(
        "POST", DUNNING, operator_token(platform), body={"as_of": as_of.isoformat()}
    )
    assert answer.status == 202, answer.json
    drain(platform)


def test_the_dunning_ladder_suspends_and_a_payment_reactivates(platform: Platform) -> None:
    operator, john = operator_token(platform), platform.token(JOHN)
    ladder = {
        "late_fee": {"kind": "percent", "rate": "0.10"},
        "dunning": [
            {"after_days": 1, "action": "remind"},
            {"after_days": 5, "action": "late_fee"},
            {"after_days": 10, "action": "suspend"},
        ],
    }
    configured = platform.call("PUT", OPERATOR_ACCOUNT.format("abc-corp"), operator, body=ladder)
    assert configured.status == 200, configured.json
    number = issue()
    due = date.fromisoformat(
        platform.call("GET", f"/api/v1/tenant/invoices/{number}", john).attributes["due_on"]
    )
    platform.notifications("billing.reminder")  # the welcome messages of the seed

    _dun(platform, due)  # not overdue yet: nothing
    assert platform.notifications("billing.reminder") == []
    _dun(platform, due + timedelta(days=1))
    (reminder,) = platform.notifications("billing.reminder")
    assert (reminder["data"]["invoice"], reminder["recipient"]) == (number, JOHN)
    _dun(platform, due + timedelta(days=1))  # again the same day: nothing new
    assert platform.notifications("billing.reminder") == []

    _dun(platform, due + timedelta(days=6))
    invoices = platform.call("GET", "/api/v1/tenant/invoices", john).json["data"]
    fee = next(i["attributes"] for i in invoices if i["id"] != number)
    assert (fee["total"], fee["lines"][0]["description"]) == ("44.70", f"Late fee on {number}")
    assert account(platform, john)["balance"] == "491.70"
    assert platform.call("GET", "/api/v1/users", john).status == 200

    _dun(platform, due + timedelta(days=10))
    assert wait_for(platform, operator, "abc-corp", frozenset({"SUSPENDED"}))["status"]
    refused = platform.call("GET", "/api/v1/users", john)
    assert (refused.status, refused.error_code) == (403, "TENANT_SUSPENDED")
    assert account(platform, john)["suspended_for_dunning"] is True

    john = platform.token(JOHN)  # a suspended tenant's users still sign in, and may pay
    partial = pay(platform, john, "400.00", key="partial")
    assert partial.status == 201, partial.json
    assert platform.call("GET", "/api/v1/users", john).status == 403  # 91.70 still due
    cleared = pay(platform, john, "91.70", key="rest")
    assert cleared.status == 201, cleared.json
    assert platform.call("GET", "/api/v1/users", john).status == 200
    tenant = platform.call("GET", "/api/v1/platform/tenants/abc-corp", operator).attributes
    assert tenant["status"] == "ACTIVE"
    view = account(platform, john)
    assert (view["balance"], view["suspended_for_dunning"], view["open_invoices"]) == (
        "0.00",
        False,
        [],
    )
    _dun(platform, due + timedelta(days=40))  # nothing open: nothing happens
    assert platform.call("GET", "/api/v1/users", john).status == 200


def test_an_operator_suspension_is_not_lifted_by_a_payment(platform: Platform) -> None:
    operator, john = operator_token(platform), platform.token(JOHN)
    issue()
    suspended = platform.call(
        "POST", "/api/v1/platform/tenants/abc-corp/suspend", operator, body={"reason": "abuse"}
    )
    assert suspended.status == 200, suspended.json
    assert pay(platform, john, "447.00").status == 201
    tenant = platform.call("GET", "/api/v1/platform/tenants/abc-corp", operator).attributes
    assert tenant["status"] == "SUSPENDED"


def test_a_partner_earns_once_per_paid_invoice_and_is_paid_from_50(platform: Platform) -> None:
    operator = operator_token(platform)
    created = platform.call(
        "POST",
        "/api/v1/platform/partners",
        operator,
        body={"name": "Acme Resellers", "email": "ops@acme.example", "partner_id": "acme"},
    )
    assert created.status == 201, created.json
    assert provision(platform, "referred", partner_id="acme").status == 202
    assert wait_for(platform, operator, "referred")["status"] == "ACTIVE"
    number = issue("referred")  # starter, isp + crm: 98.00
    payments = "/api/v1/platform/tenants/referred/payments"
    statement = "/api/v1/platform/partners/acme/commissions"

    def pay_referred(amount: str, key: str) -> None:
        answer = platform.call(
            "POST", payments, operator, body={"amount": amount}, headers={"Idempotency-Key": key}
        )
        assert answer.status == 201, answer.json

    pay_referred("50.00", "first-half")
    assert platform.call("GET", statement, operator).json["data"] == []  # not paid yet
    pay_referred("48.00", "second-half")
    pay_referred("30.00", "credit")  # nothing more to earn on: it becomes credit
    answer, counted = counting(Operator(platform), platform_reads)("GET", statement)
    assert counted == Counter({"dynamodb:Query": 1})  # the partner record came first
    (entry,) = answer.json["data"]
    # Bronze 5%; billed for the month after sign-up: no first-month bonus, no contract bonus.
    assert (entry["attributes"]["invoice"], entry["attributes"]["base"]) == (number, "98.00")
    assert (entry["attributes"]["rate"], entry["attributes"]["amount"]) == ("0.05", "4.90")
    summary = answer.json["meta"]["summary"]
    assert (summary["earned"], summary["unpaid"], summary["payable"]) == ("4.90", "4.90", False)
    partner = platform.call("GET", "/api/v1/platform/partners/acme", operator).attributes
    assert partner["lifetime_revenue"] == "98.00"

    too_early = platform.call("POST", "/api/v1/platform/partners/acme/payouts", operator)
    assert (too_early.status, too_early.error_code) == (409, "PAYOUT_BELOW_MINIMUM")
    _earn(Decimal("45.10"))  # more paid invoices, as far as the partner record is concerned
    payout = platform.call("POST", "/api/v1/platform/partners/acme/payouts", operator)
    assert (payout.status, payout.attributes["amount"]) == (201, "50.00")
    summary = platform.call("GET", statement, operator).json["meta"]["summary"]
    assert (summary["paid_out"], summary["unpaid"]) == ("50.00", "0.00")
    listed = platform.call("GET", "/api/v1/platform/partners/acme/payouts", operator)
    assert [p["attributes"]["amount"] for p in listed.json["data"]] == ["50.00"]


def _earn(commission: Decimal) -> None:
    from dotmac.core.tenancy import PLATFORM_TENANT, TenantContext
    from dotmac.core.unit_of_work import UnitOfWork
    from dotmac.management import partners

    uow = UnitOfWork(TenantContext(PLATFORM_TENANT, "test", request_id="earn"))
    partners.stage_revenue(uow, partners.get_partner("acme"), Decimal("902.00"), commission)
    uow.audit("platform.partner.record_revenue", "partner", "acme")
    uow.commit()


def test_the_daily_dunning_trigger_queues_a_job_per_billed_tenant(platform: Platform) -> None:
    from infra.naming import physical

    operator = operator_token(platform)
    assert provision(platform, "second").status == 202
    assert wait_for(platform, operator, "second")["status"] == "ACTIVE"
    event = json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    answer = platform.cloud.client("lambda").invoke(
        FunctionName=physical("test", "dunning-scheduler"), Payload=event
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    assert json.loads(answer["Payload"].read())["queued"] == 2  # abc-corp, second
    drain(platform)  # nothing is overdue today: the jobs succeed and change nothing
    sqs = platform.cloud.client("sqs")
    dlq = sqs.get_queue_attributes(
        QueueUrl=platform.cloud.queue_url("billing-jobs-dlq"),
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
    assert scan_keys(platform, "T#abc-corp#INVOICE") == []
