"""The CloudFormation template and the emulator bootstrap describe the same cloud.

Both are derived from one `Stack`; this bootstraps it in moto, describes what exists, and
compares that field by field with what `infra.cloudformation.render` says AWS will get.
Names are compared without their stage prefix (`dotmac-parity-` / `dotmac-${Stage}-`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devcloud.events import QueueMapping, Schedule, queue_mappings, schedules
from infra.bootstrap import Created
from infra.cloudformation import render
from infra.naming import physical
from infra.resources import STACK, Stack
from tests.fakes import extended_stack

STAGE = "parity"
REGION = "us-east-1"
PREFIX = physical(STAGE, "")
ACCOUNT_SUFFIX = "-${AWS::AccountId}"
# What AWS assumes for the queue attributes a template leaves out.
SQS_DEFAULTS = {"VisibilityTimeout": 30, "MessageRetentionPeriod": 4 * 24 * 3600}
# Variables only AWS needs: locally these names derive from the stage, and tracing is off.
AWS_ONLY_ENV = {"DOTMAC_TABLE_NAME", "DOTMAC_BUCKET_NAME", "DOTMAC_KMS_KEY_ALIAS", "DOTMAC_TRACING"}
Json = dict[str, Any]


# --- the template side ------------------------------------------------------------------


def _sub(value: Any) -> Any:
    """Resolve the `Fn::Sub` parameters this test fixes (stage and region)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return value["Fn::Sub"].replace("${Stage}", STAGE).replace("${AWS::Region}", REGION)
    return value


def _logical(physical_name: str) -> str:
    assert physical_name.startswith(PREFIX), physical_name
    return physical_name.removeprefix(PREFIX).removesuffix(ACCOUNT_SUFFIX)


def _of_type(template: Json, resource_type: str) -> list[Json]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == resource_type]


def _target(template: Json, pointer: Json) -> Json:
    """The properties of the resource a `Ref` or `Fn::GetAtt` points at."""
    logical = pointer["Ref"] if "Ref" in pointer else pointer["Fn::GetAtt"][0]
    properties: Json = template["Resources"][logical]["Properties"]
    return properties


def _keys(schema: list[Json]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def template_table(template: Json) -> Json:
    (table,) = _of_type(template, "AWS::DynamoDB::Table")
    ttl = table["TimeToLiveSpecification"]
    return {
        "name": _logical(_sub(table["TableName"])),
        "billing": table["BillingMode"],
        "keys": _keys(table["KeySchema"]),
        "attributes": {
            a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]
        },
        "indexes": {
            i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
            for i in table["GlobalSecondaryIndexes"]
        },
        "ttl": ttl["AttributeName"] if ttl["Enabled"] else None,
        "pitr": table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        "sse": table["SSESpecification"]["SSEEnabled"],
    }


def template_queues(template: Json) -> Json:
    queues: Json = {}
    for queue in _of_type(template, "AWS::SQS::Queue"):
        redrive = queue.get("RedrivePolicy")
        queues[_logical(_sub(queue["QueueName"]))] = {
            **{key: queue.get(key, default) for key, default in SQS_DEFAULTS.items()},
            "RedrivePolicy": redrive
            and (
                _logical(_sub(_target(template, redrive["deadLetterTargetArn"])["QueueName"])),
                redrive["maxReceiveCount"],
            ),
        }
    return queues


def template_buckets(template: Json) -> Json:
    return {
        _logical(_sub(bucket["BucketName"])): {
            "versioning": bucket["VersioningConfiguration"]["Status"],
            "encryption": [
                rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
                for rule in bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ],
            "public_access_block": bucket["PublicAccessBlockConfiguration"],
        }
        for bucket in _of_type(template, "AWS::S3::Bucket")
    }


def template_aliases(template: Json) -> set[str]:
    return {
        _logical(_sub(alias["AliasName"]).removeprefix("alias/"))
        for alias in _of_type(template, "AWS::KMS::Alias")
    }


def template_functions(template: Json) -> Json:
    functions: Json = {}
    for function in _of_type(template, "AWS::Lambda::Function"):
        variables = function["Environment"]["Variables"]
        functions[_logical(_sub(function["FunctionName"]))] = {
            "Runtime": function["Runtime"],
            "Handler": function["Handler"],
            "Timeout": function["Timeout"],
            "MemorySize": function["MemorySize"],
            "Environment": {k: _sub(v) for k, v in variables.items() if k not in AWS_ONLY_ENV},
        }
    return functions


def template_state_machines(template: Json, function_arns: dict[str, str]) -> Json:
    """Each state machine's definition, substituted as CloudFormation would."""
    machines: Json = {}
    for machine in _of_type(template, "AWS::StepFunctions::StateMachine"):
        definition = machine["DefinitionString"]
        for key, pointer in machine["DefinitionSubstitutions"].items():
            function = _logical(_sub(_target(template, pointer)["FunctionName"]))
            definition = definition.replace("${" + key + "}", function_arns[function])
        machines[_logical(_sub(machine["StateMachineName"]))] = json.loads(definition)
    return machines


def template_queue_mappings(template: Json) -> list[QueueMapping]:
    return [
        QueueMapping(
            function=_logical(_sub(_target(template, m["FunctionName"])["FunctionName"])),
            queue=_sub(_target(template, m["EventSourceArn"])["QueueName"]),
            batch_size=m["BatchSize"],
            max_batching_window=m["MaximumBatchingWindowInSeconds"],
            visibility_timeout=_target(template, m["EventSourceArn"]).get(
                "VisibilityTimeout", SQS_DEFAULTS["VisibilityTimeout"]
            ),
            report_batch_item_failures="ReportBatchItemFailures" in m["FunctionResponseTypes"],
        )
        for m in _of_type(template, "AWS::Lambda::EventSourceMapping")
    ]


def template_schedules(template: Json) -> list[Schedule]:
    return [
        Schedule(
            function=_logical(_sub(_target(template, target["Arn"])["FunctionName"])),
            expression=rule["ScheduleExpression"],
        )
        for rule in _of_type(template, "AWS::Events::Rule")
        for target in rule["Targets"]
    ]


# --- the emulator side ------------------------------------------------------------------


def cloud_table(session: Any, created: Created) -> Json:
    ddb = session.client("dynamodb")
    table = ddb.describe_table(TableName=created.table)["Table"]
    ttl = ddb.describe_time_to_live(TableName=created.table)["TimeToLiveDescription"]
    backups = ddb.describe_continuous_backups(TableName=created.table)
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return {
        "name": _logical(table["TableName"]),
        "billing": table["BillingModeSummary"]["BillingMode"],
        "keys": _keys(table["KeySchema"]),
        "attributes": {
            a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]
        },
        "indexes": {
            i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
            for i in table.get("GlobalSecondaryIndexes", [])
        },
        "ttl": ttl["AttributeName"] if ttl["TimeToLiveStatus"] == "ENABLED" else None,
        "pitr": pitr["PointInTimeRecoveryStatus"] == "ENABLED",
        "sse": table.get("SSEDescription", {}).get("Status") == "ENABLED",
    }


def cloud_queues(session: Any) -> Json:
    sqs = session.client("sqs")
    queues: Json = {}
    for url in sqs.list_queues(QueueNamePrefix=PREFIX).get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes.get("RedrivePolicy", "null"))
        queues[_logical(url.rsplit("/", 1)[-1])] = {
            **{key: int(attributes[key]) for key in SQS_DEFAULTS},
            "RedrivePolicy": redrive
            and (
                _logical(redrive["deadLetterTargetArn"].rsplit(":", 1)[-1]),
                int(redrive["maxReceiveCount"]),
            ),
        }
    return queues


def cloud_buckets(session: Any) -> Json:
    s3 = session.client("s3")
    buckets: Json = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        encryption = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]
        buckets[_logical(name)] = {
            "versioning": s3.get_bucket_versioning(Bucket=name).get("Status"),
            "encryption": [
                rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
                for rule in encryption["Rules"]
            ],
            "public_access_block": s3.get_public_access_block(Bucket=name)[
                "PublicAccessBlockConfiguration"
            ],
        }
    return buckets


def cloud_aliases(session: Any) -> set[str]:
    return {
        _logical(alias["AliasName"].removeprefix("alias/"))
        for alias in session.client("kms").list_aliases()["Aliases"]
        if alias["AliasName"].startswith(f"alias/{PREFIX}")
    }


def cloud_functions(session: Any) -> Json:
    functions: Json = {}
    for function in session.client("lambda").list_functions()["Functions"]:
        functions[_logical(function["FunctionName"])] = {
            "Runtime": function["Runtime"],
            "Handler": function["Handler"],
            "Timeout": function["Timeout"],
            "MemorySize": function["MemorySize"],
            "Environment": function["Environment"]["Variables"],
        }
    return functions


def cloud_state_machines(session: Any) -> Json:
    sfn = session.client("stepfunctions")
    return {
        _logical(machine["name"]): json.loads(
            sfn.describe_state_machine(stateMachineArn=machine["stateMachineArn"])["definition"]
        )
        for machine in sfn.list_state_machines()["stateMachines"]
    }


@dataclass(frozen=True)
class Case:
    """One stack: its template, and what bootstrapping it in moto made."""

    stack: Stack
    template: Json
    created: Created
    cloud: Json


@pytest.fixture(scope="module", params=["STACK", "extended"])
def case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Case]:
    stack = STACK if request.param == "STACK" else extended_stack(tmp_path_factory.mktemp("asl"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        from moto import mock_aws

        with mock_aws():
            import boto3

            from infra.bootstrap import bootstrap

            session = boto3.Session(region_name=REGION)
            created = bootstrap(session, stage=STAGE, stack=stack)
            cloud = {
                "table": cloud_table(session, created),
                "queues": cloud_queues(session),
                "buckets": cloud_buckets(session),
                "aliases": cloud_aliases(session),
                "functions": cloud_functions(session),
                "state_machines": cloud_state_machines(session),
            }
    yield Case(stack, render(stack), created, cloud)


def test_the_table_is_the_same(case: Case) -> None:
    assert case.cloud["table"] == template_table(case.template)
    assert case.cloud["table"]["indexes"], "the table should have its GSIs"


def test_the_queues_and_their_dead_letter_queues_are_the_same(case: Case) -> None:
    assert case.cloud["queues"] == template_queues(case.template)
    assert len(case.cloud["queues"]) == 2 * len(case.stack.queues)


def test_the_buckets_are_the_same(case: Case) -> None:
    assert case.cloud["buckets"] == template_buckets(case.template)
    assert set(case.cloud["buckets"]) == {b.name for b in case.stack.buckets}


def test_the_kms_alias_is_the_same(case: Case) -> None:
    assert case.cloud["aliases"] == template_aliases(case.template) == {case.stack.kms_key_alias}


def test_the_functions_are_the_same(case: Case) -> None:
    assert case.cloud["functions"] == template_functions(case.template)
    assert set(case.cloud["functions"]) == {f.name for f in case.stack.functions}
    for function in _of_type(case.template, "AWS::Lambda::Function"):
        assert set(function["Environment"]["Variables"]) >= AWS_ONLY_ENV


def test_the_state_machines_are_the_same(case: Case) -> None:
    assert case.cloud["state_machines"] == template_state_machines(
        case.template, case.created.functions
    )
    assert set(case.cloud["state_machines"]) == {m.name for m in case.stack.state_machines}


def _sorted(items: list[Any]) -> list[Any]:
    return sorted(items, key=repr)


def test_event_source_mappings_match_the_local_pollers(case: Case) -> None:
    assert _sorted(template_queue_mappings(case.template)) == _sorted(
        queue_mappings(case.stack, STAGE)
    )


def test_schedule_rules_match_the_local_scheduler(case: Case) -> None:
    assert _sorted(template_schedules(case.template)) == _sorted(schedules(case.stack))
