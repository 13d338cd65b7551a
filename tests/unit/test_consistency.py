"""Cross-checks between the layer, the apps and infra that keep them from drifting apart."""

from __future__ import annotations

from devcloud import registry
from dotmac.core import health
from dotmac.core.model import INDEX_KEYS, TableItem
from infra.resources import STACK


def test_every_function_resolves_to_a_callable_handler() -> None:
    for function in STACK.functions:
        assert callable(registry.handler(function)), function.name


def test_the_layer_knows_the_same_queues_as_infra() -> None:
    assert set(health.QUEUES) <= {q.name for q in STACK.queues}


def test_model_indexes_match_the_table_definition() -> None:
    table = STACK.table
    declared = {(table.pk, table.sk)} | {(i.pk, i.sk) for i in table.indexes}
    assert set(INDEX_KEYS.values()) == declared
    assert TableItem.expires_at.attr_name == table.ttl_attribute
