"""Give moto's DynamoDB the per-request atomicity real DynamoDB has, at a cost that does
not grow with the table.

moto evaluates a conditional write as read-check-write in Python with no lock, so two
threads can both pass `attribute_not_exists(PK)` or `hits < :max`. DynamoDB never allows
that, and the platform's uniqueness items, counters and allocations rely on it. This module
serialises moto's DynamoDB operations behind one re-entrant lock (local-only; the emulator
is not a throughput benchmark).

moto also makes `TransactWriteItems` all-or-nothing by deep-copying the whole table once per
item of the transaction before writing, so every transaction costs time and memory in
proportion to the table (a local stack with a hundred tenants spent seconds and gigabytes
per provisioning run). Here a transaction keeps copies of only the items it touches and
puts them back if it is cancelled. Pinned to the same moto version as `lambda_dispatch`.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend, Table
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


class _TablesAreNotCopied:
    """Stands in for the `copy` module inside `moto.dynamodb.models`: a Table "copy" is the
    table itself (its rollback is done item by item instead); anything else is copied."""

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


def _touched(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Any]:
    """(table, key, copy of the item or None) for every item a transaction addresses."""
    found = []
    for entry in transact_items:
        _, operation = next(iter(entry.items()))
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            continue
        key = operation.get("Key")
        if "Item" in operation:
            names = [table.hash_key_attr, table.range_key_attr]
            key = {n: operation["Item"][n] for n in names if n and n in operation["Item"]}
        try:
            current = backend.get_item(table.name, key)
        except Exception:  # noqa: S112 - a malformed key: moto itself refuses the transaction
            continue
        found.append((table.name, key, copy.deepcopy(current)))
    return found


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    before = _touched(self, transact_items)
    try:
        _originals["backend.transact_write_items"](self, transact_items)
    except Exception:
        for table_name, key, item in reversed(before):
            if item is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, item.to_json()["Attributes"])
        raise


def install() -> None:
    """Wrap each DynamoDB API operation in the lock, and make transactions roll back item by
    item (idempotent)."""
    check_moto_version()
    for name in OPERATIONS:
        if name not in _originals:
            original = getattr(DynamoHandler, name)
            _originals[name] = original
            setattr(DynamoHandler, name, _serialised(original))
    if "backend.transact_write_items" not in _originals:
        _originals["backend.transact_write_items"] = DynamoDBBackend.transact_write_items
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
        dynamodb_models.copy = _TablesAreNotCopied  # type: ignore[assignment]


def uninstall() -> None:
    """Restore moto's own methods."""
    for name, original in _originals.items():
        if name == "backend.transact_write_items":
            DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]
            dynamodb_models.copy = copy
        else:
            setattr(DynamoHandler, name, original)
    _originals.clear()
