"""Identity items in the single table (all in the tenant's `T#{tid}#` key space).

| item | PK | SK | GSI1 |
|---|---|---|---|
| user | `T#t#USER` | `USER#<id>` | `T#t#USER_EMAIL` / `<email>` |
| email uniqueness | `T#t#EMAIL` | `EMAIL#<email>` | |
| custom role | `T#t#ROLE` | `ROLE#<name>` | |
| refresh-token family | `T#t#RT` | `FAM#<family>` | `T#t#USER_RT#<user>` / `FAM#<family>` |
"""

from __future__ import annotations

from typing import ClassVar

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)

from dotmac.core.model import TableItem


class UserItem(TableItem):
    """A user of one tenant."""

    entity: ClassVar[str] = "user"

    email = UnicodeAttribute()
    name = UnicodeAttribute()
    password_hash = UnicodeAttribute()
    status = UnicodeAttribute()  # ACTIVE | DISABLED
    roles = UnicodeSetAttribute(null=True)
    must_change_password = BooleanAttribute(default=False)
    failed_logins = NumberAttribute(default=0)
    locked_until = NumberAttribute(null=True)  # epoch seconds
    mfa_secret = UnicodeAttribute(null=True)  # KMS-encrypted, base64
    mfa_enabled = BooleanAttribute(default=False)
    mfa_last_step = NumberAttribute(null=True)  # last TOTP time step accepted (no replay)
    customer_id = UnicodeAttribute(null=True)  # links a portal user to one customer record
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class EmailItem(TableItem):
    """Reserves one email address inside a tenant (uniqueness by conditional write)."""

    entity: ClassVar[str] = "email"

    user_id = UnicodeAttribute()


class RoleItem(TableItem):
    """A tenant-defined role."""

    entity: ClassVar[str] = "role"

    description = UnicodeAttribute(default="")
    permissions = ListAttribute(of=UnicodeAttribute)
    created_at = UTCDateTimeAttribute()
    version = VersionAttribute()


class RefreshFamilyItem(TableItem):
    """One login session: the hash of its only valid refresh token, rotated on every use."""

    entity: ClassVar[str] = "refresh_family"

    user_id = UnicodeAttribute()
    token_hash = UnicodeAttribute()
    generation = NumberAttribute(default=0)
    revoked = BooleanAttribute(default=False)
    revoked_reason = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
