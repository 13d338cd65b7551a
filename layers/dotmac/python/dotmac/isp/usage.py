"""ISP service usage: the traffic of a service per calendar month (UTC), from accounting
records (e.g. RADIUS Accounting-Request interim updates, sent by a collector).

Rules:
- A record carries its own id (the collector's, e.g. Acct-Session-Id + sequence), the time
  it was measured and the bytes downloaded and uploaded since the previous record of the
  session. It is counted once: its marker is put only if absent, in the same transaction as
  the month's counters (ADD), so a collector retrying, or sending it twice, counts nothing
  more (the answer says `counted: false`). Markers expire after 40 days (TTL).
- Only a service that exists and was activated (`started_on`) records usage; a record
  dated before its start or more than 5 minutes in the future is refused (400).
- The portal shows a customer the usage of his own services only (`dotmac.isp.portal`).

Keys (inside the tenant's space):

| pattern | calls | key condition / what is written |
|---|---|---|
| record | GetItem, TransactWriteItems | the service `ROOT`; `ISP_USAGE#<number>` / `REC#<id>` if |
| | | absent (TTL), `ISP_USAGE#<number>` / `M#<YYYY-MM>` ADD bytes, records |
| months, newest first | Query | `ISP_USAGE#<number>`, SK begins_with `M#` |
| a customer's own (portal) | Query | the same; 404 when a month belongs to someone else |
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from dotmac.core import audit_trail
from dotmac.core.errors import NotFoundError, StaleWriteError
from dotmac.core.model import TableItem
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, page_under, query_page
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import customers

if TYPE_CHECKING:
    from dotmac.isp.models import ServiceItem

USAGE, MONTH, RECORD = "ISP_USAGE", "M#", "REC#"
MARKER_DAYS = 40
FUTURE_SKEW = timedelta(minutes=5)
Bytes = Annotated[int, Field(ge=0, le=10**15)]


class UsageMonthItem(TableItem):
    """A service's traffic in one month."""

    entity: ClassVar[str] = "isp_usage_month"

    customer_id = UnicodeAttribute(null=True)  # the portal shows it to this customer only
    download_bytes = NumberAttribute(default=0)
    upload_bytes = NumberAttribute(default=0)
    records = NumberAttribute(default=0)


class UsageRecordItem(TableItem):
    """The marker of a counted accounting record (expires)."""

    entity: ClassVar[str] = "isp_usage_record"

    month = UnicodeAttribute()


class UsageRecord(BaseModel):
    """One accounting record: bytes since the session's previous record."""

    model_config = ConfigDict(extra="forbid")

    record_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    at: AwareDatetime
    download_bytes: Bytes
    upload_bytes: Bytes


def month_view(item: UsageMonthItem) -> dict[str, Any]:
    return {
        "month": str(item.SK).removeprefix(MONTH),
        "download_bytes": int(item.download_bytes),
        "upload_bytes": int(item.upload_bytes),
        "records": int(item.records),
    }


def record(ctx: TenantContext, number: str, body: UsageRecord) -> dict[str, Any]:
    """Count one accounting record against the service's month (once per record id)."""
    from dotmac.isp.services import ServiceRepository

    service = ServiceRepository(ctx).record(number, consistent=True)
    at = body.at.astimezone(UTC)
    if service.started_on is None or at.date().isoformat() < service.started_on:
        raise customers.invalid("at", "before the service was activated")
    if at > datetime.now(UTC) + FUTURE_SKEW:
        raise customers.invalid("at", "in the future")
    partition, month = ctx.key(USAGE, number), f"{MONTH}{at:%Y-%m}"
    uow = UnitOfWork(ctx)
    uow.put(
        UsageRecordItem(
            partition,
            f"{RECORD}{body.record_id}",
            month=month,
            expires_at=int(time.time()) + MARKER_DAYS * 86400,
        ),
        condition=UsageRecordItem.PK.does_not_exist(),
    )
    uow.update(
        UsageMonthItem(partition, month),
        [
            UsageMonthItem.download_bytes.add(body.download_bytes),
            UsageMonthItem.upload_bytes.add(body.upload_bytes),
            UsageMonthItem.records.add(1),
            UsageMonthItem.kind.set(UsageMonthItem.entity),
            UsageMonthItem.customer_id.set(service.customer_id),
        ],
    )
    uow.audit(
        "isp.usage.record",
        "service",
        number,
        after={"record_id": body.record_id, "month": month.removeprefix(MONTH)},
    )
    try:
        uow.commit(conflict="this record was counted already")
    except StaleWriteError:
        audit_trail.record(ctx, "isp.usage.replay", "service", number)
        return {"record_id": body.record_id, "counted": False}
    return {"record_id": body.record_id, "counted": True}


def months(ctx: TenantContext, number: str, page: PageRequest) -> Page[UsageMonthItem]:
    """The service's months, newest first: one Query (404 for no such service)."""
    return _months(ctx, number, page, lambda service: None)


def customer_months(
    ctx: TenantContext, customer_id: str, number: str, page: PageRequest
) -> Page[UsageMonthItem]:
    """The months of one of `customer_id`'s services (404 for anyone else's): one Query."""

    def owned(service: ServiceItem) -> None:
        if service.customer_id != customer_id:
            raise NotFoundError(f"service {number} not found")

    found = _months(ctx, number, page, owned)
    if any(item.customer_id != customer_id for item in found.items):
        raise NotFoundError(f"service {number} not found")
    return found


def _months(
    ctx: TenantContext, number: str, page: PageRequest, check: Callable[[ServiceItem], None]
) -> Page[UsageMonthItem]:
    """One page of the service's months; an empty first page reads the service (404 if there
    is none) and passes it to `check`."""
    from dotmac.isp.services import ServiceRepository

    services = ServiceRepository(ctx)
    services.check_id(number)
    found = query_page(
        UsageMonthItem, ctx.key(USAGE, number), page, sk_prefix=MONTH, newest_first=True
    )
    return page_under(lambda: check(services.record(number)), found, page)
