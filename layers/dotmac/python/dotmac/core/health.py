"""Health probes: live (process up), ready (table, queues, bucket answer), startup (init done)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dotmac.core import aws
from dotmac.core.settings import get_settings

# Queues every function may send to; infra/resources.py is the source, but the layer must not
# import infra (it is not shipped to Lambda), so the names the layer uses are listed here and a
# test checks they exist in infra.
QUEUES = ("notifications", "billing-jobs", "device-events")

_started_at: float | None = None


def mark_started() -> None:
    """Record that this process finished initialising (called by the app factory)."""
    global _started_at
    if _started_at is None:
        _started_at = time.time()


def started() -> bool:
    return _started_at is not None


@dataclass(frozen=True)
class Check:
    """The outcome of probing one dependency."""

    name: str
    ok: bool
    detail: str
    millis: float


def _probe(name: str, call: object) -> Check:
    start = time.perf_counter()
    try:
        call()  # type: ignore[operator]
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return Check(name, False, type(exc).__name__, (time.perf_counter() - start) * 1000)
    return Check(name, True, "ok", (time.perf_counter() - start) * 1000)


def readiness() -> list[Check]:
    """Probe the table, each queue and the bucket in parallel."""
    settings = get_settings()
    probes: dict[str, object] = {
        f"table:{settings.table}": lambda: aws.client("dynamodb").describe_table(
            TableName=settings.table
        ),
        f"bucket:{settings.bucket}": lambda: aws.client("s3").head_bucket(Bucket=settings.bucket),
    }
    for logical in QUEUES:
        name = settings.queue_name(logical)
        probes[f"queue:{name}"] = lambda name=name: aws.client("sqs").get_queue_url(QueueName=name)
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        return list(pool.map(lambda item: _probe(*item), probes.items()))
