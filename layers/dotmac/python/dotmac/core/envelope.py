"""The response and error envelopes of DESIGN §8, as plain dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from dotmac.core.errors import DotmacError

API_VERSION = "v1"


def _meta(**extra: Any) -> dict[str, Any]:
    return {"timestamp": datetime.now(UTC).isoformat(), "version": API_VERSION, **extra}


def resource(type_: str, id_: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """One resource object: `{"id", "type", "attributes"}`."""
    return {"id": id_, "type": type_, "attributes": dict(attributes)}


def single(item: dict[str, Any], self_link: str) -> dict[str, Any]:
    """The envelope around one resource."""
    return {"data": item, "meta": _meta(), "links": {"self": self_link}}


def collection(
    items: Iterable[dict[str, Any]], self_link: str, next_cursor: str | None
) -> dict[str, Any]:
    """The envelope around one page of a list; `meta.next_cursor` is null on the last page."""
    return {
        "data": list(items),
        "meta": _meta(next_cursor=next_cursor),
        "links": {"self": self_link},
    }


def error(exc: DotmacError, request_id: str) -> dict[str, Any]:
    """The error envelope for a domain error."""
    return {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "details": [{"field": d.field, "message": d.message} for d in exc.details],
            "request_id": request_id,
        }
    }
