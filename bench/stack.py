"""The whole stack in in-process moto, as the benches use it: Step Functions executing,
every Lambda dispatched to its real handler, DynamoDB writes atomic, demo data seeded."""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STAGE = "bench"


@contextmanager
def seeded_stack(*, seed: bool = True) -> Iterator[None]:
    """Bootstrap (and, unless `seed=False`, seed) the stack inside `mock_aws`; undo the
    patches on exit."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        DOTMAC_STAGE=STAGE,
        POWERTOOLS_METRICS_NAMESPACE="DotMacBench",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from devcloud import dynamodb_atomicity, lambda_dispatch, registry
    from devcloud import seed as seed_data
    from infra.bootstrap import bootstrap
    from infra.naming import physical
    from infra.resources import STACK

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        lambda_dispatch.install()
        dynamodb_atomicity.install()
        try:
            bootstrap(boto3.session.Session(region_name="us-east-1"), stage=STAGE)
            for function in STACK.functions:
                lambda_dispatch.register(physical(STAGE, function.name), registry.handler(function))
            if seed:
                seed_data.run()
            yield
        finally:
            lambda_dispatch.uninstall()
            dynamodb_atomicity.uninstall()


def median_seconds(fn: Callable[[], Any], n: int) -> float:
    """The median wall time of `n` calls of `fn`."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def gateway() -> Any:
    """The local API gateway in front of every HTTP app (the real authorizer included)."""
    from devcloud import registry
    from devcloud.gateway import Gateway
    from infra.resources import STACK

    return Gateway({app: registry.chalice_app(app) for app in STACK.http_apps})


def bearer(through: Any, email: str) -> str:
    """An `Authorization` header for a seeded ABC Corp user, signed in through `through`."""
    import json

    from devcloud import seed

    body = {"tenant": seed.ABC_CORP, "email": email, "password": seed.DEMO_PASSWORD}
    status, _, answer = through.handle(
        "POST",
        "/api/v1/auth/login",
        {"Content-Type": "application/json"},
        json.dumps(body).encode(),
    )
    assert status == 200, answer
    return f"Bearer {json.loads(answer)['data']['attributes']['access_token']}"


@contextmanager
def patched(owner: Any, **replacements: Any) -> Iterator[dict[str, Any]]:
    """Replace attributes of `owner` (a class or module) while inside; yields the originals
    (as stored: a property object stays a property)."""
    originals = {name: vars(owner)[name] for name in replacements}
    for name, value in replacements.items():
        setattr(owner, name, value)
    try:
        yield originals
    finally:
        for name, value in originals.items():
            setattr(owner, name, value)


@contextmanager
def counted_aws_calls() -> Iterator[Counter[str]]:
    """Count every AWS call any botocore client makes (`service:Operation`), while inside."""
    from botocore.client import BaseClient

    calls: Counter[str] = Counter()

    def counting(self: Any, operation: str, params: Any) -> Any:
        calls[f"{self.meta.service_model.service_name}:{operation}"] += 1
        return original["_make_api_call"](self, operation, params)

    with patched(BaseClient, _make_api_call=counting) as original:
        yield calls


@contextmanager
def linear_emulator() -> Iterator[None]:
    """Give moto's DynamoDB Query and SQS send/receive the cost the real services have (not
    growing with the table or the queue); results and their order are unchanged.

    moto 5.2.5, unpatched, makes a per-tenant workload quadratic in the emulator alone:
    - DynamoDB `Table.query` starts from `all_items()`, which sorts every item of the table
      (DynamoType comparisons) on every call. Here `all_items()` called from a table query
      returns the queried partition, and from an index query every item unsorted (the query
      sorts its matches itself). Scans still use the sorted listing. (An index query still
      walks the whole table: O(table) per page remains.)
    - SQS computes all of a queue's attributes, including three counts that walk every
      message, to read one: `ContentBasedDeduplication` on each SendMessage and
      `MessageRetentionPeriod` on each message received. Here those two reads take the one
      attribute; and the visible-message listing each ReceiveMessage walks reads the clock
      once, not twice per message (it still walks the queue: O(queue) per receive remains).
    """
    import threading
    from contextlib import ExitStack

    from moto.core.utils import unix_time, unix_time_millis
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import Queue, SQSBackend

    from devcloud.lambda_dispatch import check_moto_version

    check_moto_version()
    scope = threading.local()
    every = object()  # an index query's marker
    table_ = dict(vars(Table))  # the originals, before patching
    backend_ = dict(vars(SQSBackend))
    queue_ = dict(vars(Queue))

    def all_items(self: Any) -> Any:
        partition = getattr(scope, "partition", None)
        if partition is None or not self.range_key_attr:
            return table_["all_items"](self)
        if partition is every:
            return [item for items in self.items.values() for item in items.values()]
        return list(self.items.get(partition, {}).values())

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs["index_name"] if "index_name" in kwargs else (args[6:7] or [None])[0]
        scope.partition = every if index_name else hash_key
        try:
            return table_["query"](self, hash_key, *args, **kwargs)
        finally:
            scope.partition = None

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        scope.sending = True
        try:
            return backend_["send_message"](self, *args, **kwargs)
        finally:
            scope.sending = False

    def attributes(self: Any) -> Any:
        if not getattr(scope, "sending", False):
            return queue_["attributes"].fget(self)
        if not self.fifo_queue:  # what SendMessage reads: only FIFO queues have it
            return {}
        value = self.content_based_deduplication
        return {
            "ContentBasedDeduplication": str(value).lower() if isinstance(value, bool) else value
        }

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        retention = self.get_queue(queue_name).message_retention_period
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    with ExitStack() as stack:
        stack.enter_context(patched(Table, query=query, all_items=all_items))
        stack.enter_context(
            patched(
                SQSBackend,
                send_message=send_message,
                is_message_valid_based_on_retention_period=retained,
            )
        )
        stack.enter_context(
            patched(Queue, attributes=property(attributes), messages=property(messages))
        )
        yield
