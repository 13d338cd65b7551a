"""Opaque cursors for lists: DynamoDB's LastEvaluatedKey, bound to the partition it came from."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from dotmac.core.errors import FieldError, ValidationError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class PageRequest:
    """A validated `limit` plus the decoded start key (None for the first page)."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @classmethod
    def from_query(cls, params: dict[str, str] | None) -> PageRequest:
        """Parse `?limit=&cursor=`; a bad limit is a 400, not a silent clamp."""
        params = params or {}
        raw = params.get("limit")
        limit = DEFAULT_LIMIT
        if raw is not None:
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
                raise ValidationError(
                    "invalid limit",
                    details=[FieldError("limit", f"must be an integer from 1 to {MAX_LIMIT}")],
                )
            limit = int(raw)
        return cls(limit=limit, cursor=params.get("cursor") or None)

    def start_key(self, partition_key: str, pk_attribute: str = "PK") -> dict[str, Any] | None:
        """The ExclusiveStartKey (DynamoDB wire format), refused unless it is in `partition_key`."""
        if self.cursor is None:
            return None
        key = decode_cursor(self.cursor)
        if key.get(pk_attribute) != {"S": partition_key}:
            raise ValidationError(
                "invalid cursor", details=[FieldError("cursor", "does not belong to this list")]
            )
        return key


def encode_cursor(last_evaluated_key: dict[str, Any] | None) -> str | None:
    """Encode a LastEvaluatedKey of plain string/number values; None when there is no next page."""
    if not last_evaluated_key:
        return None
    raw = json.dumps(last_evaluated_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """Decode a cursor made by `encode_cursor`; anything else is a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(
            "invalid cursor", details=[FieldError("cursor", "not a cursor this API issued")]
        ) from exc
    if not isinstance(key, dict) or not all(isinstance(k, str) for k in key):
        raise ValidationError(
            "invalid cursor", details=[FieldError("cursor", "not a cursor this API issued")]
        )
    return key
