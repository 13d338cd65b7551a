"""The whole stack in in-process moto, as the benches use it: Step Functions executing,
every Lambda dispatched to its real handler, DynamoDB writes atomic, demo data seeded."""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


class Client:
    """One signed-in user's requests through the gateway (`ok`/`created` paths are under
    `base`; `call` takes whole paths)."""

    def __init__(self, through: Any, email: str, *, tenant: str = "", base: str = "") -> None:
        from devcloud import seed

        self.through = through
        self.base = base
        self.headers = {"Content-Type": "application/json"}
        body = {"tenant": tenant or seed.ABC_CORP, "email": email, "password": seed.DEMO_PASSWORD}
        status, answer = self.call("POST", "/api/v1/auth/login", body)
        assert status == 200, answer
        token = answer["data"]["attributes"]["access_token"]
        self.headers["Authorization"] = f"Bearer {token}"

    def at(self, base: str) -> Client:
        """The same user, with `ok`/`created` paths under `base`."""
        other = copy.copy(self)
        other.base = base
        return other

    def call(
        self, method: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, dict[str, Any]]:
        raw = None if body is None else json.dumps(body).encode()
        status, _, answer = self.through.handle(method, path, {**self.headers, **headers}, raw)
        return status, json.loads(answer) if answer else {}

    def ok(self, method: str, path: str, body: Any = None, **headers: str) -> dict[str, Any]:
        status, answer = self.call(method, self.base + path, body, **headers)
        assert status < 300, (path, answer)
        return answer

    def created(self, path: str, body: Any, **headers: str) -> str:
        return str(self.ok("POST", path, body, **headers)["data"]["id"])


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


@dataclass(frozen=True)
class Call:
    """One AWS call, as botocore's event hooks saw it."""

    part: str  # what was running when it was made (`AwsCalls.within`), "route" by default
    service: str
    operation: str
    params: dict[str, Any]
    seconds: float  # from the client method's call to its parsed answer (or error)
    nested: bool  # made while another call of the same thread was in flight

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"


class AwsCalls:
    """The AWS calls made while `aws_calls()` records them, each filed under a part."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.part = "route"
        self.active = True
        self._thread = threading.local()

    def counts(self, part: str | None = None) -> Counter[str]:
        """`service:Operation` -> calls (of `part` only, when given)."""
        return Counter(c.name for c in self.calls if part is None or c.part == part)

    def clear(self) -> None:
        self.calls.clear()

    def within(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, the calls it makes filed under `part`."""

        def run(*args: Any, **kwargs: Any) -> Any:
            outer, self.part = self.part, part
            try:
                return fn(*args, **kwargs)
            finally:
                self.part = outer

        return run

    def started(self, params: Any, model: Any, context: dict[str, Any], **_: Any) -> None:
        """`provide-client-params`: the first event of a call (and of a presigned URL)."""
        if self.active:
            context[_STARTED] = [time.perf_counter(), self.part, model, params, False]

    def sending(self, context: dict[str, Any], **_: Any) -> None:
        """`before-call`: the call is going out (valid parameters, not a presigned URL)."""
        found = context.get(_STARTED)
        if found is not None:
            depth = getattr(self._thread, "depth", 0)
            self._thread.depth = depth + 1
            found[-1] = depth > 0

    def ended(self, context: dict[str, Any], **_: Any) -> None:
        """`after-call` (an answer, error statuses included) or `after-call-error` (none)."""
        found = context.pop(_STARTED, None)
        if found is None:
            return
        started, part, model, params, nested = found
        self._thread.depth -= 1
        service = model.service_model.service_name
        seconds = time.perf_counter() - started
        self.calls.append(Call(part, service, model.name, params, seconds, nested))


_STARTED = "bench.aws_calls"


@contextmanager
def aws_calls() -> Iterator[AwsCalls]:
    """Record every AWS call any botocore client makes while inside, with botocore's event
    hooks: registered on every live session and client, and as built-in handlers of the
    sessions made meanwhile (moto's Step Functions makes a client per task)."""
    import gc

    from botocore import handlers
    from botocore.client import BaseClient
    from botocore.session import Session

    if gc.get_freeze_count():  # gc.get_objects() would not see the frozen clients
        raise RuntimeError("aws_calls() must be entered before gc.freeze()")
    recorder = AwsCalls()
    hooks = [
        ("provide-client-params", recorder.started),
        ("before-call", recorder.sending),
        ("after-call", recorder.ended),
        ("after-call-error", recorder.ended),
    ]
    emitters = [
        found.meta.events if isinstance(found, BaseClient) else found.get_component("event_emitter")
        for found in gc.get_objects()
        if isinstance(found, BaseClient | Session)
    ]
    unique = f"bench-{id(recorder)}"
    for emitter in emitters:
        for event, hook in hooks:
            emitter.register(event, hook, unique_id=f"{unique}-{event}")
    handlers.BUILTIN_HANDLERS.extend(hooks)
    try:
        yield recorder
    finally:
        recorder.active = False  # sessions made meanwhile keep the hooks: now no-ops
        for hook in hooks:
            handlers.BUILTIN_HANDLERS.remove(hook)
        for emitter in emitters:
            for event, _ in hooks:
                emitter.unregister(event, unique_id=f"{unique}-{event}")


def emulated_table(name: str) -> Any:
    """moto's in-memory table `name` (for snapshots the API would take minutes to make)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(name)


def warm_overhead(
    calls: AwsCalls, request: Callable[[], int], n: int, *, writes: bool = False
) -> dict[str, Any]:
    """A warm request vs the bare data-access calls it makes (DESIGN §10: <= 1.3x).

    Full: `request()` through the gateway (authorizer, tenancy, limiter, validation, view,
    envelope). Bare: the calls the route itself made (not the authorizer's or the meters',
    see `AwsCalls.within`), sent again with the shared boto3 clients exactly as they were sent:
    all of them (DynamoDB, and e.g. KMS for the PII envelopes), and the DynamoDB ones alone.
    Reads: each request's calls are replayed right after it, over `n` interleaved rounds.
    Writes cannot be re-sent against the state they changed (their conditions would fail):
    the table is copied, the `n` requests made, then for each bare variant the copy restored
    and every request's calls replayed in order, so each call meets the state it first met.
    Medians of the `n` rounds, after 20 requests of warm-up.
    """
    from botocore import xform_name

    from dotmac.core import aws
    from dotmac.core.settings import get_settings

    def full() -> tuple[float, list[Call]]:
        calls.clear()
        start = time.perf_counter()
        status = request()
        seconds = time.perf_counter() - start
        assert status < 300, status
        return seconds, [c for c in calls.calls if c.part == "route" and not c.nested]

    def replay(made: list[Call]) -> float:
        start = time.perf_counter()
        for c in made:
            getattr(aws.client(c.service), xform_name(c.operation))(**c.params)
        return time.perf_counter() - start

    def dynamodb(made: list[Call]) -> list[Call]:
        return [c for c in made if c.service == "dynamodb"]

    for _ in range(20):
        full()
    samples: dict[str, list[float]] = {"full": [], "bare": [], "dynamodb": []}
    if writes:
        table = emulated_table(get_settings().table)
        before = copy.deepcopy(table.items)
        rounds = [full() for _ in range(n)]
        samples["full"] = [seconds for seconds, _ in rounds]
        for name, keep in (("bare", list), ("dynamodb", dynamodb)):
            table.items = copy.deepcopy(before)
            samples[name] = [replay(keep(made)) for _, made in rounds]
        made = rounds[0][1]
    else:
        for _ in range(n):
            seconds, made = full()
            samples["full"].append(seconds)
            samples["bare"].append(replay(made))
            samples["dynamodb"].append(replay(dynamodb(made)))
    median = {name: statistics.median(times) for name, times in samples.items()}
    return {
        "n": n,
        "calls": dict(Counter(c.name for c in made)),
        "full_ms": median["full"] * 1000,
        "bare_ms": median["bare"] * 1000,
        "dynamodb_ms": median["dynamodb"] * 1000,
        "ratio": median["full"] / median["bare"],
        "ratio_vs_dynamodb": median["full"] / median["dynamodb"] if median["dynamodb"] else None,
    }


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send fd 1 to /dev/null while inside (BENCH_VERBOSE=1: don't): the functions' JSON log
    lines and EMF metrics are still produced and written (their cost counts), just not
    onto the bench's table."""
    if os.environ.get("BENCH_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


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
