"""SQS -> poller -> worker -> S3, with Lambda's partial-batch and DLQ semantics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from devcloud.events import queue_mappings
from devcloud.pollers import QueuePoller
from dotmac.notifications.service import outbox_key
from infra.naming import physical
from infra.resources import STACK
from tests.integration.conftest import STAGE, MotoCloud


def _notification(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": uuid.uuid4().hex,
        "tenant_id": "abc-corp",
        "channel": "email",
        "recipient": "john@abc-corp.example",
        "template": "welcome",
        "data": {"name": "John"},
    }
    body.update(overrides)
    return body


@pytest.fixture
def poller(moto_cloud: MotoCloud) -> QueuePoller:
    (mapping,) = [m for m in queue_mappings(STACK, STAGE) if m.function == "notifications-worker"]
    return QueuePoller(moto_cloud.session, mapping, physical(STAGE, mapping.function))


def _depth(cloud: MotoCloud, logical: str) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=cloud.queue_url(logical),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _send(cloud: MotoCloud, body: Any) -> None:
    payload = body if isinstance(body, str) else json.dumps(body)
    cloud.client("sqs").send_message(QueueUrl=cloud.queue_url("notifications"), MessageBody=payload)


def test_a_batch_is_delivered_and_deleted(moto_cloud: MotoCloud, poller: QueuePoller) -> None:
    bodies = [_notification() for _ in range(7)]
    for body in bodies:
        _send(moto_cloud, body)
    handled = 0
    while handled < len(bodies):
        got = poller.poll_once()
        assert got, "poller stopped receiving before every message was handled"
        handled += got
    s3 = moto_cloud.client("s3")
    bucket = moto_cloud.created.buckets["objects"]
    for body in bodies:
        stored = json.loads(
            s3.get_object(Bucket=bucket, Key=outbox_key("abc-corp", body["id"]))["Body"].read()
        )
        assert stored == body
    assert poller.deleted == len(bodies) and poller.failed == 0
    assert _depth(moto_cloud, "notifications") == 0


def test_only_failed_records_stay_and_reach_the_dlq_after_max_receives(
    moto_cloud: MotoCloud, poller: QueuePoller
) -> None:
    sqs = moto_cloud.client("sqs")
    # Failed records become visible again at once, so the test needs no sleeping.
    sqs.set_queue_attributes(
        QueueUrl=moto_cloud.queue_url("notifications"), Attributes={"VisibilityTimeout": "0"}
    )
    good = _notification()
    _send(moto_cloud, good)
    _send(moto_cloud, _notification(channel="carrier-pigeon"))  # fails validation
    _send(moto_cloud, "not json at all")

    poller.poll_once()
    assert poller.deleted == 1 and poller.failed == 2  # the good one is not retried
    max_receives = next(q.max_receive_count for q in STACK.queues if q.name == "notifications")
    for _ in range(max_receives + 1):
        poller.poll_once()
    assert _depth(moto_cloud, "notifications") == 0
    assert _depth(moto_cloud, "notifications-dlq") == 2
    assert poller.deleted == 1  # nothing was deleted that had failed

    # The scheduled DLQ monitor sees them.
    response = moto_cloud.client("lambda").invoke(
        FunctionName=physical(STAGE, "dlq-monitor"), Payload=b"{}"
    )
    depths = json.loads(response["Payload"].read())["dead_letters"]
    assert depths == {"notifications": 2, "billing-jobs": 0, "device-events": 0}


def test_a_handler_crash_returns_the_whole_batch(
    moto_cloud: MotoCloud, poller: QueuePoller
) -> None:
    from devcloud import lambda_dispatch

    def crash(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("worker died mid-batch")

    lambda_dispatch.register(physical(STAGE, "notifications-worker"), crash)
    for _ in range(3):
        _send(moto_cloud, _notification())
    poller.poll_once()
    assert poller.deleted == 0 and poller.failed == 3
    assert _depth(moto_cloud, "notifications") == 3


def test_a_malformed_batch_response_fails_the_whole_batch(
    moto_cloud: MotoCloud, poller: QueuePoller
) -> None:
    from devcloud import lambda_dispatch

    def answer_with_unknown_id(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    lambda_dispatch.register(physical(STAGE, "notifications-worker"), answer_with_unknown_id)
    _send(moto_cloud, _notification())
    poller.poll_once()
    assert poller.deleted == 0 and poller.failed == 1
