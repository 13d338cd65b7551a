"""All-or-nothing writes: a change and its audit record commit in one TransactWriteItems."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dotmac.core import audit, audit_trail
from dotmac.core.errors import StaleWriteError
from dotmac.core.model import TableItem, ensure_bound, shared_connection
from dotmac.core.tenancy import TenantContext

MAX_TRANSACTION_ITEMS = 100  # DynamoDB's limit per TransactWriteItems


def cancelled_by_another_transaction(exc: BaseException) -> bool:
    """A TransactWriteItems cancelled because a concurrent one touched the same items (no
    condition failed, nothing was written): the same write again may succeed."""
    from pynamodb.exceptions import TransactWriteError

    if not isinstance(exc, TransactWriteError):
        return False
    codes = {r.code for r in (exc.cancellation_reasons or []) if r is not None}
    return "TransactionConflict" in codes


class UnitOfWork:
    """Collects puts, updates, deletes and condition checks; `commit` writes them atomically.

    Every unit of work carries exactly one audit record (`audit(...)` is required before
    `commit`), so no mutation reaches the table without its trail.
    """

    def __init__(self, ctx: TenantContext) -> None:
        self.ctx = ctx
        self._operations: list[tuple[str, Any, dict[str, Any]]] = []
        self._audit: audit_trail.AuditItem | None = None

    def put(self, item: TableItem, condition: Any = None) -> None:
        item.check_keys()
        self._operations.append(("save", item, {"condition": condition}))

    def update(self, item: TableItem, actions: list[Any], condition: Any = None) -> None:
        self._operations.append(("update", item, {"actions": actions, "condition": condition}))

    def delete(self, item: TableItem, condition: Any = None) -> None:
        self._operations.append(("delete", item, {"condition": condition}))

    def check(self, model: type[TableItem], pk: str, sk: str, condition: Any) -> None:
        self._operations.append(
            ("condition_check", model, {"hash_key": pk, "range_key": sk, "condition": condition})
        )

    def audit(
        self,
        action: str,
        resource_type: str,
        resource_id: str,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        self._audit = audit_trail.build(
            self.ctx, action, resource_type, resource_id, before=before, after=after
        )

    def commit(self, conflict: str = "the change conflicts with the current state") -> None:
        """Write everything or nothing; a failed condition is a 409 with `conflict`."""
        from pynamodb.exceptions import TransactWriteError
        from pynamodb.transactions import TransactWrite

        if self._audit is None:
            raise RuntimeError("a unit of work must record what it does (call audit())")
        if len(self._operations) + 1 > MAX_TRANSACTION_ITEMS:
            raise RuntimeError("too many writes for one transaction")
        ensure_bound()
        try:
            with TransactWrite(connection=shared_connection()) as tx:
                for operation, target, arguments in self._operations:
                    kwargs = {k: v for k, v in arguments.items() if v is not None}
                    if operation == "condition_check":
                        tx.condition_check(target, **kwargs)
                    else:
                        getattr(tx, operation)(target, **kwargs)
                tx.save(self._audit)
        except TransactWriteError as exc:
            reasons = [r.code for r in exc.cancellation_reasons if r is not None]
            if "ConditionalCheckFailed" in reasons:
                raise StaleWriteError(conflict) from exc
            raise
        audit.mark_recorded()
