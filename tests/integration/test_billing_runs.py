"""Billing runs over the real queues: one invoice per (tenant, period) however jobs are
delivered, the DLQ and the redrive path. The worker runs through the devcloud poller, with
Lambda's batch semantics, exactly as `make run` drives it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.billing_fixtures import drain, next_period
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import JOHN, Platform
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import admin_token, operator_token, signup

RUNS = "/api/v1/platform/billing/runs"


def start(platform: Platform, key: str = "run-1") -> Any:
    answer = platform.call(
        "POST",
        RUNS,
        operator_token(platform),
        body={"period": next_period()},
        headers={"Idempotency-Key": key},
    )
    assert answer.status == 202, answer.json
    return answer


def run_state(platform: Platform, run_id: str) -> dict[str, Any]:
    return platform.call("GET", f"{RUNS}/{run_id}", operator_token(platform)).attributes


def invoices(platform: Platform, token: str) -> list[dict[str, Any]]:
    answer = platform.call("GET", "/api/v1/tenant/invoices", token)
    assert answer.status == 200, answer.json
    return [i["attributes"] for i in answer.json["data"]]


def queue_depth(platform: Platform, logical: str) -> int:
    attributes = platform.cloud.client("sqs").get_queue_attributes(
        QueueUrl=platform.cloud.queue_url(logical),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_run_invoices_every_active_tenant_once(platform: Platform) -> None:
    signup(platform, "second", apps=["crm"])  # starter, subscribed through the workflow
    answer = start(platform)
    run_id = answer.json["data"]["id"]
    assert answer.attributes["total"] == 2  # abc-corp and second; never the platform itself
    again = start(platform)  # same Idempotency-Key: same run, nothing queued again
    assert again.json["data"]["id"] == run_id
    assert queue_depth(platform, "billing-jobs") == 2

    drain(platform)
    state = run_state(platform, run_id)
    assert (state["done"], state["failed"], state["pending"], state["status"]) == (
        2,
        0,
        0,
        "COMPLETED",
    )
    abc = invoices(platform, platform.token(JOHN))
    assert len(abc) == 1
    invoice = abc[0]
    assert invoice["number"] == f"INV-{next_period()[:4]}-000001"
    assert invoice["period"] == next_period()
    # ABC Corp: Professional, three apps subscribed before the period: full months.
    assert sorted(line["amount"] for line in invoice["lines"]) == ["149.00"] * 3
    assert (invoice["total"], invoice["balance"], invoice["status"]) == ("447.00", "447.00", "OPEN")
    pdf = platform.call(
        "GET", f"/api/v1/tenant/invoices/{invoice['number']}/pdf", platform.token(JOHN)
    )
    assert pdf.status == 200 and f"{invoice['number']}.pdf" in pdf.attributes["url"]
    s3 = platform.cloud.client("s3")
    bucket = platform.cloud.created.buckets["objects"]
    stored = s3.get_object(Bucket=bucket, Key=f"tenants/abc-corp/invoices/{invoice['number']}.pdf")
    assert stored["Body"].read().startswith(b"%PDF-")
    (theirs,) = invoices(platform, admin_token(platform, "second"))
    assert theirs["number"] == invoice["number"]  # numbering is per tenant
    assert (theirs["total"], [line["amount"] for line in theirs["lines"]]) == ("49.00", ["49.00"])


def test_duplicate_delivery_issues_nothing_twice(platform: Platform) -> None:
    run_id = start(platform).json["data"]["id"]
    sqs = platform.cloud.client("sqs")
    body = {"run_id": run_id, "tenant_id": "abc-corp", "period": next_period()}
    for _ in range(3):  # the same job delivered three more times
        sqs.send_message(
            QueueUrl=platform.cloud.queue_url("billing-jobs"), MessageBody=json.dumps(body)
        )
    drain(platform)
    assert len(invoices(platform, platform.token(JOHN))) == 1
    assert run_state(platform, run_id)["done"] == 1
    assert queue_depth(platform, "billing-jobs") == 0


def test_a_worker_that_dies_after_committing_does_not_bill_twice(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.billing import invoicing

    real = invoicing.invoice_tenant
    crashes: list[str] = []

    def crash_after_commit(tenant_id: str, period: str, *, run_id: str | None = None) -> Any:
        issued = real(tenant_id, period, run_id=run_id)
        if not crashes:
            crashes.append(tenant_id)
            raise RuntimeError("worker died after the commit")
        return issued

    monkeypatch.setattr(invoicing, "invoice_tenant", crash_after_commit)
    platform.cloud.client("sqs").set_queue_attributes(
        QueueUrl=platform.cloud.queue_url("billing-jobs"), Attributes={"VisibilityTimeout": "0"}
    )
    run_id = start(platform).json["data"]["id"]
    drain(platform)
    assert crashes == ["abc-corp"]
    assert len(invoices(platform, platform.token(JOHN))) == 1
    assert run_state(platform, run_id)["done"] == 1


def test_a_failing_job_goes_to_the_dlq_and_redrive_brings_it_back(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.billing import invoicing

    real = invoicing.invoice_tenant

    def broken(tenant_id: str, period: str, *, run_id: str | None = None) -> Any:
        raise RuntimeError("the tax service is down")

    platform.cloud.client("sqs").set_queue_attributes(
        QueueUrl=platform.cloud.queue_url("billing-jobs"), Attributes={"VisibilityTimeout": "0"}
    )
    monkeypatch.setattr(invoicing, "invoice_tenant", broken)
    run_id = start(platform).json["data"]["id"]
    drain(platform)
    state = run_state(platform, run_id)
    assert (state["done"], state["failed"]) == (0, 1)
    assert queue_depth(platform, "billing-jobs-dlq") == 1
    assert invoices(platform, platform.token(JOHN)) == []

    monkeypatch.setattr(invoicing, "invoice_tenant", real)
    redriven = platform.call("POST", f"{RUNS}/{run_id}/redrive", operator_token(platform), body={})
    assert redriven.status == 200, redriven.json
    assert (redriven.attributes["failed"], redriven.attributes["pending"]) == (0, 1)
    assert queue_depth(platform, "billing-jobs-dlq") == 0
    drain(platform)
    assert run_state(platform, run_id)["done"] == 1
    assert len(invoices(platform, platform.token(JOHN))) == 1


def test_billing_routes_are_for_operators_and_invoices_stay_in_their_tenant(
    globex: Platform,
) -> None:
    platform = globex
    john = platform.token(JOHN)
    refused = platform.call("POST", RUNS, john, body={"period": next_period()})
    assert refused.status == 403
    for period in ("2026-13", "0000-01", "9999-12"):  # the last two: no such month in `date`
        bad = platform.call("POST", RUNS, operator_token(platform), body={"period": period})
        assert (bad.status, bad.json["error"]["code"]) == (400, "VALIDATION_ERROR"), period
    assert platform.call("GET", f"{RUNS}/nope", operator_token(platform)).status == 404
    assert platform.call("GET", "/api/v1/tenant/invoices/INV-2026-000001", john).status == 404
    pdf = platform.call("GET", "/api/v1/tenant/invoices/INV-2026-000001/pdf", john)
    assert pdf.status == 404


def test_a_crash_between_the_commit_and_the_upload_is_finished_by_the_redelivery(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.billing import documents

    real = documents.store
    calls: list[str] = []

    def store_fails_once(doc: Any) -> Any:
        calls.append(doc.invoice_number)
        if len(calls) == 1:
            raise ConnectionError("S3 went away")
        return real(doc)

    monkeypatch.setattr(documents, "store", store_fails_once)
    platform.cloud.client("sqs").set_queue_attributes(
        QueueUrl=platform.cloud.queue_url("billing-jobs"), Attributes={"VisibilityTimeout": "0"}
    )
    run_id = start(platform).json["data"]["id"]
    drain(platform)
    (invoice,) = invoices(platform, platform.token(JOHN))
    assert calls == [invoice["number"], invoice["number"]]
    assert documents.stored("abc-corp", invoice["number"])
    assert run_state(platform, run_id)["done"] == 1


def test_the_daily_trigger_bills_last_month_once(platform: Platform) -> None:
    from infra.naming import physical

    event = json.dumps({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    outcomes = []
    for _ in range(2):  # two days in a row
        answer = platform.cloud.client("lambda").invoke(
            FunctionName=physical("test", "billing-scheduler"), Payload=event
        )
        assert "FunctionError" not in answer, answer["Payload"].read()
        outcomes.append(json.loads(answer["Payload"].read()))
    assert [o["started"] for o in outcomes] == [True, False]
    assert outcomes[0]["total"] == 1  # abc-corp
    drain(platform)
    from dotmac.billing.runs import run_id_for

    run_id = run_id_for(outcomes[0]["period"], f"scheduled-{outcomes[0]['period']}")
    assert run_state(platform, run_id)["done"] == 1
    # ABC Corp was provisioned this month: nothing to bill for the last one.
    assert invoices(platform, platform.token(JOHN)) == []
