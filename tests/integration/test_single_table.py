"""The single-table base against a real (emulated) table: keys, pagination, call counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from pynamodb.attributes import UnicodeAttribute

from dotmac.core.errors import ValidationError
from dotmac.core.model import TableItem, bind_table
from dotmac.core.pagination import PageRequest
from dotmac.core.repository import TenantRepository, query_page
from dotmac.core.tenancy import TenantContext
from tests.integration.conftest import MotoCloud


class Widget(TableItem):
    entity: ClassVar[str] = "widget"
    name = UnicodeAttribute()


class WidgetRepository(TenantRepository):
    def add(self, widget_id: str, name: str) -> Widget:
        widget = Widget(
            self.key("WIDGET"),
            f"WIDGET#{widget_id}",
            name=name,
            GSI1PK=self.key("WIDGET_BY_NAME"),
            GSI1SK=name,
        )
        widget.save()
        return widget

    def page(self, page: PageRequest) -> Any:
        return query_page(Widget, self.key("WIDGET"), page)

    def by_name(self, page: PageRequest) -> Any:
        return query_page(Widget, self.key("WIDGET_BY_NAME"), page, index="gsi1")


@pytest.fixture
def ddb_calls(moto_cloud: MotoCloud) -> Iterator[list[str]]:
    """Every DynamoDB operation PynamoDB sends, counted with botocore's event hooks."""
    bind_table(moto_cloud.created.table)
    calls: list[str] = []
    client = Widget._get_connection().connection.client
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    yield calls


def _ctx(tenant: str) -> TenantContext:
    return TenantContext(tenant_id=tenant, user_id="u1")


def test_pages_walk_one_tenant_with_one_query_each(ddb_calls: list[str]) -> None:
    acme, other = WidgetRepository(_ctx("acme")), WidgetRepository(_ctx("globex"))
    for i in range(5):
        acme.add(f"{i:03}", f"name-{4 - i}")
        other.add(f"{i:03}", f"other-{i}")
    ddb_calls.clear()

    seen: list[str] = []
    page = acme.page(PageRequest(limit=2))
    seen += [w.SK for w in page.items]
    while page.next_cursor:
        page = acme.page(PageRequest(limit=2, cursor=page.next_cursor))
        seen += [w.SK for w in page.items]
    assert seen == [f"WIDGET#{i:03}" for i in range(5)]
    assert set(ddb_calls) == {"Query"} and len(ddb_calls) == 3

    by_name = acme.by_name(PageRequest(limit=10))
    assert [w.name for w in by_name.items] == [f"name-{i}" for i in range(5)]
    assert by_name.next_cursor is None


def test_a_cursor_from_another_tenant_is_refused(ddb_calls: list[str]) -> None:
    acme, other = WidgetRepository(_ctx("acme")), WidgetRepository(_ctx("globex"))
    for i in range(3):
        acme.add(f"{i}", "x")
        other.add(f"{i}", "y")
    foreign_cursor = other.page(PageRequest(limit=1)).next_cursor
    assert foreign_cursor
    ddb_calls.clear()
    with pytest.raises(ValidationError):
        acme.page(PageRequest(limit=1, cursor=foreign_cursor))
    assert ddb_calls == []  # refused before any I/O


def test_keys_outside_the_rules_are_never_written(ddb_calls: list[str]) -> None:
    stray = Widget("CUSTOMER#1", "x", name="no tenant prefix")
    with pytest.raises(ValueError, match="outside"):
        stray.save()
    leaky = Widget("T#acme#WIDGET", "WIDGET#1", name="x", GSI1PK="T#globex#WIDGET", GSI1SK="x")
    with pytest.raises(ValueError, match="leaves the tenant space"):
        leaky.save()
    assert ddb_calls == []
