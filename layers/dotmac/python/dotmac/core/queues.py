"""Sending jobs to the platform's queues and watching their dead-letter queues."""

from __future__ import annotations

import json
import threading
from typing import Any

from dotmac.core import aws, health
from dotmac.core.observability import get_logger, get_metrics
from dotmac.core.settings import get_settings

_urls: dict[str, str] = {}
_lock = threading.Lock()


def queue_url(logical: str) -> str:
    """The URL of queue `logical` (e.g. "notifications" or "notifications-dlq"), cached."""
    name = get_settings().queue_name(logical)
    if name not in _urls:
        url = aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        with _lock:
            _urls[name] = url
    return _urls[name]


def reset_queue_urls() -> None:
    """Forget cached queue URLs (tests switch emulators between cases)."""
    with _lock:
        _urls.clear()


def send(logical: str, body: dict[str, Any], *, dedup_id: str | None = None) -> str:
    """Send one JSON job; returns the message id."""
    attributes = {}
    if dedup_id is not None:
        attributes["dedup_id"] = {"DataType": "String", "StringValue": dedup_id}
    response = aws.client("sqs").send_message(
        QueueUrl=queue_url(logical),
        MessageBody=json.dumps(body, separators=(",", ":"), default=str),
        MessageAttributes=attributes,
    )
    return str(response["MessageId"])


def dead_letter_depths() -> dict[str, Any]:
    """Each DLQ's approximate depth, emitted as the EMF metric `DeadLetterMessages`."""
    sqs = aws.client("sqs")
    metrics = get_metrics()
    depths: dict[str, int] = {}
    for logical in health.QUEUES:
        attributes = sqs.get_queue_attributes(
            QueueUrl=queue_url(f"{logical}-dlq"), AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        depths[logical] = int(attributes["ApproximateNumberOfMessages"])
        metrics.add_dimension(name="queue", value=logical)
        metrics.add_metric(name="DeadLetterMessages", unit="Count", value=depths[logical])
        metrics.flush_metrics()
        if depths[logical]:
            get_logger().warning("dead letters waiting", queue=logical, depth=depths[logical])
    return {"dead_letters": depths}
