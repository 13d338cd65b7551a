"""The audit trail: one record per mutation, in the tenant's key space.

A record says who (user id), in which tenant, did what (`app.resource.verb`) to which
resource, in which request, when — and a SHA-256 digest of the before and after states
plus the names of the fields that changed, never the values (no PII in the trail).
Records are written in the same transaction as the change (`UnitOfWork.audit`), and the
route wrapper refuses to answer 2xx to a mutation that recorded nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pynamodb.attributes import ListAttribute, UnicodeAttribute

from dotmac.core.audit import changed_fields, digest, mark_recorded
from dotmac.core.model import TableItem
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import Page, TenantRepository, query_page
from dotmac.core.tenancy import TenantContext

ACTION_PATTERN = re.compile(r"^[a-z_]+\.[a-z_]+\.[a-z_]+$")


class AuditItem(TableItem):
    """One audit record."""

    entity: ClassVar[str] = "audit"

    actor = UnicodeAttribute()
    action = UnicodeAttribute()
    resource_type = UnicodeAttribute()
    resource_id = UnicodeAttribute()
    request_id = UnicodeAttribute()
    at = UnicodeAttribute()
    before_digest = UnicodeAttribute(null=True)
    after_digest = UnicodeAttribute(null=True)
    changed = ListAttribute(of=UnicodeAttribute, default=list)
    outcome = UnicodeAttribute(default="ok")


def build(
    ctx: TenantContext,
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    outcome: str = "ok",
) -> AuditItem:
    """The audit record for one change made by `ctx` (not yet written)."""
    if not ACTION_PATTERN.fullmatch(action):
        raise ValueError(f"audit action must be app.resource.verb, got {action!r}")
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    sort_key = f"{at}#{uuid.uuid4().hex}"
    return AuditItem(
        ctx.key("AUDIT"),
        sort_key,
        GSI1PK=ctx.key("AUDIT_USER", ctx.user_id),
        GSI1SK=sort_key,
        GSI2PK=ctx.key("AUDIT_ACTION", action),
        GSI2SK=sort_key,
        actor=ctx.user_id,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        request_id=ctx.request_id or "-",
        at=at,
        before_digest=digest(before),
        after_digest=digest(after),
        changed=changed_fields(before, after),
        outcome=outcome,
    )


def record(
    ctx: TenantContext, action: str, resource_type: str, resource_id: str, **states: Any
) -> None:
    """Write one audit record on its own (for events with no other write, e.g. a login)."""
    item = build(ctx, action, resource_type, resource_id, **states)
    item.save()
    mark_recorded()


class AuditRepository(TenantRepository):
    """Reads the tenant's trail, newest first: by user, by action, or all, within a time range."""

    def page(
        self,
        page: PageRequest,
        *,
        user_id: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> Page[AuditItem]:
        if user_id is not None:
            partition, index = self.key("AUDIT_USER", user_id), "gsi1"
        elif action is not None:
            partition, index = self.key("AUDIT_ACTION", action), "gsi2"
        else:
            partition, index = self.key("AUDIT"), None
        sort_attribute = {None: AuditItem.SK, "gsi1": AuditItem.GSI1SK, "gsi2": AuditItem.GSI2SK}[
            index
        ]
        condition: Any = None
        upper = None if until is None else until + "\uffff"  # `to` includes that whole instant
        if since is not None and upper is not None:
            condition = sort_attribute.between(since, upper)
        elif since is not None:
            condition = sort_attribute >= since
        elif upper is not None:
            condition = sort_attribute <= upper
        filter_condition = None
        if user_id is not None and action is not None:
            filter_condition = AuditItem.action == action
        return query_page(
            AuditItem,
            partition,
            page,
            index=index,
            newest_first=True,
            range_condition=condition,
            filter_condition=filter_condition,
        )
