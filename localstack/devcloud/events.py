"""The event wiring of `infra.resources.STACK` as the local pollers and scheduler need it.

CloudFormation renders the same wiring as EventSourceMappings and schedule rules; the
parity test compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.naming import physical
from infra.resources import Stack


@dataclass(frozen=True)
class QueueMapping:
    """An SQS -> Lambda event source mapping (partial batch responses always on)."""

    function: str  # logical function name
    queue: str  # physical queue name
    batch_size: int
    max_batching_window: int
    visibility_timeout: int
    report_batch_item_failures: bool = True


@dataclass(frozen=True)
class Schedule:
    """A scheduled invocation: EventBridge `rate(...)` or `cron(...)`."""

    function: str  # logical function name
    expression: str


def queue_mappings(stack: Stack, stage: str) -> list[QueueMapping]:
    queues = {q.name: q for q in stack.queues}
    return [
        QueueMapping(
            function=function.name,
            queue=physical(stage, trigger.queue),
            batch_size=trigger.batch_size,
            max_batching_window=trigger.max_batching_window,
            visibility_timeout=queues[trigger.queue].visibility_timeout,
        )
        for function in stack.functions
        for trigger in function.queue_triggers
    ]


def schedules(stack: Stack) -> list[Schedule]:
    return [Schedule(f.name, f.schedule) for f in stack.functions if f.schedule]
