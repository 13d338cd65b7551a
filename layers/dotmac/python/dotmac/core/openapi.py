"""Each app's OpenAPI 3.1 document, built from its declared routes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dotmac.core.permissions import PUBLIC

if TYPE_CHECKING:
    from dotmac.core.api import Api

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
                "request_id": {"type": "string"},
            },
        }
    },
}


def document(api: Api) -> dict[str, Any]:
    """The OpenAPI document of `api`: every route, its permission and its error responses."""
    paths: dict[str, dict[str, Any]] = {}
    for spec in api.specs:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", spec.path)
        ]
        operation: dict[str, Any] = {
            "operationId": f"{spec.method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', spec.path)}",
            "summary": spec.summary or spec.path,
            "x-dotmac-permission": spec.permission,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {}}}},
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if spec.permission != PUBLIC:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": f"DotMac {api.name} API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
