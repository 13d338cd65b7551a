"""Tenant export and purge against the bootstrapped stack in moto: complete, exact, idempotent."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from dotmac.core.errors import ValidationError
from dotmac.management import tenant_data
from dotmac.management.tenant_data import (
    count_tenant_items,
    count_tenant_objects,
    export_tenant,
    item_from_json,
    item_to_json,
    purge_tenant,
)
from tests.integration.conftest import MotoCloud

TABLE = "dotmac-test-main"
BUCKET = "dotmac-test-objects"
ACME_USERS = 130  # > 100 items in one partition, > 25 per batch, several scan pages


def _varied(i: int, tenant: str) -> dict[str, Any]:
    """Attributes of every DynamoDB type, different per item."""
    return {
        "name": {"S": f"{tenant}-user-{i} ünïcode"},
        "n": {"N": str(Decimal(i) / 8)},
        "blob": {"B": bytes([i % 256, 0, 255, 10]) + tenant.encode()},
        "tags": {"SS": [f"t{i}", "common"]},
        "nums": {"NS": ["1", str(i + 2)]},
        "blobs": {"BS": [b"\x00\x01", bytes([i % 256 + 1 if i % 256 < 255 else 7])]},
        "list": {"L": [{"S": "x"}, {"N": "3.5"}, {"B": b"\xff\xfe"}, {"NULL": True}]},
        "map": {
            "M": {
                "deep": {"M": {"flag": {"BOOL": i % 2 == 0}, "bin": {"B": b"\x10" * (i % 5 + 1)}}},
                "empty": {"L": []},
            }
        },
        "active": {"BOOL": i % 3 == 0},
        "nothing": {"NULL": True},
    }


def _seed_items(ddb: Any) -> dict[str, list[dict[str, Any]]]:
    """Items for acme, acme-2 and the platform; returns the keys written per owner."""
    keys: dict[str, list[dict[str, Any]]] = {"acme": [], "acme-2": [], "platform": []}

    def put(owner: str, pk: str, sk: str, extra: dict[str, Any]) -> None:
        ddb.put_item(TableName=TABLE, Item={"PK": {"S": pk}, "SK": {"S": sk}, **extra})
        keys[owner].append({"PK": {"S": pk}, "SK": {"S": sk}})

    for i in range(ACME_USERS):
        put("acme", "T#acme#USER", f"USER#{i:04}", _varied(i, "acme"))
    for i in range(20):
        put("acme", "T#acme#AUDIT", f"AUDIT#{i:04}", {"event": {"S": "login"}})
    for i in range(5):
        # a GSI key of a tenant item, as the repositories write them
        put(
            "acme",
            f"T#acme#ORDER#{i}",
            "META",
            {**_varied(i, "acme"), "GSI1PK": {"S": "T#acme#ORDER_BY_DATE"}, "GSI1SK": {"S": "x"}},
        )
    for i in range(30):
        put("acme-2", "T#acme-2#USER", f"USER#{i:04}", _varied(i, "acme-2"))
    put("acme-2", "T#acme-2#AUDIT", "AUDIT#0001", {"event": {"S": "login"}})
    put("platform", "TENANT#acme", "META", {"name": {"S": "Acme"}, "status": {"S": "ACTIVE"}})
    put("platform", "SUBDOMAIN#acme", "META", {"tenant": {"S": "acme"}})
    return keys


def _seed_objects(s3: Any) -> dict[str, bytes]:
    """Objects under tenants/acme/ (some with several versions, one deleted) and acme-2."""
    latest: dict[str, bytes] = {}
    for i in range(12):
        key = f"tenants/acme/docs/file-{i:02}.bin"
        for version in range(3 if i % 4 == 0 else 1):
            body = hashlib.sha256(f"{key}:{version}".encode()).digest() * (i + 1)
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        latest[key] = body
    s3.put_object(Bucket=BUCKET, Key="tenants/acme/avatar.png", Body=b"\x89PNG\r\n")
    latest["tenants/acme/avatar.png"] = b"\x89PNG\r\n"
    # a deleted object: two versions and a delete marker, not exported, but purged
    s3.put_object(Bucket=BUCKET, Key="tenants/acme/gone.txt", Body=b"v1")
    s3.put_object(Bucket=BUCKET, Key="tenants/acme/gone.txt", Body=b"v2")
    s3.delete_object(Bucket=BUCKET, Key="tenants/acme/gone.txt")
    s3.put_object(Bucket=BUCKET, Key="tenants/acme-2/docs/file-00.bin", Body=b"other tenant")
    s3.put_object(Bucket=BUCKET, Key="tenants/acme-2/x", Body=b"other tenant 2")
    return latest


def _scan_all(ddb: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        items.extend(page["Items"])
    return items


def _get(s3: Any, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def _versions(s3: Any, prefix: str) -> int:
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):
        count += len(page.get("Versions", ())) + len(page.get("DeleteMarkers", ()))
    return count


def test_items_round_trip_through_json_lines() -> None:
    item = {"PK": {"S": "T#a1#X"}, "SK": {"S": "Y"}, **_varied(7, "a1")}
    line = item_to_json(item)
    assert "\n" not in line
    assert item_from_json(line) == item
    assert item_from_json(line.encode()) == item
    assert json.loads(line)["blob"]["B"] == "BwD/CmEx"  # base64, as DynamoDB's S3 export


def test_bad_ids_are_refused_before_touching_aws() -> None:
    for tenant in ("", "Acme", "a/b", "acme#x"):
        with pytest.raises(ValidationError):
            purge_tenant(tenant)
    for export_id in ("", "../x", "a/b", ".hidden", "x" * 200):
        with pytest.raises(ValidationError):
            export_tenant("acme", export_id)


def test_export_then_purge_one_tenant_exactly(moto_cloud: MotoCloud) -> None:
    ddb, s3 = moto_cloud.client("dynamodb"), moto_cloud.client("s3")
    keys = _seed_items(ddb)
    latest = _seed_objects(s3)
    acme_items = len(keys["acme"])
    assert count_tenant_items("acme") == acme_items
    assert count_tenant_items("acme-2") == len(keys["acme-2"])
    # 12 files (+2 versions for files 0, 4, 8), the avatar, gone.txt's 2 versions and marker
    assert count_tenant_objects("acme") == 12 + 6 + 1 + 3
    assert count_tenant_objects("acme", all_versions=False) == len(latest)

    # --- export ---
    result = export_tenant("acme", "exp-1")
    prefix = "exports/acme/exp-1/"
    assert (result.bucket, result.prefix) == (BUCKET, prefix)
    assert (result.items, result.objects) == (acme_items, len(latest))

    raw = _get(s3, prefix + "items.jsonl")
    assert hashlib.sha256(raw).hexdigest() == result.items_sha256
    lines = raw.decode().splitlines()
    exported = [item_from_json(line) for line in lines]
    exported_keys = [(i["PK"]["S"], i["SK"]["S"]) for i in exported]
    assert exported_keys == sorted(exported_keys)
    assert len(set(exported_keys)) == len(exported_keys) == acme_items
    assert set(exported_keys) == {(k["PK"]["S"], k["SK"]["S"]) for k in keys["acme"]}
    assert all(pk.startswith("T#acme#") for pk, _ in exported_keys)  # no acme-2, no platform
    for item in exported:
        key = {"PK": item["PK"], "SK": item["SK"]}
        assert ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"] == item

    manifest_lines = [json.loads(x) for x in _get(s3, prefix + "objects.jsonl").splitlines()]
    assert [m["key"] for m in manifest_lines] == sorted(latest)
    for entry in manifest_lines:
        relative = entry["key"].removeprefix("tenants/acme/")
        assert entry["export_key"] == f"{prefix}objects/{relative}"
        body = _get(s3, entry["export_key"])
        assert body == latest[entry["key"]] == _get(s3, entry["key"])
        assert entry["size"] == len(body)
        assert entry["etag"] == hashlib.md5(body).hexdigest()
        assert entry["last_modified"].endswith("Z")
    assert _versions(s3, prefix + "objects/tenants") == 0
    assert _versions(s3, prefix + "objects/gone.txt") == 0

    manifest = json.loads(_get(s3, prefix + "manifest.json"))
    assert manifest["tenant_id"] == "acme" and manifest["export_id"] == "exp-1"
    assert manifest["items"] == acme_items and manifest["objects"] == len(latest)
    assert manifest["items_sha256"] == result.items_sha256
    assert (
        manifest["objects_sha256"] == hashlib.sha256(_get(s3, prefix + "objects.jsonl")).hexdigest()
    )

    # --- export again: same keys, same content ---
    before = _export_snapshot(s3, prefix)
    assert export_tenant("acme", "exp-1") == result
    assert _export_snapshot(s3, prefix) == before

    # --- purge ---
    acme2_before = {
        (i["PK"]["S"], i["SK"]["S"]): i
        for i in _scan_all(ddb)
        if not i["PK"]["S"].startswith("T#acme#")
    }
    purged = purge_tenant("acme")
    assert purged == tenant_data.PurgeResult(items=acme_items, object_versions=21, delete_markers=1)
    remaining = _scan_all(ddb)
    assert not [i for i in remaining if i["PK"]["S"].startswith("T#acme#")]
    assert {(i["PK"]["S"], i["SK"]["S"]): i for i in remaining} == acme2_before
    assert count_tenant_items("acme") == 0 and count_tenant_objects("acme") == 0
    assert count_tenant_items("acme-2") == len(keys["acme-2"])
    assert _versions(s3, "tenants/acme/") == 0
    assert _get(s3, "tenants/acme-2/docs/file-00.bin") == b"other tenant"
    assert count_tenant_objects("acme-2") == 2
    assert _export_snapshot(s3, prefix) == before  # the export survives the purge

    # --- purge again: nothing left to do ---
    assert purge_tenant("acme") == tenant_data.PurgeResult(0, 0, 0)


def _export_snapshot(s3: Any, prefix: str) -> dict[str, bytes]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", ())]
    return {key: _get(s3, key) for key in keys}


def test_an_empty_tenant_exports_and_purges_to_nothing(moto_cloud: MotoCloud) -> None:
    result = export_tenant("nobody", "e1")
    assert (result.items, result.objects) == (0, 0)
    assert result.items_sha256 == hashlib.sha256(b"").hexdigest()
    assert purge_tenant("nobody") == tenant_data.PurgeResult(0, 0, 0)


def test_unprocessed_deletes_are_retried(
    moto_cloud: MotoCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb = moto_cloud.client("dynamodb")
    for i in range(60):
        ddb.put_item(TableName=TABLE, Item={"PK": {"S": "T#acme#X"}, "SK": {"S": f"{i:03}"}})
    from dotmac.core.aws import client

    real = client("dynamodb")
    calls: list[int] = []

    class Flaky:
        """Leaves the last item of every first attempt unprocessed."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            requests = RequestItems[TABLE]
            calls.append(len(requests))
            if len(requests) > 1:
                real.batch_write_item(RequestItems={TABLE: requests[:-1]})
                return {"UnprocessedItems": {TABLE: requests[-1:]}}
            return dict(real.batch_write_item(RequestItems=RequestItems))

    monkeypatch.setattr(tenant_data, "client", lambda s: Flaky() if s == "dynamodb" else client(s))
    monkeypatch.setattr(tenant_data, "BACKOFF_BASE_SECONDS", 0.001)
    assert purge_tenant("acme").items == 60
    assert sorted(calls) == [1, 1, 1, 10, 25, 25]
    assert count_tenant_items("acme") == 0
