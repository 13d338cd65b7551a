"""Base for repositories: bound to one tenant, one DynamoDB call per page.

Domain repositories subclass `TenantRepository`; keys come from the context, never from
request data, so a repository cannot address another tenant's partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dotmac.core.model import INDEX_KEYS, TableItem, ensure_bound
from dotmac.core.pagination import PageRequest, encode_cursor
from dotmac.core.tenancy import TenantContext

ItemT = TypeVar("ItemT", bound=TableItem)


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of items and the cursor of the next page (None on the last)."""

    items: list[ItemT]
    next_cursor: str | None


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
    ensure_bound()
    source: Any = getattr(model, index) if index else model
    pk_attribute, sk_attribute = INDEX_KEYS[index]
    condition = range_condition
    if sk_prefix is not None:
        condition = getattr(model, sk_attribute).startswith(sk_prefix)
    results = source.query(
        partition_key,
        range_key_condition=condition,
        filter_condition=filter_condition,
        limit=page.limit,
        last_evaluated_key=page.start_key(partition_key, pk_attribute),
        scan_index_forward=not newest_first,
        page_size=page.limit,
    )
    # Only DynamoDB's first page: with a filter, iterating `results` would keep querying
    # until `limit` items matched; a filtered page may be short, its cursor goes on.
    pages = results.page_iter
    raw = next(pages)
    items = [model.from_raw_data(item) for item in raw.get("Items", [])]
    return Page(items, encode_cursor(pages.last_evaluated_key))


class TenantRepository:
    """Data access for one tenant: every key is built from `ctx`."""

    def __init__(self, ctx: TenantContext) -> None:
        ensure_bound()
        self.ctx = ctx

    def key(self, *parts: str) -> str:
        return self.ctx.key(*parts)
