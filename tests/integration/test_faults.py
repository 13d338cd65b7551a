"""Faults: an invoice worker that dies mid-batch, duplicate deliveries worked at once, and a
backing service (DynamoDB, SQS, S3, KMS) that stops answering.

The run ends with one line per test class counting the anomalies its tests looked for
(duplicates, gaps, items half written by a failed request; `race_fixtures`); every count
must be 0.

Already proven elsewhere (not repeated here):
- A failure at every tenant provisioning step leaves nothing (subdomain, records, objects,
  metrics), a transient one is retried, a failed subdomain can be requested again
  (`test_provisioning.py`).
- ISP activation: a failure at each step before ACTIVE is undone, after it the live service
  is kept, a failed compensation still ends the activation, a workflow that cannot start
  leaves it FAILED, a retried allocation gets the same address (`test_isp_provisioning.py`).
- A tenant invoice job that dies after its commit, the same job delivered four times, a
  job that keeps failing reaching the DLQ and its redrive, a crash between the invoice's
  commit and its upload (`test_billing_runs.py`); partial batch failures and a handler
  crash returning its batch (`test_queue_pipeline.py`); a device report's alert that could
  not be queued, queued on redelivery (`test_isp_network.py`).
- Ready answers 503 when the table, a queue or the bucket is missing (`test_health.py`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest

from tests.integration.billing_fixtures import drain, next_period, poller
from tests.integration.conftest import STAGE
from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import ABC, JOHN, Answer, Platform
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import operator_token, running, scan_keys
from tests.integration.race_fixtures import *  # noqa: F403
from tests.integration.race_fixtures import Anomalies, duplicates, in_parallel, sequence_gaps
from tests.integration.test_billing_runs import RUNS, queue_depth, run_state
from tests.integration.test_isp_billing import POSTPAID, Clock, Staff, active_service
from tests.integration.test_isp_customers import CUSTOMER, Isp
from tests.integration.test_isp_network import DEVICE

AS_OF = date(2026, 5, 15)  # the billing day of customers whose service started on 2026-04-15


def billed_tenant(platform: Platform, tenant_id: str) -> None:
    """An ACTIVE tenant subscribed to CRM (billed for the next period)."""
    from dotmac.core.tenancy import TenantContext
    from dotmac.management import subscriptions

    platform.add_tenant(tenant_id, apps=frozenset())
    subscriptions.subscribe(TenantContext(tenant_id, "test-setup", request_id="setup"), "crm")


def postpaid_customers(john: Staff, clock: Clock, count: int) -> list[str]:
    """`count` postpaid customers (billing day 15), each with a service started 2026-04-15."""
    plan = john.plan()
    found = []
    for i in range(count):
        customer = john.customer(**{**POSTPAID, "billing_day": 15}, email=f"c{i}@example.net")
        active_service(john, clock, customer, plan, date(2026, 4, 15))
        found.append(customer)
    return found


def own_invoices(platform: Platform, tenants: list[str]) -> dict[str, list[str]]:
    """The numbers of each tenant's own invoices (the platform billed it)."""
    keys = scan_keys(platform, "T#")
    return {t: [sk for pk, sk in keys if pk == f"T#{t}#INVOICE"] for t in tenants}


def subscriber_invoices(platform: Platform, tenant: str = ABC) -> dict[str, list[str]]:
    """The numbers of the invoices of each of `tenant`'s ISP subscribers (by customer id)."""
    found: dict[str, list[str]] = {}
    for pk, sk in scan_keys(platform, f"T#{tenant}#ISP_SUB#"):
        if pk.endswith("#INVOICE"):
            found.setdefault(pk.split("#")[-2], []).append(sk)
    return found


def once_each(numbers: dict[str, list[str]], owners: list[str]) -> tuple[int, int]:
    """(extra invoices, owners without one) when each owner must have exactly one."""
    extra = sum(max(0, len(numbers.get(o, [])) - 1) for o in owners)
    return extra, sum(1 for o in owners if not numbers.get(o))


# --- a worker crash and duplicate deliveries ------------------------------------------------


class WorkerDiedError(BaseException):
    """The invocation dies (killed, out of memory): the batch handler reports nothing."""


class TestWorkerCrash:
    def test_a_crash_mid_batch_then_redelivery_bills_everyone_once(
        self,
        platform: Platform,
        anomalies: Anomalies,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """One batch: four tenants' invoice jobs and ABC's subscriber billing day. The
        invocation dies right after the third invoice commits; SQS hands the whole batch
        out again and every tenant and every subscriber is invoiced exactly once."""
        from devcloud import lambda_dispatch
        from dotmac.billing import invoicing
        from infra.naming import physical

        john = Staff(platform)
        subscribers = postpaid_customers(john, Clock(monkeypatch), 2)
        tenants = [ABC, "north", "south", "west"]
        for tenant in tenants[1:]:
            billed_tenant(platform, tenant)
        platform.cloud.client("sqs").set_queue_attributes(
            QueueUrl=platform.cloud.queue_url("billing-jobs"), Attributes={"VisibilityTimeout": "0"}
        )
        run = platform.call(
            "POST",
            RUNS,
            operator_token(platform),
            {"period": next_period()},
            {"Idempotency-Key": "crash"},
        )
        assert run.status == 202 and run.attributes["total"] == 4, run.json
        day = john.call("POST", "/billing/days", {"as_of": AS_OF.isoformat()})
        assert day.status == 202, day.json

        real, issued = invoicing.invoice_tenant, []

        def dies_after_the_third(tenant_id: str, period: str, *, run_id: str | None = None) -> Any:
            done = real(tenant_id, period, run_id=run_id)
            issued.append(tenant_id)
            if len(issued) == 3:
                raise WorkerDiedError
            return done

        function = physical(STAGE, "invoice-worker")
        handler = lambda_dispatch.registered()[function]

        def runtime(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            except WorkerDiedError:
                raise RuntimeError("Runtime exited without providing a reason") from None

        monkeypatch.setattr(invoicing, "invoice_tenant", dies_after_the_third)
        lambda_dispatch.register(function, runtime)
        try:
            worker = poller(platform)
            assert worker.poll_once() == 5
            assert (worker.deleted, worker.failed) == (0, 5)  # the whole batch comes back
            assert len(issued) == 3 and run_state(platform, run.json["data"]["id"])["done"] == 3
            drain(platform)
        finally:
            lambda_dispatch.register(function, handler)

        state = run_state(platform, run.json["data"]["id"])
        assert (state["done"], state["failed"], state["status"]) == (4, 0, "COMPLETED")
        own = own_invoices(platform, tenants)
        theirs = subscriber_invoices(platform)
        extra, missing = once_each(own, tenants)
        extra_sub, missing_sub = once_each(theirs, subscribers)
        anomalies.check(
            duplicates=extra + extra_sub,
            gaps=missing
            + missing_sub
            + sequence_gaps([n for ns in theirs.values() for n in ns], "ISP", 2026, 2),
        )
        assert {ns[0] for ns in own.values()} == {f"INV-{next_period()[:4]}-000001"}
        assert (
            queue_depth(platform, "billing-jobs") == queue_depth(platform, "billing-jobs-dlq") == 0
        )

    def test_duplicates_of_a_subscriber_billing_job_worked_at_once_invoice_each_once(
        self, platform: Platform, anomalies: Anomalies, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The same `isp_billing` job delivered six times, to six containers at once: each
        due customer gets one invoice and the ISP series stays gapless."""
        from infra.naming import physical

        john = Staff(platform)
        subscribers = postpaid_customers(john, Clock(monkeypatch), 4)
        body = json.dumps({"kind": "isp_billing", "tenant_id": ABC, "as_of": AS_OF.isoformat()})
        lambda_ = platform.cloud.client("lambda")  # one client: clients are thread-safe

        def delivery() -> Callable[[], dict[str, Any]]:
            record = {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }

            def invoke() -> dict[str, Any]:
                answer = lambda_.invoke(
                    FunctionName=physical(STAGE, "invoice-worker"),
                    Payload=json.dumps({"Records": [record]}).encode(),
                )
                assert "FunctionError" not in answer
                return dict(json.loads(answer["Payload"].read()))

            return invoke

        outcomes = in_parallel([delivery() for _ in range(6)], workers=6)
        assert all(o["batchItemFailures"] == [] for o in outcomes), outcomes
        theirs = subscriber_invoices(platform)
        extra, missing = once_each(theirs, subscribers)
        numbers = [n for ns in theirs.values() for n in ns]
        anomalies.check(
            duplicates=extra + duplicates(numbers),
            gaps=missing + sequence_gaps(numbers, "ISP", 2026, 4),
        )


# --- a dependency down ----------------------------------------------------------------------


@contextmanager
def unreachable(service: str) -> Iterator[None]:
    """Every client of `service` in this process gets what a closed port gives botocore
    after its retries: EndpointConnectionError (boto3 and PynamoDB alike)."""
    import botocore.client
    from botocore.exceptions import EndpointConnectionError

    original = botocore.client.BaseClient._make_api_call

    def refuse(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == service:
            raise EndpointConnectionError(endpoint_url=f"https://{service}.us-east-1.amazonaws.com")
        return original(self, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
        yield


def stored(platform: Platform) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item in the table (a test-only Scan) once the seed's provisioning has ended (ABC
    Corp turns ACTIVE before its welcome step), without the request meters: rate-limit
    windows and API call counters count the attempt itself, not what it changed."""
    deadline = time.monotonic() + 60
    while running(platform, ABC):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client = platform.cloud.client("dynamodb")
    found = {}
    for page in client.get_paginator("scan").paginate(TableName=platform.cloud.created.table):
        for item in page["Items"]:
            key = (item["PK"]["S"], item["SK"]["S"])
            if not key[0].startswith("RATE#") and not key[1].startswith("api_calls#"):
                found[key] = item
    return found


def changed(before: dict[Any, Any], after: dict[Any, Any]) -> int:
    """How many items were added, removed or changed between two `stored` snapshots."""
    return sum(before.get(key) != after.get(key) for key in before.keys() | after.keys())


def assert_unavailable(answer: Answer) -> None:
    """`answer` is the 503 error envelope, with the request id of its header."""
    assert (answer.status, answer.error_code) == (503, "SERVICE_UNAVAILABLE"), answer.json
    request_id = answer.header("X-Request-Id")
    assert request_id and answer.json["error"]["request_id"] == request_id


class TestDependencyDown:
    @pytest.mark.parametrize(
        ("service", "named"),
        [
            ("dynamodb", ["table:dotmac-test-main"]),
            (
                "sqs",
                [
                    "queue:dotmac-test-notifications",
                    "queue:dotmac-test-billing-jobs",
                    "queue:dotmac-test-device-events",
                ],
            ),
            ("s3", ["bucket:dotmac-test-objects"]),
        ],
    )
    def test_ready_is_503_naming_what_does_not_answer(
        self, platform: Platform, service: str, named: list[str]
    ) -> None:
        """The platform's and an app's readiness probes name what does not answer; the
        liveness probe does not depend on it."""
        with unreachable(service):
            answers = [
                platform.call("GET", p) for p in ("/health/ready", "/api/v1/isp/health/ready")
            ]
            live = platform.call("GET", "/health/live")
        for answer in answers:
            assert answer.status == 503, answer.json
            assert sorted(answer.json["failed"]) == sorted(named)
            assert {answer.json["checks"][n]["detail"] for n in named} == {
                "EndpointConnectionError"
            }
        assert live.status == 200
        assert platform.call("GET", "/health/ready").status == 200  # back when it answers

    def test_the_table_down_is_a_503_envelope_and_writes_nothing(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """Reads and writes of a warm container (the authorizer knows the user) while the
        table does not answer: each a 503 envelope with its request id, nothing written."""
        john = Isp(platform, platform.token(JOHN))
        customer = john.customer()
        before = stored(platform)
        assert john.call("GET", "/customers").status == 200  # warm: the authorizer's caches
        with unreachable("dynamodb"):
            answers = [
                john.call("GET", "/customers"),
                john.call("GET", f"/customers/{customer}"),
                john.call("POST", "/customers", {**CUSTOMER, "email": "new@example.net"}),
                john.call("PATCH", f"/customers/{customer}", {"name": "Renamed"}),
                john.act(f"/customers/{customer}/activate", "paid"),
            ]
        anomalies.check(half_written=changed(before, stored(platform)))
        for answer in answers:
            assert_unavailable(answer)
        assert john.act(f"/customers/{customer}/activate", "paid").status == 200  # it recovers

    def test_the_table_down_under_a_cold_authorizer_is_a_503_envelope(
        self, platform: Platform
    ) -> None:
        """A container whose authorizer has not seen the user yet: it cannot read him, raises,
        and the gateway answers AUTHORIZER_FAILURE, which is the 503 envelope."""
        from dotmac.identity.authorizer import user_states

        john = Isp(platform, platform.token(JOHN))
        assert john.call("GET", "/customers").status == 200
        user_states.forget()  # a new container, or the user's entry expired (30 s)
        with unreachable("dynamodb"):
            answer = john.call("GET", "/customers")
        assert_unavailable(answer)

    def test_the_queues_down_are_a_503_and_leave_nothing_half_written(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """A device report and a subscriber billing day (each: a message, then its audit
        record) fail whole; no message is queued."""
        john = Isp(platform, platform.token(JOHN))
        device = str(john.created("/devices", DEVICE)["id"])
        before = stored(platform)
        depths = {q: queue_depth(platform, q) for q in ("device-events", "billing-jobs")}
        with unreachable("sqs"):
            answers = [
                john.call("POST", f"/devices/{device}/status-events", {"status": "DOWN"}),
                john.call("POST", "/billing/days", {"as_of": AS_OF.isoformat()}),
            ]
        after = {q: queue_depth(platform, q) for q in depths}
        anomalies.check(half_written=changed(before, stored(platform)) + changed(depths, after))
        for answer in answers:
            assert_unavailable(answer)

    def test_a_billing_run_that_could_not_queue_stays_queued_and_its_retry_finishes_it(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """SQS down while a run queues its jobs: 503, and the run says QUEUED (no progress
        that will never come). The same request again queues the jobs: every tenant is
        invoiced once."""
        from dotmac.billing.runs import run_id_for

        operator = operator_token(platform)
        tenants = [ABC, "east"]
        billed_tenant(platform, "east")
        body, key = {"period": next_period()}, {"Idempotency-Key": "sqs-down"}
        with unreachable("sqs"):
            failed = platform.call("POST", RUNS, operator, body, key)
        assert_unavailable(failed)
        run_id = run_id_for(next_period(), key["Idempotency-Key"])
        assert run_state(platform, run_id)["status"] == "QUEUED"
        assert queue_depth(platform, "billing-jobs") == 0

        again = platform.call("POST", RUNS, operator, body, key)
        assert again.status == 202 and again.json["data"]["id"] == run_id, again.json
        assert (again.attributes["status"], again.attributes["total"]) == ("RUNNING", 2)
        assert queue_depth(platform, "billing-jobs") == 2
        drain(platform)
        state = run_state(platform, run_id)
        own = own_invoices(platform, tenants)
        extra, missing = once_each(own, tenants)
        anomalies.check(duplicates=extra, gaps=missing)
        assert (state["done"], state["status"]) == (2, "COMPLETED")

    def test_kms_down_is_a_503_and_no_customer_is_half_made(
        self, platform: Platform, anomalies: Anomalies
    ) -> None:
        """A customer's PII cannot be sealed: 503, no customer, nothing counted."""
        john = Isp(platform, platform.token(JOHN))
        before = stored(platform)
        with unreachable("kms"):
            answer = john.call("POST", "/customers", CUSTOMER)
        anomalies.check(half_written=changed(before, stored(platform)))
        assert_unavailable(answer)
        assert john.call("POST", "/customers", CUSTOMER).status == 201  # it recovers
