"""Management-plane items.

| item | PK | SK | GSI1 | GSI2 |
|---|---|---|---|---|
| tenant | `TENANT#<tid>` | `META` | `TENANT` / `<status>#<tid>` | `PARTNER#<pid>` / `<tid>` |
| lifecycle step | `TENANT#<tid>` | `STEP#<at>#<step>` | | |
| subdomain reservation | `SUBDOMAIN#<sub>` | `META` | | |
| subscription | `T#<tid>#SUBSCRIPTION` | `APP#<app>` | | |
| subscription event | `T#<tid>#SUBSCRIPTION_EVENT` | `<at>#<app>#<action>` | | |
| licence | `T#<tid>#LICENCE` | `<licence id>` | | |
| usage counter | `T#<tid>#USAGE` | `<metric>` or `api_calls#<YYYYMMDDHH>` | | |
| feature flag | `FLAG` | `<key>` | | |
| partner | `PARTNER#<pid>` | `META` | `PARTNER` / `<pid>` | `PARTNER#<pid>` / `#` |
| platform aggregate | `METRIC#<family>` | `<key>` | | |

A partner heads its own GSI2 partition: `#` sorts before every tenant id, so the first page
of its referred tenants comes with the partner record in one Query.
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from dotmac.core.model import TableItem

TENANT_SK = "META"
TENANTS_INDEX_PK = "TENANT"
REFERRALS_HEAD_SK = "#"  # a partner's GSI2 sort key: before its referred tenants' ids


class TenantItem(TableItem):
    """A tenant organisation: its state, plan, subscribed apps, licence and identity settings."""

    entity: ClassVar[str] = "tenant"

    name = UnicodeAttribute()
    status = UnicodeAttribute()
    plan = UnicodeAttribute()
    apps = UnicodeSetAttribute(default=set)
    mfa_required = BooleanAttribute(default=False)
    admin_email = UnicodeAttribute(null=True)
    admin_name = UnicodeAttribute(null=True)
    partner_id = UnicodeAttribute(null=True)
    licence_id = UnicodeAttribute(null=True)
    licence_expires_at = UTCDateTimeAttribute(null=True)
    request_key = UnicodeAttribute(null=True)  # sha256 of the Idempotency-Key that asked for it
    requested_apps = UnicodeSetAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    failure_reason = UnicodeAttribute(null=True)
    status_reason = UnicodeAttribute(null=True)
    export_location = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute(null=True)
    provisioned_at = UTCDateTimeAttribute(null=True)
    version = VersionAttribute()


class LifecycleStepItem(TableItem):
    """One step a lifecycle workflow took for a tenant (the tenant's step history)."""

    entity: ClassVar[str] = "lifecycle_step"

    step = UnicodeAttribute()
    outcome = UnicodeAttribute()  # ok | failed | compensated
    at = UnicodeAttribute()
    detail = UnicodeAttribute(null=True)
    execution = UnicodeAttribute(null=True)


class SubdomainItem(TableItem):
    """Reserves one subdomain for one tenant (conditional write)."""

    entity: ClassVar[str] = "subdomain"

    tenant_id = UnicodeAttribute()
    reserved_at = UTCDateTimeAttribute()


class SubscriptionItem(TableItem):
    """A tenant's subscription to one app."""

    entity: ClassVar[str] = "subscription"

    app = UnicodeAttribute()
    status = UnicodeAttribute()  # ACTIVE
    started_at = UTCDateTimeAttribute()


class SubscriptionEventItem(TableItem):
    """What changed in a tenant's subscriptions and when (billing prorates from these)."""

    entity: ClassVar[str] = "subscription_event"

    app = UnicodeAttribute()  # an app key, or "*" for a plan change
    action = UnicodeAttribute()  # subscribed | unsubscribed | plan_changed
    plan = UnicodeAttribute()
    previous_plan = UnicodeAttribute(null=True)
    at = UTCDateTimeAttribute()


class LicenceItem(TableItem):
    """A licence: which plan and apps a tenant may use, until when."""

    entity: ClassVar[str] = "licence"

    plan = UnicodeAttribute()
    apps = UnicodeSetAttribute(null=True)
    issued_at = UTCDateTimeAttribute()
    valid_until = UTCDateTimeAttribute()


class UsageItem(TableItem):
    """A shared usage counter; `exceeded_at` marks when it first went over its limit."""

    entity: ClassVar[str] = "usage"

    used = NumberAttribute(default=0, attr_name="count")
    exceeded_at = NumberAttribute(null=True)  # epoch seconds


class FlagItem(TableItem):
    """A feature flag and the rules that decide it."""

    entity: ClassVar[str] = "flag"

    description = UnicodeAttribute(default="")
    status = UnicodeAttribute()  # ACTIVE | INACTIVE
    ends_at = UTCDateTimeAttribute(null=True)
    rules = JSONAttribute(default=list)
    variants = JSONAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class PartnerItem(TableItem):
    """A reseller or referral partner."""

    entity: ClassVar[str] = "partner"

    name = UnicodeAttribute()
    email = UnicodeAttribute()
    status = UnicodeAttribute(default="ACTIVE")
    lifetime_revenue = UnicodeAttribute(default="0.00")  # Decimal as text, never float
    commission_earned = UnicodeAttribute(default="0.00")
    commission_paid_out = UnicodeAttribute(default="0.00")
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class MetricItem(TableItem):
    """A maintained platform aggregate (a counter or a sum), updated with atomic ADDs."""

    entity: ClassVar[str] = "metric"

    value = NumberAttribute(default=0)
