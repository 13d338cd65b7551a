"""Local SQS event source mappings: what Lambda's poller does, for the emulator.

For each mapping a thread long-polls the queue, gathers up to `batch_size` messages (waiting
at most `max_batching_window` seconds to fill a batch), invokes the function through the
Lambda API with an SQS event, and then deletes the records that succeeded. With
`ReportBatchItemFailures` only the listed records stay; a handler error or a malformed
response leaves the whole batch. Records left behind reappear after the queue's visibility
timeout, and SQS itself moves them to the DLQ after `maxReceiveCount` receives.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

from devcloud.events import QueueMapping
from dotmac.core.observability import get_logger

POLL_WAIT_SECONDS = 1  # short long-polls so a stop request is honoured within a second


def _record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    attributes = {k: str(v) for k, v in message.get("Attributes", {}).items()}
    message_attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(  # noqa: S324 - SQS's own digest
            message["Body"].encode()
        ).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


class QueuePoller:
    """One event source mapping: queue -> function, on its own thread."""

    def __init__(self, session: Any, mapping: QueueMapping, function_name: str) -> None:
        self.mapping = mapping
        self.function_name = function_name
        self._sqs = session.client("sqs")
        self._lambda = session.client("lambda")
        self._region = session.region_name
        self._url = self._sqs.get_queue_url(QueueName=mapping.queue)["QueueUrl"]
        self._arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"poller-{mapping.queue}", daemon=True
        )
        self.batches = 0
        self.deleted = 0
        self.failed = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, then stop."""
        self.stop_receiving()
        self._thread.join(timeout)

    def stop_receiving(self) -> None:
        """Take no new batch (the one in hand still finishes; `stop` waits for it)."""
        self._stop.set()

    def _receive_batch(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.mapping.max_batching_window
        while not self._stop.is_set() and len(messages) < self.mapping.batch_size:
            wanted = min(10, self.mapping.batch_size - len(messages))  # SQS's own cap is 10
            got = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0 if messages else POLL_WAIT_SECONDS,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if not got and (messages or time.monotonic() >= deadline):
                break
            if messages and time.monotonic() >= deadline:
                break
        return messages

    def poll_once(self) -> int:
        """Receive one batch, invoke, settle it; returns the number of records handled."""
        messages = self._receive_batch()
        if not messages:
            return 0
        records = [_record(m, self._arn, self._region) for m in messages]
        failed_ids = self._invoke({"Records": records})
        done = [r for r in records if r["messageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)
                ],
            )
        self.batches += 1
        self.deleted += len(done)
        self.failed += len(records) - len(done)
        return len(records)

    def _invoke(self, event: dict[str, Any]) -> set[str]:
        """Invoke the function; the ids of records to leave on the queue."""
        all_ids = {r["messageId"] for r in event["Records"]}
        response = self._lambda.invoke(
            FunctionName=self.function_name, Payload=json.dumps(event).encode()
        )
        payload = response["Payload"].read()
        if response.get("FunctionError"):
            get_logger().error(
                "queue handler failed; the batch returns to the queue",
                function=self.function_name,
                error=payload[:500].decode(errors="replace"),
            )
            return all_ids
        try:
            result = json.loads(payload or b"null")
            failures = (result or {}).get("batchItemFailures", [])
            failed = {str(f["itemIdentifier"]) for f in failures}
        except (ValueError, TypeError, KeyError, AttributeError):
            return all_ids  # Lambda treats an unreadable response as a whole-batch failure
        if not failed <= all_ids:
            return all_ids  # so does an itemIdentifier that is not in the batch
        return failed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep polling, as Lambda's poller does, but say why
                get_logger().exception("poller error", queue=self.mapping.queue)
                self._stop.wait(1.0)
