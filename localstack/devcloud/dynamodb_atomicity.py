"""Give moto's DynamoDB the per-request atomicity real DynamoDB has.

moto evaluates a conditional write as read-check-write in Python with no lock, so two
threads can both pass `attribute_not_exists(PK)` or `hits < :max`. DynamoDB never allows
that, and the platform's uniqueness items, counters and allocations rely on it. This module
serialises moto's DynamoDB operations behind one re-entrant lock (local-only; the emulator
is not a throughput benchmark). Pinned to the same moto version as `lambda_dispatch`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.responses import DynamoHandler

from devcloud.lambda_dispatch import check_moto_version

# Wrapped at the API handler, so the answer (e.g. ALL_NEW values) is built inside the lock
# too and reflects this request's write, not a later one.
OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_write_item",
    "batch_get_item",
    "transact_write_items",
    "transact_get_items",
)

_lock = threading.RLock()
_originals: dict[str, Callable[..., Any]] = {}


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return locked


def install() -> None:
    """Wrap each DynamoDB API operation in the lock (idempotent)."""
    check_moto_version()
    for name in OPERATIONS:
        if name not in _originals:
            original = getattr(DynamoHandler, name)
            _originals[name] = original
            setattr(DynamoHandler, name, _serialised(original))


def uninstall() -> None:
    """Restore moto's own methods."""
    for name, original in _originals.items():
        setattr(DynamoHandler, name, original)
    _originals.clear()
