"""Management-plane items (platform key space: `TENANT#...`)."""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from dotmac.core.model import TableItem

TENANT_SK = "META"


class TenantItem(TableItem):
    """A tenant organisation: its state, plan, subscribed apps and identity settings."""

    entity: ClassVar[str] = "tenant"

    name = UnicodeAttribute()
    status = UnicodeAttribute()
    plan = UnicodeAttribute()
    apps = UnicodeSetAttribute(default=set)
    mfa_required = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()
