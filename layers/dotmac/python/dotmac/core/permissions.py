"""Permission strings `app:resource:action` with `*` wildcards, and the built-in public marker."""

from __future__ import annotations

from collections.abc import Iterable

PUBLIC = "public"
# Apps every tenant has; the others (isp, crm, commerce, projects) need a subscription.
CORE_APPS = frozenset({"identity", "tenant", "platform"})


def _segments(permission: str) -> list[str]:
    parts = permission.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"permission must be app:resource:action, got {permission!r}")
    return parts


def grants(granted: str, required: str) -> bool:
    """True when the granted permission (may hold `*` segments) covers the required one."""
    return all(g in ("*", r) for g, r in zip(_segments(granted), _segments(required), strict=True))


def allowed(granted: Iterable[str], required: str) -> bool:
    """True when any granted permission covers `required`."""
    return any(grants(g, required) for g in granted)


def app_of(permission: str) -> str:
    """The app segment of a permission (`isp` for `isp:customers:read`)."""
    return _segments(permission)[0]
