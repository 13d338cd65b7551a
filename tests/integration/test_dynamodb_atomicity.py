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


def test_a_cancelled_transaction_leaves_every_item_as_it_was(moto_cloud: MotoCloud) -> None:
    """The patched rollback restores only the touched items, but restores them exactly."""
    import pytest

    ddb = moto_cloud.client("dynamodb")
    table = moto_cloud.created.table
    kept = {
        "PK": {"S": "T#acme#X"},
        "SK": {"S": "1"},
        "n": {"N": "1"},
        "b": {"B": b"\x00\xff"},
        "GSI1PK": {"S": "T#acme#BY"},
        "GSI1SK": {"S": "one"},
    }
    ddb.put_item(TableName=table, Item=kept)
    bystander = {"PK": {"S": "T#acme#Y"}, "SK": {"S": "1"}, "v": {"S": "untouched"}}
    ddb.put_item(TableName=table, Item=bystander)
    with pytest.raises(ClientError) as cancelled:
        ddb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"PK": kept["PK"], "SK": kept["SK"]},
                        "UpdateExpression": "SET n = :two, GSI1SK = :two_s",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":two_s": {"S": "two"}},
                    }
                },
                {
                    "Put": {
                        "TableName": table,
                        "Item": {"PK": {"S": "T#acme#Z"}, "SK": {"S": "new"}},
                    }
                },
                {"Delete": {"TableName": table, "Key": {"PK": bystander["PK"], "SK": {"S": "1"}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"PK": {"S": "T#acme#MISSING"}, "SK": {"S": "1"}},
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    key = {"PK": kept["PK"], "SK": kept["SK"]}
    assert ddb.get_item(TableName=table, Key=key)["Item"] == kept
    new = {"PK": {"S": "T#acme#Z"}, "SK": {"S": "new"}}
    assert "Item" not in ddb.get_item(TableName=table, Key=new)
    still = ddb.get_item(TableName=table, Key={"PK": bystander["PK"], "SK": {"S": "1"}})
    assert still["Item"] == bystander
    by_index = ddb.query(
        TableName=table,
        IndexName="GSI1",
        KeyConditionExpression="GSI1PK = :pk",
        ExpressionAttributeValues={":pk": {"S": "T#acme#BY"}},
    )["Items"]
    assert [i["GSI1SK"]["S"] for i in by_index] == ["one"]


def test_a_cancelled_transaction_does_not_swap_in_a_copy_of_the_table(
    moto_cloud: MotoCloud,
) -> None:
    """moto's own rollback replaces the table with a deep copy taken before the transaction
    (cost: the whole table, per item); the patched one restores items in the same table."""
    import pytest
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    table = moto_cloud.created.table
    before = backend.tables[table]
    with pytest.raises(ClientError):
        moto_cloud.client("dynamodb").transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"PK": {"S": "T#acme#MISSING"}, "SK": {"S": "1"}},
                        "ConditionExpression": "attribute_exists(PK)",
                    }
                }
            ]
        )
    assert backend.tables[table] is before
