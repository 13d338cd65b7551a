"""Conditional writes in the emulator are atomic, as in DynamoDB: no lost updates, no overshoot."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import ClientError

from devcloud import dynamodb_atomicity
from tests.integration.conftest import MotoCloud

THREADS = 16
ATTEMPTS = 400
LIMIT = 150


def _race(cloud: MotoCloud) -> tuple[int, int]:
    """Many threads increment one counter with `hits < :max`; returns (accepted, stored)."""
    ddb = cloud.client("dynamodb")
    table = cloud.created.table
    key = {"PK": {"S": "RATE#race#x"}, "SK": {"S": "W#0"}}

    def attempt(_: int) -> bool:
        try:
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="ADD hits :one",
                ConditionExpression="attribute_not_exists(hits) OR hits < :max",
                ExpressionAttributeValues={":one": {"N": "1"}, ":max": {"N": str(LIMIT)}},
            )
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
            return False
        return True

    with ThreadPoolExecutor(THREADS) as pool:
        accepted = sum(pool.map(attempt, range(ATTEMPTS)))
    stored = int(ddb.get_item(TableName=table, Key=key)["Item"]["hits"]["N"])
    return accepted, stored


def test_a_conditional_counter_never_overshoots_under_threads(moto_cloud: MotoCloud) -> None:
    assert dynamodb_atomicity._originals, "the integration fixture installs the patch"
    accepted, stored = _race(moto_cloud)
    assert accepted == stored == LIMIT
