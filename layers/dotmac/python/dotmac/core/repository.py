"""Base for repositories: bound to one tenant, one DynamoDB call per page.

Domain repositories subclass `TenantRepository`; keys come from the context, never from
request data, so a repository cannot address another tenant's partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from dotmac.core.model import INDEX_KEYS, TableItem, ensure_bound, shared_connection
from dotmac.core.pagination import PageRequest, encode_cursor
from dotmac.core.tenancy import TenantContext

ItemT = TypeVar("ItemT", bound=TableItem)
HeadT = TypeVar("HeadT", bound=TableItem)


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of items and the cursor of the next page (None on the last)."""

    items: list[ItemT]
    next_cursor: str | None


def page_under(parent: Callable[[], object], found: Page[ItemT], page: PageRequest) -> Page[ItemT]:
    """`found`, one page of a parent's children, or 404 when there is no such parent.

    Only an empty first page reads the parent (`parent()` raises NotFoundError), so a page
    that found something still costs its one Query, and "none yet" differs from "no such
    parent" (another tenant's id included).
    """
    if not found.items and page.cursor is None:
        parent()
    return found


def query_page(
    model: type[ItemT],
    partition_key: str,
    page: PageRequest,
    *,
    sk_prefix: str | None = None,
    index: str | None = None,
    newest_first: bool = False,
    range_condition: Any = None,
    filter_condition: Any = None,
) -> Page[ItemT]:
    """Query one partition (of the table or a GSI) for one page: exactly one Query call."""
    condition = range_condition
    if sk_prefix is not None:
        condition = getattr(model, INDEX_KEYS[index][1]).startswith(sk_prefix)
    raws, last_key = _query(
        model,
        partition_key,
        page,
        page.limit,
        index=index,
        range_key_condition=condition,
        filter_condition=filter_condition,
        scan_index_forward=not newest_first,
    )
    return Page([model.from_raw_data(raw) for raw in raws], encode_cursor(last_key))


def query_page_with_head(
    head: type[HeadT],
    model: type[ItemT],
    partition_key: str,
    page: PageRequest,
    *,
    index: str | None = None,
    range_condition: Any = None,
    newest_first: bool = False,
    consistent: bool = False,
) -> tuple[HeadT | None, Page[ItemT]]:
    """One page of `model` items and, on a first page, the `head` item whose key comes before
    theirs in the read order (e.g. a parent record beside its children): one Query.

    The head is None when a first page does not start with one, and on later pages (the
    cursor is past it: not read).
    """
    first = page.cursor is None
    raws, last_key = _query(
        model,
        partition_key,
        page,
        page.limit + first,
        index=index,
        range_key_condition=range_condition,
        scan_index_forward=not newest_first,
        consistent_read=consistent,
    )
    found = None
    if first and raws and raws[0].get("kind") == {"S": head.entity}:
        found = head.from_raw_data(raws.pop(0))
    elif len(raws) > page.limit:  # no head: the page ends one item earlier, and goes on there
        raws = raws[: page.limit]
        last_key = {name: raws[-1][name] for name in ("PK", "SK", *INDEX_KEYS[index])}
    return found, Page([model.from_raw_data(raw) for raw in raws], encode_cursor(last_key))


def _query(
    model: type[TableItem],
    partition_key: str,
    page: PageRequest,
    limit: int,
    *,
    index: str | None,
    **options: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The raw items of DynamoDB's first page of a Query (at most `limit`) and its
    LastEvaluatedKey: exactly one call."""
    ensure_bound()
    source: Any = getattr(model, index) if index else model
    results = source.query(
        partition_key,
        limit=limit,
        page_size=limit,
        last_evaluated_key=page.start_key(partition_key, INDEX_KEYS[index][0]),
        **options,
    )
    # Only DynamoDB's first page: with a filter, iterating `results` would keep querying
    # until `limit` items matched; a filtered page may be short, its cursor goes on.
    pages = results.page_iter
    raws: list[dict[str, Any]] = next(pages).get("Items", [])
    return raws, pages.last_evaluated_key


@overload
def transact_get(
    first: tuple[type[ItemT], str, str], second: tuple[type[HeadT], str, str], /
) -> tuple[ItemT | None, HeadT | None]: ...


@overload
def transact_get(*keys: tuple[type[ItemT], str, str]) -> tuple[ItemT | None, ...]: ...


def transact_get(*keys: tuple[type[TableItem], str, str]) -> tuple[TableItem | None, ...]:
    """The items at `(model, PK, SK)` keys, None where there is none: one TransactGetItems
    (strongly consistent, whatever the partitions)."""
    from pynamodb.transactions import TransactGet

    ensure_bound()
    with TransactGet(connection=shared_connection()) as transaction:
        futures = [transaction.get(model, pk, sk) for model, pk, sk in keys]
    found: list[TableItem | None] = []
    for future, (model, _, _) in zip(futures, keys, strict=True):
        try:
            found.append(future.get())
        except model.DoesNotExist:
            found.append(None)
    return tuple(found)


class TenantRepository:
    """Data access for one tenant: every key is built from `ctx`."""

    def __init__(self, ctx: TenantContext) -> None:
        ensure_bound()
        self.ctx = ctx

    def key(self, *parts: str) -> str:
        return self.ctx.key(*parts)
