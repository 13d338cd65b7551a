"""The data half of tenant deprovisioning: export a tenant's items and objects, then purge.

What belongs to a tenant here: every DynamoDB item whose partition key starts with
`T#{tenant_id}#` (the trailing `#` keeps `acme` from matching `acme-2`) and every object
version and delete marker under `tenants/{tenant_id}/` in the objects bucket. Platform items
(`TENANT#...`, `SUBDOMAIN#...`, ...) are the deprovisioning workflow's business, not this
module's.

Why a Scan: no index lists a tenant's partitions, so finding all of them takes a Scan with
`FilterExpression begins_with(PK, :prefix)`. DESIGN §4 forbids a Scan on a request path;
this module is only ever called from the offline deprovisioning workflow, never from a
request. The Scan is parallel (`SCAN_SEGMENTS` segments on a thread pool), fully paginated
and strongly consistent, so an item written before the call is always seen.

Export layout, under `exports/{tenant_id}/{export_id}/` in the same bucket:

- `items.jsonl`: one item per line in DynamoDB's typed JSON (`{"PK": {"S": ...}, ...}`),
  sorted by (PK, SK); binary values (`B`, `BS`) are base64 strings, as in DynamoDB's own
  S3 export. `item_from_json` turns a line back into what the low-level client returns.
- `objects/<key relative to tenants/{tenant_id}/>`: a server-side copy of the latest
  version of each object.
- `objects.jsonl`: one line per object (key, version_id, size, etag, last_modified,
  export_key), sorted by key.
- `manifest.json`: written last, so its presence marks a complete export.

Both operations are idempotent: exporting again under the same export_id rewrites the same
keys with the same content (`created_at` is kept from an existing manifest), and purging
again deletes nothing. Never export again with an export_id whose purge has started: the
rerun would overwrite the export with what is left.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from dotmac.core.aws import client
from dotmac.core.errors import DependencyUnavailableError, ValidationError
from dotmac.core.settings import get_settings
from dotmac.core.tenancy import KEY_SEPARATOR, validate_tenant_id

SCAN_SEGMENTS = 4
COPY_WORKERS = 8
BATCH_WRITE_LIMIT = 25
DELETE_OBJECTS_LIMIT = 1000
MAX_BATCH_ATTEMPTS = 10
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 5.0
# copy_object copies at most 5 GiB; bigger objects go through the managed multipart copy.
COPY_OBJECT_LIMIT = 5 * 1024**3
EXPORT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

Item = dict[str, Any]


@dataclass(frozen=True)
class ExportResult:
    """Where a tenant's export landed and what it holds."""

    bucket: str
    prefix: str
    items: int
    objects: int
    items_sha256: str


@dataclass(frozen=True)
class PurgeResult:
    """How much a purge deleted: items, object versions and delete markers."""

    items: int
    object_versions: int
    delete_markers: int


def tenant_item_prefix(tenant_id: str) -> str:
    """`T#{tenant_id}#`: the partition-key prefix of every item the tenant owns."""
    return f"T{KEY_SEPARATOR}{validate_tenant_id(tenant_id)}{KEY_SEPARATOR}"


def tenant_object_prefix(tenant_id: str) -> str:
    """`tenants/{tenant_id}/`: the S3 prefix of every object the tenant owns."""
    return f"tenants/{validate_tenant_id(tenant_id)}/"


def export_prefix(tenant_id: str, export_id: str) -> str:
    """`exports/{tenant_id}/{export_id}/`: where an export is written."""
    if not EXPORT_ID_PATTERN.fullmatch(export_id) or ".." in export_id:
        raise ValidationError(f"invalid export id: {export_id!r}")
    return f"exports/{validate_tenant_id(tenant_id)}/{export_id}/"


# --- DynamoDB typed JSON <-> JSON text ----------------------------------------------------


def _encode_value(value: dict[str, Any]) -> dict[str, Any]:
    """One AttributeValue as JSON-safe data (binary as base64)."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in inner]}
    if kind == "L":
        return {"L": [_encode_value(v) for v in inner]}
    if kind == "M":
        return {"M": {k: _encode_value(v) for k, v in inner.items()}}
    return {kind: inner}


def _decode_value(value: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `_encode_value`."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "L":
        return {"L": [_decode_value(v) for v in inner]}
    if kind == "M":
        return {"M": {k: _decode_value(v) for k, v in inner.items()}}
    return {kind: inner}


def item_to_json(item: Item) -> str:
    """One item as a deterministic line of DynamoDB typed JSON (no trailing newline)."""
    encoded = {name: _encode_value(value) for name, value in item.items()}
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def item_from_json(line: str | bytes) -> Item:
    """A line of `items.jsonl` back as the low-level client returns the item."""
    return {name: _decode_value(value) for name, value in json.loads(line).items()}


# --- DynamoDB ------------------------------------------------------------------------------


def _scan_segment(
    tenant_id: str, segment: int, *, keys_only: bool = False, count_only: bool = False
) -> tuple[list[Item], int]:
    """One segment of the tenant's parallel Scan, every page: (items, count)."""
    table = get_settings().table
    ddb = client("dynamodb")
    request: dict[str, Any] = {
        "TableName": table,
        "Segment": segment,
        "TotalSegments": SCAN_SEGMENTS,
        "ConsistentRead": True,
        "FilterExpression": "begins_with(#pk, :prefix)",
        "ExpressionAttributeNames": {"#pk": "PK"},
        "ExpressionAttributeValues": {":prefix": {"S": tenant_item_prefix(tenant_id)}},
    }
    if count_only:
        request["Select"] = "COUNT"
    elif keys_only:
        request["ProjectionExpression"] = "#pk, #sk"
        request["ExpressionAttributeNames"]["#sk"] = "SK"
    items: list[Item] = []
    count = 0
    while True:
        page = ddb.scan(**request)
        count += page["Count"]
        items.extend(page.get("Items", ()))
        last = page.get("LastEvaluatedKey")
        if not last:
            return items, count
        request["ExclusiveStartKey"] = last


def _scan_tenant(
    tenant_id: str, *, keys_only: bool = False, count_only: bool = False
) -> tuple[list[Item], int]:
    """All of the tenant's items (or keys, or just the count), from a parallel Scan."""
    validate_tenant_id(tenant_id)
    with ThreadPoolExecutor(max_workers=SCAN_SEGMENTS) as pool:
        results = list(
            pool.map(
                lambda s: _scan_segment(tenant_id, s, keys_only=keys_only, count_only=count_only),
                range(SCAN_SEGMENTS),
            )
        )
    items = [item for segment_items, _ in results for item in segment_items]
    return items, sum(count for _, count in results)


def _item_sort_key(item: Item) -> tuple[str, str]:
    """(PK, SK) of an item: the export's line order."""
    return item["PK"]["S"], item["SK"]["S"]


def _backoff(attempt: int) -> None:
    """Sleep before retry `attempt` (1-based): capped exponential with full jitter."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    time.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not security


def _delete_item_batch(keys: list[Item]) -> None:
    """Delete up to 25 items, retrying UnprocessedItems with backoff."""
    table = get_settings().table
    ddb = client("dynamodb")
    pending: dict[str, Any] = {table: [{"DeleteRequest": {"Key": key}} for key in keys]}
    for attempt in range(1, MAX_BATCH_ATTEMPTS + 1):
        pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
        _backoff(attempt)
    raise DependencyUnavailableError(
        f"DynamoDB left {len(pending.get(table, ()))} deletes unprocessed "
        f"after {MAX_BATCH_ATTEMPTS} attempts"
    )


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    """`values` in consecutive slices of at most `size`."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def count_tenant_items(tenant_id: str) -> int:
    """How many items with a `T#{tenant_id}#` partition key the table holds (a Scan)."""
    return _scan_tenant(tenant_id, count_only=True)[1]


# --- S3 ------------------------------------------------------------------------------------


def _object_versions(prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every object version and every delete marker under `prefix`."""
    s3 = client("s3")
    versions: list[dict[str, Any]] = []
    markers: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(
        Bucket=get_settings().bucket, Prefix=prefix
    ):
        versions.extend(page.get("Versions", ()))
        markers.extend(page.get("DeleteMarkers", ()))
    return versions, markers


def count_tenant_objects(tenant_id: str, *, all_versions: bool = True) -> int:
    """Object versions plus delete markers under `tenants/{tenant_id}/` (or live objects)."""
    versions, markers = _object_versions(tenant_object_prefix(tenant_id))
    if all_versions:
        return len(versions) + len(markers)
    return sum(1 for version in versions if version.get("IsLatest"))


def _copy_object(source: dict[str, Any], target_key: str) -> None:
    """Server-side copy of one object version to `target_key` in the same bucket."""
    bucket = get_settings().bucket
    s3 = client("s3")
    copy_source = {"Bucket": bucket, "Key": source["Key"], "VersionId": source["VersionId"]}
    if source["Size"] < COPY_OBJECT_LIMIT:
        s3.copy_object(Bucket=bucket, Key=target_key, CopySource=copy_source)
    else:
        s3.copy(copy_source, bucket, target_key)


def _upload_lines(key: str, lines: Iterable[str], content_type: str) -> str:
    """Stream `lines` (newline-terminated) to `key` through a temp file; return its sha256."""
    digest = hashlib.sha256()
    with tempfile.TemporaryFile() as spool:
        for line in lines:
            data = (line + "\n").encode("utf-8")
            digest.update(data)
            spool.write(data)
        spool.seek(0)
        _upload_file(spool, key, content_type)
    return digest.hexdigest()


def _upload_file(body: IO[bytes], key: str, content_type: str) -> None:
    """Upload a file object to `key` (multipart above boto3's threshold)."""
    client("s3").upload_fileobj(
        body, get_settings().bucket, key, ExtraArgs={"ContentType": content_type}
    )


def _existing_created_at(manifest_key: str) -> str | None:
    """`created_at` of a manifest already written under this export id, if any."""
    s3 = client("s3")
    try:
        body = s3.get_object(Bucket=get_settings().bucket, Key=manifest_key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    created = json.loads(body).get("created_at")
    return created if isinstance(created, str) else None


def _iso(moment: datetime) -> str:
    """`moment` as ISO 8601 UTC with a `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- the two operations ----------------------------------------------------------------------


def export_tenant(tenant_id: str, export_id: str) -> ExportResult:
    """Write the tenant's items and objects under `exports/{tenant_id}/{export_id}/`."""
    prefix = export_prefix(tenant_id, export_id)
    bucket = get_settings().bucket

    items, _ = _scan_tenant(tenant_id)
    items.sort(key=_item_sort_key)
    items_sha256 = _upload_lines(
        prefix + "items.jsonl", (item_to_json(item) for item in items), "application/x-ndjson"
    )
    item_count = len(items)
    del items

    source_prefix = tenant_object_prefix(tenant_id)
    versions, _ = _object_versions(source_prefix)
    latest = sorted((v for v in versions if v.get("IsLatest")), key=lambda v: v["Key"])
    targets = [prefix + "objects/" + v["Key"][len(source_prefix) :] for v in latest]
    copy: Callable[[dict[str, Any], str], None] = _copy_object
    with ThreadPoolExecutor(max_workers=COPY_WORKERS) as pool:
        list(pool.map(copy, latest, targets))
    object_lines = (
        json.dumps(
            {
                "key": version["Key"],
                "version_id": version["VersionId"],
                "size": version["Size"],
                "etag": version["ETag"].strip('"'),
                "last_modified": _iso(version["LastModified"]),
                "export_key": target,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        for version, target in zip(latest, targets, strict=True)
    )
    objects_sha256 = _upload_lines(prefix + "objects.jsonl", object_lines, "application/x-ndjson")

    manifest_key = prefix + "manifest.json"
    manifest = {
        "format": "dotmac-tenant-export/1",
        "tenant_id": tenant_id,
        "export_id": export_id,
        "created_at": _existing_created_at(manifest_key) or _iso(datetime.now(UTC)),
        "table": get_settings().table,
        "bucket": bucket,
        "items": item_count,
        "objects": len(latest),
        "items_sha256": items_sha256,
        "objects_sha256": objects_sha256,
    }
    client("s3").put_object(
        Bucket=bucket,
        Key=manifest_key,
        Body=json.dumps(manifest, sort_keys=True, indent=2).encode("utf-8"),
        ContentType="application/json",
    )
    return ExportResult(bucket, prefix, item_count, len(latest), items_sha256)


def delete_items(keys: list[Item]) -> None:
    """Delete the items with these keys (`{"PK": {...}, "SK": {...}}`), 25 per batch."""
    with ThreadPoolExecutor(max_workers=SCAN_SEGMENTS) as pool:
        list(pool.map(_delete_item_batch, _chunks(keys, BATCH_WRITE_LIMIT)))


def delete_objects(prefix: str) -> tuple[int, int]:
    """Delete every object version and delete marker under `prefix`; how many of each."""
    bucket = get_settings().bucket
    s3 = client("s3")
    versions, markers = _object_versions(prefix)
    targets = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in (*versions, *markers)]
    for chunk in _chunks(targets, DELETE_OBJECTS_LIMIT):
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise DependencyUnavailableError(
                f"S3 refused to delete {len(errors)} object versions "
                f"(first: {first.get('Key')}: {first.get('Code')})"
            )
    return len(versions), len(markers)


def purge_tenant(tenant_id: str) -> PurgeResult:
    """Delete every `T#{tenant_id}#` item and every version under `tenants/{tenant_id}/`."""
    keys, _ = _scan_tenant(tenant_id, keys_only=True)
    delete_items(keys)
    versions, markers = delete_objects(tenant_object_prefix(tenant_id))
    return PurgeResult(len(keys), versions, markers)
