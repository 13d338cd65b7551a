"""Who is asking, for which tenant — and the key builders that keep tenants apart.

Every tenant-owned partition key (and GSI partition key) starts with `T#{tenant_id}#`.
Repositories take a `TenantContext` and build keys with `tenant_key`, so a request can
only ever address its own tenant's partitions. Platform items use their own prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dotmac.core.errors import ValidationError

PLATFORM_TENANT = "platform"
TENANT_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KEY_SEPARATOR = "#"
PLATFORM_PREFIXES = frozenset(
    {
        "TENANT",
        "BILLRUN",
        "APP",
        "PLAN",
        "SUBDOMAIN",
        "PARTNER",
        "FLAG",
        "RATE",
        "IDEMPOTENCY",
        "METRIC",
        "SIGNING_KEY",
    }
)


def validate_tenant_id(tenant_id: str) -> str:
    """Return `tenant_id` if it is a well-formed tenant id, else raise `ValidationError`."""
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise ValidationError(f"invalid tenant id: {tenant_id!r}")
    return tenant_id


def _check_parts(parts: tuple[str, ...]) -> None:
    for part in parts:
        if not part or KEY_SEPARATOR in part:
            raise ValidationError(f"invalid key part: {part!r}")


def tenant_key(tenant_id: str, *parts: str) -> str:
    """`T#{tenant_id}#part#part`: the only way to build a tenant-owned key."""
    validate_tenant_id(tenant_id)
    _check_parts(parts)
    return KEY_SEPARATOR.join(("T", tenant_id, *parts))


def platform_key(prefix: str, *parts: str) -> str:
    """`PREFIX#part#...` for platform items (tenants, catalog, plans, ...)."""
    if prefix not in PLATFORM_PREFIXES:
        raise ValueError(f"unknown platform key prefix {prefix!r}")
    _check_parts(parts)
    return KEY_SEPARATOR.join((prefix, *parts))


def tenant_of_key(key: str) -> str | None:
    """The tenant id a key belongs to, or None for a platform key."""
    if not key.startswith("T#"):
        return None
    return key.split(KEY_SEPARATOR, 2)[1]


@dataclass(frozen=True)
class TenantContext:
    """The verified caller: built by the authorizer from token claims only."""

    tenant_id: str
    user_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    permissions: frozenset[str] = field(default_factory=frozenset)
    apps: frozenset[str] = field(default_factory=frozenset)
    tenant_status: str = "ACTIVE"
    request_id: str = ""
    customer_id: str | None = None  # an ISP portal user's own customer record

    def __post_init__(self) -> None:
        validate_tenant_id(self.tenant_id)

    @property
    def is_platform(self) -> bool:
        return self.tenant_id == PLATFORM_TENANT

    def key(self, *parts: str) -> str:
        """A partition or sort key inside this tenant's key space."""
        return tenant_key(self.tenant_id, *parts)

    def owns(self, key: str) -> bool:
        """True when `key` lies inside this tenant's key space."""
        return tenant_of_key(key) == self.tenant_id
