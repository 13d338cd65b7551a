"""Billing bench: a whole billing run for N = 100, 1,000, 10,000 tenants vs the minimal I/O.

Each size gets a fresh in-process moto stack (bootstrapped, not seeded) holding exactly N
ACTIVE tenants to bill, written straight to the table with BatchWriteItem (the provisioning
workflow is far too slow for 10,000): the tenant record, a subscription and a `subscribed`
event per app from before the period, and a billing account. Tenants vary: 1-3 apps on the
three plans, every 5th also subscribes mid-period (a prorated line), every 7th changed plan
mid-period (a split line), every other one has 20% VAT (every 4th tax-inclusive).

Run (timed): `start_run` for last month (billing is in arrears), then the `billing-jobs`
queue is drained through the devcloud `QueuePoller` as the integration tests and `make run`
drive it (receive 10, invoke the real `invoice-worker` handler through moto's Lambda API,
delete what succeeded) until every job was handled; the run record must then show
done == total and nothing failed. The worker's log lines and EMF metrics are written to
/dev/null (still produced; BENCH_VERBOSE=1 shows them). Before the timer: one
warm-up (the shared clients, the handler's lazy imports, fpdf's first render), as a warm
container has them.

Baseline ("minimal I/O", timed): what the run wrote — the table's new or changed items and
the bucket's new objects, snapshotted from the emulator before and after — written again,
as they are, to a fresh table (BatchWriteItem, 25 a call) and bucket (PutObject each);
median of 3 up to 1,000 tenants. The PDFs are written as already-rendered bytes, so
rendering is on the run's side only: every `render_pdf` during the run is timed and the
ratio is also printed without it. ratio = run / baseline; linearity = ms/tenant at N over
ms/tenant at the smallest N (1.00 = linear). DESIGN §10's bar for billing is linearity
(<= LINEARITY_BAR); the ratio says what the run costs above raw writing, which no correct
run reaches: each invoice is one conditional TransactWriteItems (gapless number, invoice,
period guard, account, job), not a share of an unconditional BatchWriteItem. Both timed
sections start from a collected heap with the emulator's state frozen out of the GC's scans.

The emulator is `stack.linear_emulator()`: moto with its table- and queue-sized costs per
Query / SendMessage / ReceiveMessage removed (BILLING_BENCH_STOCK_MOTO=1 runs stock moto,
which is quadratic: hours at 10,000).

Sizes: 100 and 1,000 tenants by default; BILLING_BENCH_SIZES=100,1000,10000 adds the 10,000
run (~7 min more), for `make bench` too; or `.venv/bin/python bench/billing.py 100,1000,10000`
for this bench alone.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, timedelta
from typing import Any

SIZES = (100, 1_000)
LINEARITY_BAR = 1.25  # ms/tenant at the largest N over the smallest
BATCH = 25  # BatchWriteItem's limit
BASELINE_STAGE = "benchbase"
BASELINE_REPEAT_UP_TO = 1_000  # tenants
LINEAR_EMULATOR = not os.environ.get("BILLING_BENCH_STOCK_MOTO")
PLANS = ("starter", "professional", "enterprise")
APPS = ("isp", "crm", "commerce", "projects")


def sizes() -> tuple[int, ...]:
    """The tenant counts to run (BILLING_BENCH_SIZES=100,1000 overrides the default)."""
    raw = os.environ.get("BILLING_BENCH_SIZES", "").strip()
    if not raw:
        return SIZES
    return tuple(int(part) for part in raw.replace("_", "").split(",") if part.strip())


def _batch_write(table: str, items: list[dict[str, Any]]) -> int:
    """Put raw items with BatchWriteItem, 25 a call (re-sending anything unprocessed)."""
    from dotmac.core import aws

    ddb = aws.client("dynamodb")
    calls = 0
    for start in range(0, len(items), BATCH):
        pending: dict[str, Any] = {
            table: [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]
        }
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            calls += 1
    return calls


def _tenant_items(index: int, period_start: date) -> list[Any]:
    """One tenant to bill for the period starting `period_start` (items not yet written)."""
    from dotmac.billing.models import ACCOUNT_SK, BillingAccountItem
    from dotmac.core.tenancy import tenant_key
    from dotmac.management import catalog
    from dotmac.management.models import (
        TENANT_SK,
        SubscriptionEventItem,
        SubscriptionItem,
        TenantItem,
    )
    from dotmac.management.repository import TenantStatus, index_keys, tenant_pk

    tenant_id = f"bench-{index:05d}"
    plan = PLANS[index % len(PLANS)]
    before = datetime.combine(period_start, datetime.min.time(), tzinfo=UTC) - timedelta(days=40)
    mid = datetime.combine(period_start, datetime.min.time(), tzinfo=UTC) + timedelta(days=9)
    subscribed = [(app, before) for app in APPS[: 1 + index % 3]]
    if index % 5 == 0:
        subscribed.append(("projects", mid))  # prorated: 10th of the month on
    items: list[Any] = []
    for app, at in subscribed:
        items.append(
            SubscriptionItem(
                tenant_key(tenant_id, "SUBSCRIPTION"),
                f"APP#{app}",
                app=app,
                status="ACTIVE",
                started_at=at,
            )
        )
        items.append(
            SubscriptionEventItem(
                tenant_key(tenant_id, "SUBSCRIPTION_EVENT"),
                f"{at.isoformat(timespec='microseconds')}#{app}#subscribed",
                app=app,
                action="subscribed",
                plan=plan,
                at=at,
            )
        )
    if index % 7 == 0:  # moved to `plan` on the 20th: the month splits between two plans
        at = mid + timedelta(days=10)
        items.append(
            SubscriptionEventItem(
                tenant_key(tenant_id, "SUBSCRIPTION_EVENT"),
                f"{at.isoformat(timespec='microseconds')}#*#plan_changed",
                app="*",
                action="plan_changed",
                plan=plan,
                previous_plan=PLANS[(index + 1) % len(PLANS)],
                at=at,
            )
        )
    items.append(
        BillingAccountItem(
            tenant_key(tenant_id, "BILLING"),
            ACCOUNT_SK,
            currency=catalog.PLANS[plan].currency,
            billing_email=f"billing@{tenant_id}.example",
            tax_inclusive=index % 4 == 0,
            tax_rates=[{"name": "VAT", "rate": "0.20"}] if index % 2 == 0 else None,
            opened_at=before,
            version=1,
        )
    )
    now = datetime.now(UTC)
    items.append(
        TenantItem(
            tenant_pk(tenant_id),
            TENANT_SK,
            name=f"Bench Tenant {index}",
            status=TenantStatus.ACTIVE.value,
            plan=plan,
            apps={app for app, _ in subscribed},
            licence_id=f"LIC-{now:%Y%m%d}-BENCH",
            licence_expires_at=now + timedelta(days=365),
            created_at=before,
            updated_at=before,
            provisioned_at=before,
            version=1,
            **index_keys(tenant_id, TenantStatus.ACTIVE.value, None),
        )
    )
    return items


def _write_fixtures(count: int, period_start: date) -> None:
    from dotmac.core.settings import get_settings

    raw = []
    for index in range(count):
        for item in _tenant_items(index, period_start):
            item.check_keys()
            raw.append(item.serialize())
    _batch_write(get_settings().table, raw)


def _table_state(table: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of `table` by (PK, SK), as raw attribute values, read from the emulator's
    memory (a Scan through the API costs ~1 ms an item in moto's serialiser: minutes at
    10,000 tenants, for a snapshot that is no part of either measurement)."""
    from stack import emulated_table

    found = emulated_table(table)
    return {
        (item.hash_key.value, item.range_key.value): item.to_json()["Attributes"]
        for items in found.items.values()
        for item in items.values()
    }


def _bucket_state(bucket: str) -> dict[str, tuple[bytes, str]]:
    """Every object of `bucket`: its bytes and content type (from the emulator's memory)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    keys = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(bucket).keys
    return {name: (key.value, key.metadata["content-type"]) for name, key in keys.items()}


@contextmanager
def _timed_rendering() -> Iterator[list[float]]:
    """Time every `documents.render_pdf` call made while inside (seconds, one per PDF)."""
    from stack import patched

    from dotmac.billing import documents

    samples: list[float] = []

    def timed(doc: Any, *, compress: bool = True) -> bytes:
        start = time.perf_counter()
        try:
            return bytes(original["render_pdf"](doc, compress=compress))
        finally:
            samples.append(time.perf_counter() - start)

    with patched(documents, render_pdf=timed) as original:
        yield samples


def _warm_up() -> None:
    """What warm containers already have, done outside the timer: the shared AWS clients,
    the logger and metrics, the modules the handler imports on first use, and fpdf's first
    render (its import and font tables)."""
    from decimal import Decimal

    from aws_lambda_powertools.utilities.batch import BatchProcessor  # noqa: F401

    from dotmac.billing import documents, invoicing, runs  # noqa: F401
    from dotmac.billing.money import Money
    from dotmac.core import aws, observability

    for service in ("dynamodb", "s3", "sqs"):
        aws.client(service)
    observability.get_logger()
    observability.get_metrics()

    usd = Money(Decimal("1.00"), "USD")
    documents.render_pdf(
        documents.InvoiceDocument(
            tenant_id="warm-up",
            tenant_name="Warm-up",
            invoice_number="INV-2000-000001",
            period="2000-01",
            issued_on=date(2000, 2, 1),
            due_on=date(2000, 3, 2),
            currency="USD",
            lines=(documents.DocumentLine("Warm-up", Decimal(1), usd, usd),),
            subtotal=usd,
            discount_total=Money(Decimal("0.00"), "USD"),
            tax_lines=(),
            total=usd,
        )
    )


def invoice_poller() -> Any:
    """The devcloud poller of the `invoice-worker` event source mapping (SQS -> Lambda)."""
    import boto3
    from stack import STAGE

    from devcloud.events import queue_mappings
    from devcloud.pollers import QueuePoller
    from infra.naming import physical
    from infra.resources import STACK

    mapping = next(m for m in queue_mappings(STACK, STAGE) if m.function == "invoice-worker")
    return QueuePoller(
        boto3.session.Session(region_name="us-east-1"), mapping, physical(STAGE, mapping.function)
    )


def _billing_run(period: str, total: int, worker: Any) -> str:
    """Start the run and drain its queue through `worker` (the poller); the run id."""
    from dotmac.billing import runs
    from dotmac.core.tenancy import PLATFORM_TENANT, TenantContext

    ctx = TenantContext(PLATFORM_TENANT, "bench-operator", request_id=f"bench-{period}")
    key = f"bench-{period}-{total}"
    run, started = runs.start_run(ctx, period, key)
    assert started and int(run.total) == total, (started, run.total, total)
    run_id = runs.run_id_for(period, key)
    handled = 0
    while handled < total:
        got = worker.poll_once()
        if got == 0:  # every job was received once and nothing is left visible: a job failed
            break
        handled += got
    state = runs.run_view(runs.get_run(run_id))
    if (state["done"], state["failed"]) != (total, 0) or worker.failed:
        raise RuntimeError(f"the billing run did not finish cleanly: {state}, {worker.failed=}")
    return run_id


def _baseline(
    items: list[dict[str, Any]], objects: dict[str, tuple[bytes, str]], attempt: int
) -> tuple[float, Counter[str]]:
    """Seconds to write `items` (BatchWriteItem) and `objects` (PutObject) to a fresh table
    and bucket, and the AWS calls that took."""
    import boto3
    from stack import aws_calls

    from dotmac.core import aws
    from infra.bootstrap import create_table
    from infra.naming import physical
    from infra.resources import STACK

    stage = f"{BASELINE_STAGE}{attempt}"
    table = create_table(boto3.session.Session(region_name="us-east-1"), STACK, stage)
    bucket = physical(stage, "objects")
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    with aws_calls() as calls, _settled():
        start = time.perf_counter()
        _batch_write(table, items)
        for key, (body, content_type) in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return time.perf_counter() - start, calls.counts()


@contextmanager
def _settled() -> Iterator[None]:
    """Collect garbage, then leave everything alive now (above all the emulator's state, which
    in AWS is not in the worker's heap) out of the collector's scans while inside, so both
    sides pay GC for their own allocations only."""
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _breakdown(
    made: list[Any], renders: list[float], run_seconds: float, count: int
) -> dict[str, dict[str, dict[str, float]]]:
    """Where the run's time went, per tenant: inside the worker (its AWS calls, PDF
    rendering, the rest: Lambda dispatch, Powertools, our code's CPU) and around it
    (start_run's calls, the poller's SQS calls, the bench's loop). A call made inside
    another (the worker's, inside the poller's `lambda:Invoke`) is the worker's."""
    tag = " (in worker)"
    calls: dict[str, list[float]] = {}
    for call in made:
        entry = calls.setdefault(call.name + (tag if call.nested else ""), [0, 0.0])
        entry[0] += 1
        entry[1] += call.seconds

    def part(n: float, seconds: float) -> dict[str, float]:
        return {"calls": n / count, "ms": seconds / count * 1000}

    ordered = sorted(calls.items(), key=lambda kv: -kv[1][1])
    worker = {name.removesuffix(tag): part(n, t) for name, (n, t) in ordered if name.endswith(tag)}
    around = {
        name: part(n, t)
        for name, (n, t) in ordered
        if not name.endswith(tag) and name != "lambda:Invoke"
    }
    invoked = calls.get("lambda:Invoke", [0, 0.0])[1]
    in_calls = sum(t for name, (_, t) in calls.items() if name.endswith(tag))
    worker["render_pdf"] = part(len(renders), sum(renders))
    worker["rest"] = part(0, invoked - in_calls - sum(renders))
    outside = sum(t for name, (_, t) in calls.items() if name in around)
    around["rest"] = part(0, run_seconds - invoked - outside)
    return {"worker": worker, "around": around}


def _measure(count: int, period: str) -> dict[str, Any]:
    from stack import aws_calls, linear_emulator, quiet_stdout, seeded_stack

    from dotmac.billing.invoicing import period_bounds
    from dotmac.core.settings import get_settings

    with seeded_stack(seed=False), linear_emulator() if LINEAR_EMULATOR else nullcontext():
        settings = get_settings()
        start = time.perf_counter()
        _write_fixtures(count, period_bounds(period)[0])
        setup = time.perf_counter() - start
        before = _table_state(settings.table)
        objects_before = set(_bucket_state(settings.bucket))
        _warm_up()
        worker = invoice_poller()
        with (
            quiet_stdout(),
            aws_calls() as calls,
            _timed_rendering() as renders,
            _settled(),
        ):
            start = time.perf_counter()
            run_id = _billing_run(period, count, worker)
            run_seconds = time.perf_counter() - start
        after = _table_state(settings.table)
        written = [item for key, item in after.items() if before.get(key) != item]
        objects = {
            k: v for k, v in _bucket_state(settings.bucket).items() if k not in objects_before
        }
        kinds = Counter(item["kind"]["S"] for item in written)
        invoices = kinds["invoice"]
        assert invoices == count, (invoices, count, run_id)
        # The baseline is short: small sizes take the median of three.
        repeats = 3 if count <= BASELINE_REPEAT_UP_TO else 1
        baselines = [_baseline(written, objects, attempt) for attempt in range(repeats)]
        baseline_seconds = statistics.median(seconds for seconds, _ in baselines)
        baseline_calls = baselines[0][1]
    render_seconds = sum(renders)
    parts = _breakdown(calls.calls, renders, run_seconds, count)
    return {
        "tenants": count,
        "setup_s": setup,
        "run_s": run_seconds,
        "per_tenant_ms": run_seconds / count * 1000,
        "render_s": render_seconds,
        "baseline_s": baseline_seconds,
        "ratio": run_seconds / baseline_seconds,
        "ratio_without_render": (run_seconds - render_seconds) / baseline_seconds,
        "items_written": len(written),
        "items_by_kind": dict(sorted(kinds.items())),
        "objects_written": len(objects),
        "object_bytes": sum(len(body) for body, _ in objects.values()),
        "ms_per_tenant_by_part": parts,
        "baseline_calls_per_tenant": {
            k: round(v / count, 2) for k, v in sorted(baseline_calls.items())
        },
    }


def run() -> dict[str, Any]:
    from dotmac.billing.runs import previous_period

    period = previous_period(datetime.now(UTC).date())
    rows = [_measure(count, period) for count in sorted(sizes())]
    smallest = rows[0]["per_tenant_ms"]
    for row in rows:
        row["linearity"] = row["per_tenant_ms"] / smallest
    return {"linearity_bar": LINEARITY_BAR, "period": period, "rows": rows}


def report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print(
        f"\nBilling run for {result['period']} (in-process moto; start_run + queue drained by the"
        f" real invoice-worker) vs minimal I/O (the same items BatchWriteItem'd, the same"
        f" objects put); bar: linearity <= {result['linearity_bar']}x"
    )
    print(
        f"{'tenants':>8} {'run s':>8} {'ms/tenant':>10} {'baseline s':>11} {'ratio':>7}"
        f" {'render s':>9} {'ratio w/o render':>17} {'linearity':>10}"
    )
    for row in rows:
        print(
            f"{row['tenants']:8d} {row['run_s']:8.2f} {row['per_tenant_ms']:10.2f}"
            f" {row['baseline_s']:11.2f} {row['ratio']:6.2f}x {row['render_s']:9.2f}"
            f" {row['ratio_without_render']:16.2f}x {row['linearity']:9.2f}x"
        )
    last = rows[-1]
    print(
        f"  per tenant the run wrote {last['items_written'] / last['tenants']:.2f} items"
        f" {last['items_by_kind']} and {last['objects_written'] / last['tenants']:.0f} objects"
        f" ({last['object_bytes'] / last['objects_written'] / 1024:.1f} KiB avg);"
        f" linearity = ms/tenant over the N={rows[0]['tenants']} figure (1.00 = linear)"
    )
    for side, label in (("worker", "in the worker"), ("around", "around it")):
        parts = ", ".join(
            f"{name} {part['ms']:.1f}" + (f" ({part['calls']:.2g}x)" if part["calls"] else "")
            for name, part in last["ms_per_tenant_by_part"][side].items()
            if part["ms"] >= 0.05
        )
        print(f"  ms per tenant at N={last['tenants']}, {label}: {parts}")
    print(f"  AWS calls per tenant, baseline: {last['baseline_calls_per_tenant']}")


def main(argv: list[str]) -> int:
    """`python bench/billing.py [SIZES]`: this bench alone (e.g. `100,1000`); its figures
    go to bench/results/billing.json (`make bench` saves them in latest.json)."""
    import json

    import run as bench_run  # puts the repo's packages on sys.path, as `make bench` does

    if argv:
        os.environ["BILLING_BENCH_SIZES"] = argv[0]
    started = time.perf_counter()
    result = run()
    report(result)
    out = bench_run.REPO / "bench" / "results" / "billing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"measured_at": time.time(), "billing": result}, indent=2))
    print(f"saved {out.relative_to(bench_run.REPO)} ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
