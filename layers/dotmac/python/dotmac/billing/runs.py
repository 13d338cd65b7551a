"""Billing runs: one job per ACTIVE tenant on the `billing-jobs` queue, worked by
`invoice-worker` with partial batch failures; a job that keeps failing is marked FAILED and
lands in the dead-letter queue, from where `redrive` sends it back. The same queue carries
the daily dunning jobs (one per billed tenant)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dotmac.billing import invoicing
from dotmac.core import audit_trail, aws
from dotmac.core.errors import NotFoundError
from dotmac.core.queues import queue_url
from dotmac.core.tenancy import PLATFORM_TENANT, TenantContext, platform_key

QUEUE = "billing-jobs"
MAX_RECEIVES = 3  # the queue's maxReceiveCount (infra/resources.py)
SQS_BATCH = 10


def run_pk(run_id: str) -> str:
    return platform_key("BILLRUN", run_id)


def run_id_for(period: str, idempotency_key: str) -> str:
    """The same period and key always name the same run."""
    return f"{period}-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:12]}"


def run_view(item: Any) -> dict[str, Any]:
    """Progress of a run."""
    total, done, failed = int(item.total), int(item.done), int(item.failed)
    return {
        "period": item.period,
        "status": "COMPLETED"
        if done + failed >= total and item.status == "RUNNING"
        else item.status,
        "total": total,
        "done": done,
        "failed": failed,
        "pending": max(0, total - done - failed),
        "created_at": item.created_at.isoformat(),
    }


def get_run(run_id: str) -> Any:
    """The run record (404 if none)."""
    from dotmac.billing.models import BillingRunItem
    from dotmac.core.model import ensure_bound

    ensure_bound()
    try:
        return BillingRunItem.get(run_pk(run_id), "META", consistent_read=True)
    except BillingRunItem.DoesNotExist as exc:
        raise NotFoundError(f"billing run {run_id} not found") from exc


def enqueue(bodies: list[dict[str, Any]]) -> None:
    """Send jobs to the billing queue, ten per SendMessageBatch."""
    sqs = aws.client("sqs")
    url = queue_url(QUEUE)
    for start in range(0, len(bodies), SQS_BATCH):
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(body)}
            for i, body in enumerate(bodies[start : start + SQS_BATCH])
        ]
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} billing jobs")


def start_run(ctx: TenantContext, period: str, idempotency_key: str) -> tuple[Any, bool]:
    """Create the run and queue one job per ACTIVE tenant; the same key again returns the
    first run and queues nothing. A run stays QUEUED until all its jobs are queued: if
    queueing failed (SQS did not answer, the process died), the same request again queues
    its jobs still PENDING (duplicates are harmless: each invoice is issued once). Returns
    (run, started now?)."""
    from pynamodb.exceptions import PutError

    from dotmac.billing.models import BillingJobItem, BillingRunItem
    from dotmac.core.model import ensure_bound
    from dotmac.management.repository import customer_tenant_ids

    invoicing.period_bounds(period)
    ensure_bound()
    run_id = run_id_for(period, idempotency_key)
    run = BillingRunItem(
        run_pk(run_id),
        "META",
        period=period,
        status="QUEUED",
        request_key=hashlib.sha256(idempotency_key.encode()).hexdigest(),
        requested_by=ctx.user_id,
        created_at=datetime.now(UTC),
    )
    try:
        run.save(condition=BillingRunItem.PK.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        run = get_run(run_id)
        if run.status != "QUEUED":
            audit_trail.record(ctx, "billing.run.replay", "billing_run", run_id)
            return run, False
    if int(run.total) == 0:  # no job counted yet, so none was queued: (re)write them all
        tenants = customer_tenant_ids("ACTIVE")
        with BillingJobItem.batch_write() as batch:
            for tenant_id in tenants:
                batch.save(BillingJobItem(run_pk(run_id), f"JOB#{tenant_id}", status="PENDING"))
        run.update(actions=[BillingRunItem.total.set(len(tenants))])
    else:
        pending = BillingJobItem.query(
            run_pk(run_id),
            BillingJobItem.SK.startswith("JOB#"),
            filter_condition=BillingJobItem.status == "PENDING",
            consistent_read=True,
        )
        tenants = [str(job.SK).removeprefix("JOB#") for job in pending]
    enqueue([{"run_id": run_id, "tenant_id": t, "period": period} for t in tenants])
    run.update(actions=[BillingRunItem.status.set("RUNNING")])
    audit_trail.record(
        ctx, "billing.run.start", "billing_run", run_id, after={"total": int(run.total)}
    )
    return get_run(run_id), True


def work(body: dict[str, Any], receive_count: int) -> None:
    """One job: a tenant's dunning ladder, or its invoice for the period (exactly once); on
    the last allowed delivery a failed invoice job is marked FAILED before the message goes
    to the DLQ."""
    if body.get("kind") == "dunning":
        from dotmac.billing.tenant_billing import dun

        dun(body["tenant_id"], date.fromisoformat(body["as_of"]))
        return
    if body.get("kind") == "isp_billing":
        from dotmac.isp.subscriber_billing import run_job

        run_job(body)
        return
    try:
        invoicing.invoice_tenant(body["tenant_id"], body["period"], run_id=body["run_id"])
    except Exception as exc:
        if receive_count >= MAX_RECEIVES:
            mark_failed(body["run_id"], body["tenant_id"], f"{type(exc).__name__}: {exc}")
        raise


def mark_failed(run_id: str, tenant_id: str, error: str) -> None:
    """PENDING -> FAILED and count it on the run (once)."""
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.transactions import TransactWrite

    from dotmac.billing.models import BillingJobItem, BillingRunItem
    from dotmac.core.model import shared_connection

    try:
        with TransactWrite(connection=shared_connection()) as tx:
            tx.update(
                BillingJobItem(run_pk(run_id), f"JOB#{tenant_id}"),
                actions=[
                    BillingJobItem.status.set("FAILED"),
                    BillingJobItem.error.set(error[:500]),
                ],
                condition=BillingJobItem.status == "PENDING",
            )
            tx.update(
                BillingRunItem(run_pk(run_id), "META"), actions=[BillingRunItem.failed.add(1)]
            )
    except TransactWriteError:
        return  # already FAILED (or DONE): counted before


def redrive(ctx: TenantContext, run_id: str) -> int:
    """Send the run's dead-lettered jobs back to the queue and count them as pending again."""
    from pynamodb.transactions import TransactWrite

    from dotmac.billing.models import BillingJobItem, BillingRunItem
    from dotmac.core.model import shared_connection

    get_run(run_id)
    sqs = aws.client("sqs")
    dlq, main = queue_url(f"{QUEUE}-dlq"), queue_url(QUEUE)
    moved = 0
    while True:
        batch = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = batch.get("Messages", [])
        if not messages:
            break
        for message in messages:
            body = json.loads(message["Body"])
            if body.get("run_id") != run_id:
                continue  # another run's: it becomes visible again after the timeout
            with TransactWrite(connection=shared_connection()) as tx:
                tx.update(
                    BillingJobItem(run_pk(run_id), f"JOB#{body['tenant_id']}"),
                    actions=[BillingJobItem.status.set("PENDING"), BillingJobItem.error.remove()],
                    condition=BillingJobItem.status == "FAILED",
                )
                tx.update(
                    BillingRunItem(run_pk(run_id), "META"), actions=[BillingRunItem.failed.add(-1)]
                )
            sqs.send_message(QueueUrl=main, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    audit_trail.record(ctx, "billing.run.redrive", "billing_run", run_id, after={"moved": moved})
    return moved


def previous_period(today: date) -> str:
    """The month before `today`'s (platform billing is in arrears)."""
    last_month_end = today.replace(day=1) - timedelta(days=1)
    return f"{last_month_end:%Y-%m}"


def start_scheduled_run(today: date | None = None) -> dict[str, Any]:
    """The daily trigger: bill last month once (every later day replays the same run)."""
    period = previous_period(today or datetime.now(UTC).date())
    scheduler = TenantContext(PLATFORM_TENANT, "billing-scheduler", request_id=f"run-{period}")
    run, started = start_run(scheduler, period, f"scheduled-{period}")
    return {"period": period, "started": started, "total": int(run.total)}
