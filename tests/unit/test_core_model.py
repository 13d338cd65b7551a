"""`TableItem` key-space checks and table binding; nothing here talks to DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pynamodb.models import Model

from dotmac.core import model as model_module
from dotmac.core.model import TableItem, bind_table, check_partition_key, ensure_bound
from dotmac.core.settings import reset_settings
from dotmac.core.tenancy import PLATFORM_PREFIXES


class Widget(TableItem):
    entity = "widget"

    class Meta:
        table_name = "widgets-before-binding"


class SpecialWidget(Widget):
    entity = "special-widget"


@pytest.fixture
def restore_binding() -> Iterator[None]:
    table, bound = TableItem.Meta.table_name, model_module._bound_to
    yield
    bind_table(table)
    model_module._bound_to = bound


def widget(pk: str, **attrs: Any) -> Widget:
    return Widget(PK=pk, SK="WIDGET#1", **attrs)


class TestCheckPartitionKey:
    @pytest.mark.parametrize("key", ["T#acme#WIDGET", "T#acme#WIDGET#1", "T#acme-2#X#Y#Z"])
    def test_tenant_keys_with_an_entity_part(self, key: str) -> None:
        check_partition_key(key)

    @pytest.mark.parametrize("prefix", sorted(PLATFORM_PREFIXES))
    def test_platform_prefixes(self, prefix: str) -> None:
        check_partition_key(f"{prefix}#x")

    @pytest.mark.parametrize("key", ["T#acme", "T#", "T"])
    def test_tenant_key_without_entity_part_refused(self, key: str) -> None:
        with pytest.raises(ValueError, match="entity part"):
            check_partition_key(key)

    @pytest.mark.parametrize(
        "key", ["USER#1", "acme#WIDGET", "t#acme#WIDGET", "", "#acme", "tenant#acme", "TX#acme#W"]
    )
    def test_unknown_prefixes_refused(self, key: str) -> None:
        with pytest.raises(ValueError, match="outside the tenant and platform spaces"):
            check_partition_key(key)

    @pytest.mark.parametrize("key", ["T##WIDGET", "T#ACME#WIDGET", "T#a#WIDGET", "T#acme#"])
    def test_tenant_key_with_malformed_tenant_or_entity_refused(self, key: str) -> None:
        with pytest.raises(ValueError):
            check_partition_key(key)


class TestCheckKeys:
    def test_kind_comes_from_the_entity(self) -> None:
        assert widget("T#acme#WIDGET").kind == "widget"
        assert SpecialWidget(PK="T#acme#W", SK="1").kind == "special-widget"
        assert TableItem(PK="T#acme#W", SK="1").kind == "item"

    def test_tenant_item_with_gsis_in_its_own_space(self) -> None:
        widget(
            "T#acme#WIDGET",
            GSI1PK="T#acme#WIDGET_BY_NAME",
            GSI1SK="n",
            GSI2PK="T#acme#WIDGET_BY_SITE",
            GSI2SK="s",
        ).check_keys()

    def test_platform_item(self) -> None:
        widget("TENANT#acme", GSI1PK="SUBDOMAIN#acme", GSI1SK="x").check_keys()

    def test_unknown_pk_prefix_refused(self) -> None:
        with pytest.raises(ValueError):
            widget("WIDGET#1").check_keys()

    def test_tenant_pk_without_entity_part_refused(self) -> None:
        with pytest.raises(ValueError, match="entity part"):
            widget("T#acme").check_keys()

    @pytest.mark.parametrize("attr", ["GSI1PK", "GSI2PK"])
    def test_gsi_key_in_another_tenants_space_refused(self, attr: str) -> None:
        item = widget("T#acme#WIDGET", **{attr: "T#globex#WIDGET_BY_NAME"})
        with pytest.raises(ValueError, match="leaves the tenant space"):
            item.check_keys()

    def test_gsi_key_of_a_tenant_whose_id_extends_ours_refused(self) -> None:
        item = widget("T#acme#WIDGET", GSI1PK="T#acme-evil#WIDGET")
        with pytest.raises(ValueError, match="leaves the tenant space"):
            item.check_keys()

    def test_tenant_item_with_platform_gsi_refused(self) -> None:
        item = widget("T#acme#WIDGET", GSI1PK="TENANT#acme")
        with pytest.raises(ValueError, match="leaves the tenant space"):
            item.check_keys()

    @pytest.mark.parametrize("gsi_pk", ["USER#1", "T#acme"])
    def test_gsi_key_outside_every_space_refused(self, gsi_pk: str) -> None:
        with pytest.raises(ValueError):
            widget("T#acme#WIDGET", GSI2PK=gsi_pk).check_keys()

    def test_save_refuses_bad_keys_before_any_io(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[Any] = []
        monkeypatch.setattr(Model, "save", lambda self, *a, **k: calls.append(self))
        with pytest.raises(ValueError):
            widget("T#acme#WIDGET", GSI1PK="T#globex#X").save()
        assert calls == []
        good = widget("T#acme#WIDGET", GSI1PK="T#acme#X")
        good.save()
        assert calls == [good]


@pytest.mark.usefixtures("restore_binding")
class TestBinding:
    def test_bind_table_rebinds_base_and_every_subclass(self) -> None:
        Widget._connection = object()  # type: ignore[assignment]
        SpecialWidget._connection = object()  # type: ignore[assignment]
        bind_table("dotmac-unit-main")
        assert TableItem.Meta.table_name == "dotmac-unit-main"
        assert Widget.Meta.table_name == "dotmac-unit-main"
        assert SpecialWidget.Meta.table_name == "dotmac-unit-main"
        assert Widget._connection is None
        assert SpecialWidget._connection is None
        assert TableItem._connection is None

    def test_ensure_bound_uses_the_configured_table_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DOTMAC_TABLE_NAME", "dotmac-unit-configured")
        reset_settings()
        ensure_bound()
        assert Widget.Meta.table_name == "dotmac-unit-configured"
        marker = object()
        Widget._connection = marker  # type: ignore[assignment]
        ensure_bound()  # already bound to that table: nothing is reset
        assert Widget._connection is marker
        monkeypatch.setenv("DOTMAC_TABLE_NAME", "dotmac-unit-other")
        reset_settings()
        ensure_bound()
        assert Widget.Meta.table_name == "dotmac-unit-other"
        assert Widget._connection is None
