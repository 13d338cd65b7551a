"""Lambda entry helpers for queue consumers and scheduled jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dotmac.core.observability import get_logger, get_metrics


def batch_handler(
    event: dict[str, Any], context: Any, handle_body: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Run `handle_body` on each SQS record's JSON body; failed records are reported back
    (`batchItemFailures`) so only they return to the queue and, after maxReceiveCount, the DLQ."""
    return counted_batch_handler(event, context, lambda body, _: handle_body(body))


def counted_batch_handler(
    event: dict[str, Any], context: Any, handle: Callable[[dict[str, Any], int], None]
) -> dict[str, Any]:
    """`batch_handler` for jobs that need to know which delivery this is: `handle(body,
    receive_count)` (1 on the first delivery), e.g. to give up cleanly on the last one."""
    import json

    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        process_partial_response,
    )
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    logger = get_logger()

    def record_handler(record: SQSRecord) -> None:
        handle(json.loads(record.body), int(record.attributes.approximate_receive_count or 1))

    processor = BatchProcessor(event_type=EventType.SQS)
    result = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failures = len(result.get("batchItemFailures", []))
    records = len(event.get("Records", []))
    logger.info("batch processed", records=records, failed=failures)
    metrics = get_metrics()
    metrics.add_metric(name="RecordsProcessed", unit="Count", value=records - failures)
    metrics.add_metric(name="RecordsFailed", unit="Count", value=failures)
    metrics.flush_metrics()
    return dict(result)


def scheduled_handler(
    event: dict[str, Any], context: Any, job: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run a scheduled job and log what it reports."""
    outcome = job()
    get_logger().info("scheduled job done", job=getattr(job, "__name__", "job"), **outcome)
    return outcome
