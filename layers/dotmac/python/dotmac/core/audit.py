"""Audit bookkeeping that every request needs: did this request record its change?

Light on purpose (imported by the route wrapper at cold start); the records themselves and
their storage are in `dotmac.core.audit_trail`.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Mapping
from typing import Any

_recorded: contextvars.ContextVar[int] = contextvars.ContextVar("audit_recorded", default=0)


def digest(state: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of the canonical JSON of a state (None stays None)."""
    if state is None:
        return None
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """Names of the fields whose values differ between two states."""
    before, after = before or {}, after or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def mark_recorded() -> None:
    """Note that the current request wrote an audit record."""
    _recorded.set(_recorded.get() + 1)


def start_request() -> contextvars.Token[int]:
    """Reset the per-request counter (the route wrapper calls this)."""
    return _recorded.set(0)


def recorded() -> int:
    """How many audit records the current request wrote."""
    return _recorded.get()
