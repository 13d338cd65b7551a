"""Queue consumers and scheduled jobs (no HTTP routes)."""

from typing import Any

from chalice import Chalice

from dotmac.core.workers import batch_handler, counted_batch_handler, scheduled_handler

app = Chalice(app_name="dotmac-workers")


@app.lambda_function(name="deliver_notifications")
def deliver_notifications(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS `notifications` -> the notification outbox, reporting partial batch failures."""
    from dotmac.notifications.service import deliver

    return batch_handler(event, context, deliver)


@app.lambda_function(name="monitor_dead_letter_queues")
def monitor_dead_letter_queues(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every 5 minutes: publish each dead-letter queue's depth as a metric."""
    from dotmac.core.queues import dead_letter_depths

    return scheduled_handler(event, context, dead_letter_depths)


@app.lambda_function(name="run_billing_jobs")
def run_billing_jobs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS `billing-jobs` -> invoices (one per tenant and period) and dunning ladders,
    reporting partial batch failures."""
    from dotmac.billing.runs import work

    return counted_batch_handler(event, context, work)


@app.lambda_function(name="start_scheduled_billing")
def start_scheduled_billing(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Daily: start last month's billing run (once; later days find it started)."""
    from dotmac.billing.runs import start_scheduled_run

    return scheduled_handler(event, context, start_scheduled_run)


@app.lambda_function(name="start_scheduled_dunning")
def start_scheduled_dunning(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Daily: queue one dunning job per billed tenant and one subscriber billing job per
    ACTIVE tenant (the invoice-worker runs them)."""
    from datetime import UTC, datetime

    from dotmac.billing.tenant_billing import start_dunning
    from dotmac.isp.subscriber_billing import start_scheduled

    def run() -> dict[str, Any]:
        today = datetime.now(UTC).date()
        return {
            "as_of": today.isoformat(),
            "queued": start_dunning(today),
            "isp_billing_queued": start_scheduled(today),
        }

    return scheduled_handler(event, context, run)


@app.lambda_function(name="sweep_ticket_slas")
def sweep_ticket_slas(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Every 5 minutes: record SLA breaches of open ISP tickets and queue their escalations."""
    from dotmac.isp.tickets import sweep_all

    return scheduled_handler(event, context, sweep_all)


@app.lambda_function(name="ingest_device_events")
def ingest_device_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS `device-events` -> device status (and one alert per change to DOWN), reporting
    partial batch failures."""
    from dotmac.isp.network import apply_status_event

    return batch_handler(event, context, apply_status_event)
