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


def test_every_apps_openapi_document_is_valid_and_knows_each_views_body() -> None:
    import schemathesis
    from schemathesis.core.result import Ok

    from dotmac.core.openapi import document

    for name in STACK.http_apps:
        api = registry.load_app_module(name).api
        doc = document(api)
        schema = schemathesis.openapi.from_dict(doc)
        schema.validate()
        operations = list(schema.get_all_operations())
        assert all(isinstance(op, Ok) for op in operations), name
        assert len(operations) == len(api.specs), name
    isp = document(registry.load_app_module("isp").api)["paths"]
    create = isp["/api/v1/isp/customers"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"] == {"$ref": "#/components/schemas/CustomerCreate"}
