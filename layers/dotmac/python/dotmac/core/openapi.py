"""Each app's OpenAPI 3.1 document, built from its declared routes and what their views read.

Nothing is written per route. A route's request body is the pydantic model its view parses
(`call.body(Model)`), its query parameters are the keys the view reads from `call.query` (plus
`limit` and `cursor` where it pages with `PageRequest.from_query`) and its `Idempotency-Key`
header is what `call.idempotency_key(required=...)` asks for: all found in the view's source
and in the same module's helpers it calls. A 2xx body is DESIGN §8's success envelope (one
resource, or a page of them with `meta.next_cursor`; a mutation may answer 204 without a body)
unless the route declares `enveloped=False` (a page's meta may carry a `summary` object);
every 4xx body is the error envelope.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dotmac.core.api import IDEMPOTENCY_KEY, JSON, MUTATING_METHODS
from dotmac.core.envelope import API_VERSION
from dotmac.core.pagination import MAX_LIMIT
from dotmac.core.permissions import PUBLIC

if TYPE_CHECKING:
    from pydantic import BaseModel

    from dotmac.core.api import Api, RouteSpec

REFS = "#/components/schemas/"
HELPER_DEPTH = 3  # how deep a view's calls into its module's helpers are followed

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "pattern": "^[A-Z][A-Z_]*$"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "additionalProperties": False,
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
                "request_id": {"type": "string", "minLength": 1},
            },
        }
    },
}
_RESOURCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "attributes"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"type": "string", "pattern": "^[a-z][a-z_]*$"},
        "attributes": {"type": "object"},
    },
}
_META = {"timestamp": {"type": "string", "format": "date-time"}, "version": {"const": API_VERSION}}
_LINKS = {
    "type": "object",
    "required": ["self"],
    "additionalProperties": False,
    "properties": {"self": {"type": "string", "minLength": 1}},
}


def _envelope(
    data: dict[str, Any], optional: dict[str, Any] | None = None, **meta: dict[str, Any]
) -> dict[str, Any]:
    """The success envelope around `data`, its meta with the `meta` keys (and `optional`)."""
    return {
        "type": "object",
        "required": ["data", "meta", "links"],
        "additionalProperties": False,
        "properties": {
            "data": data,
            "meta": {
                "type": "object",
                "required": ["timestamp", "version", *meta],
                "additionalProperties": False,
                "properties": {**_META, **meta, **(optional or {})},
            },
            "links": _LINKS,
        },
    }


_SCHEMAS: dict[str, Any] = {
    "Error": _ERROR_SCHEMA,
    "Resource": _RESOURCE_SCHEMA,
    "Single": _envelope({"$ref": f"{REFS}Resource"}),
    "Page": _envelope(
        {"type": "array", "items": {"$ref": f"{REFS}Resource"}},
        # A list may add the standing of what it lists (a partner's commission totals).
        optional={"summary": {"type": "object"}},
        next_cursor={"type": ["string", "null"]},
    ),
}


@dataclass
class ViewReads:
    """What a view takes from its request besides the path: body models, query keys, whether
    it pages (`limit`, `cursor`) and its Idempotency-Key (None: not read; else required?)."""

    models: list[type[BaseModel]] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    paged: bool = False
    idempotency: bool | None = None


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    """The object a dotted name (`schemas.LoginRequest`) names in `scope`."""
    if isinstance(node, ast.Name):
        return scope[node.id]
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(node.value, scope), node.attr)
    raise ValueError(f"not a dotted name: {ast.unparse(node)}")


def _is_query(node: ast.expr, aliases: set[str]) -> bool:
    """`call.query`, or a local name assigned from it."""
    return (isinstance(node, ast.Attribute) and node.attr == "query") or (
        isinstance(node, ast.Name) and node.id in aliases
    )


def view_reads(view: Callable[..., Any]) -> ViewReads:
    """What `view` reads from its request, found in its source and in the source of the
    functions of its own module that it calls (HELPER_DEPTH deep)."""
    reads = ViewReads()
    visited: set[Callable[..., Any]] = set()

    def read(node: ast.Call, function: Callable[..., Any], aliases: set[str], depth: int) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            helper = function.__globals__.get(func.id)
            if inspect.isfunction(helper) and helper.__module__ == function.__module__:
                visit(helper, depth + 1)
            return
        if not isinstance(func, ast.Attribute):
            return
        if func.attr == "body" and len(node.args) == 1:
            model = _resolve(node.args[0], function.__globals__)
            if model not in reads.models:
                reads.models.append(model)
        elif func.attr == "from_query" and node.args and not isinstance(node.args[0], ast.Dict):
            reads.paged = True
        elif func.attr == "idempotency_key":
            required = any(
                k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            reads.idempotency = bool(reads.idempotency) or required
        elif func.attr == "get" and _is_query(func.value, aliases) and node.args:
            key = node.args[0]
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value:
                reads.query = list(dict.fromkeys([*reads.query, key.value]))

    def visit(function: Callable[..., Any], depth: int) -> None:
        if function in visited or depth > HELPER_DEPTH:
            return
        visited.add(function)
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        aliases = {
            target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign) and _is_query(node.value, set())
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                read(node, function, aliases, depth)

    visit(view, 0)
    return reads


def route_reads(api: Api, spec: RouteSpec) -> ViewReads:
    """What the view of `api`'s route `spec` reads from its request (`view_reads`)."""
    return view_reads(inspect.unwrap(api.app.routes[spec.path][spec.method].view_function))


def _parameters(spec: RouteSpec, reads: ViewReads) -> list[dict[str, Any]]:
    def param(name: str, where: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
        return {"name": name, "in": where, "required": required, "schema": schema}

    string = {"type": "string"}
    params = [param(name, "path", string, True) for name in re.findall(r"{(\w+)}", spec.path)]
    query = dict.fromkeys(reads.query)
    if reads.paged:
        query.update(dict.fromkeys(("limit", "cursor")))
    for name in query:
        limit = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}
        params.append(param(name, "query", limit if name == "limit" else string, False))
    if reads.idempotency is not None:
        key = {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern}
        params.append(param("Idempotency-Key", "header", key, reads.idempotency))
    return params


def _responses(spec: RouteSpec) -> dict[str, Any]:
    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": schema}}}

    error = answer("Error envelope", {"$ref": f"{REFS}Error"})
    if not spec.enveloped:
        anything = {"type": "object"}
        return {"2XX": answer("OK", anything), "4XX": error, "default": answer("Error", anything)}
    success = {"oneOf": [{"$ref": f"{REFS}Single"}, {"$ref": f"{REFS}Page"}]}
    responses = {"2XX": answer("Success envelope", success), "4XX": error, "default": error}
    if spec.method in MUTATING_METHODS:
        responses["204"] = {"description": "Done, no content"}
    return responses


def _model_schemas(models: list[type[BaseModel]]) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Each model's `$ref` and every schema they need, under components/schemas."""
    if not models:
        return {}, {}
    from pydantic.json_schema import models_json_schema

    refs, top = models_json_schema(
        [(model, "validation") for model in models], ref_template=REFS + "{model}"
    )
    schemas = top.get("$defs", {})
    clash = set(schemas) & set(_SCHEMAS)
    if clash:
        raise ValueError(f"request models named like the envelope schemas: {sorted(clash)}")
    return {model: refs[(model, "validation")] for model in models}, schemas


def document(api: Api) -> dict[str, Any]:
    """The OpenAPI document of `api`: every route, its permission, parameters, request body,
    success and error responses."""
    reads = {spec: route_reads(api, spec) for spec in api.specs}
    models = list(dict.fromkeys(m for r in reads.values() for m in r.models))
    model_refs, model_schemas = _model_schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    for spec, read in reads.items():
        operation: dict[str, Any] = {
            "operationId": f"{spec.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', spec.path)}",
            "summary": spec.summary or spec.path,
            "x-dotmac-permission": spec.permission,
            "parameters": _parameters(spec, read),
            "responses": _responses(spec),
        }
        if read.models:
            bodies = [model_refs[m] for m in read.models]
            schema = bodies[0] if len(bodies) == 1 else {"anyOf": bodies}  # per branch
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": schema}}}
        if spec.permission != PUBLIC:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": f"DotMac {api.name} API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": {**_SCHEMAS, **model_schemas},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
