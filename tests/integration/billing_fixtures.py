"""Helpers for billing tests: the next period to bill and the invoice-worker driven through
the devcloud queue poller (Lambda's batch semantics, as `make run` drives it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tests.integration.identity_fixtures import Platform


def next_period() -> str:
    today = datetime.now(UTC).date()
    first = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
    return f"{first:%Y-%m}"


def poller(platform: Platform) -> Any:
    from devcloud.events import queue_mappings
    from devcloud.pollers import QueuePoller
    from infra.naming import physical
    from infra.resources import STACK

    mapping = next(m for m in queue_mappings(STACK, "test") if m.function == "invoice-worker")
    return QueuePoller(platform.cloud.session, mapping, physical("test", mapping.function))


def drain(platform: Platform, rounds: int = 20) -> None:
    worker = poller(platform)
    for _ in range(rounds):
        if worker.poll_once() == 0:
            return
