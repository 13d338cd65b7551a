"""Create the resources of `infra.resources.STACK` in an emulator (moto or LocalStack).

Idempotent: running it against a cloud that already has the resources changes nothing.
Queue triggers and schedules are not created in the emulator (moto would deliver one
message per call, unlike Lambda); `devcloud` reads them from the same STACK instead.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from infra.naming import function_arn_key, physical
from infra.resources import STACK, Stack

LAMBDA_RUNTIME = "python3.12"


@dataclass
class Created:
    """What the bootstrap made: physical names and ARNs, for the launcher and the tests."""

    table: str = ""
    queues: dict[str, str] = field(default_factory=dict)  # logical -> URL (DLQs included)
    buckets: dict[str, str] = field(default_factory=dict)  # logical -> bucket name
    kms_key_id: str = ""
    functions: dict[str, str] = field(default_factory=dict)  # logical -> ARN
    state_machines: dict[str, str] = field(default_factory=dict)  # logical -> ARN


def _placeholder_zip() -> bytes:
    # In the embedded emulator the code runs in-process (devcloud.lambda_dispatch); the
    # package only has to exist for the Lambda API to accept the function.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs in-process via devcloud.lambda_dispatch\n")
    return buffer.getvalue()


def _exists(call: Any, missing: tuple[str, ...]) -> bool:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in missing:
            return False
        raise
    return True


def create_table(session: Any, stack: Stack, stage: str) -> str:
    ddb = session.client("dynamodb")
    table = stack.table
    name = physical(stage, table.name)
    if not _exists(lambda: ddb.describe_table(TableName=name), ("ResourceNotFoundException",)):
        attributes = {table.pk, table.sk} | {a for i in table.indexes for a in (i.pk, i.sk)}
        ddb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
            ],
            KeySchema=[
                {"AttributeName": table.pk, "KeyType": "HASH"},
                {"AttributeName": table.sk, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": index.name,
                    "KeySchema": [
                        {"AttributeName": index.pk, "KeyType": "HASH"},
                        {"AttributeName": index.sk, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for index in table.indexes
            ],
            SSESpecification={"Enabled": True},
        )
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    return name


def create_queues(session: Any, stack: Stack, stage: str) -> dict[str, str]:
    sqs = session.client("sqs")
    urls: dict[str, str] = {}
    for queue in stack.queues:
        dlq_url = sqs.create_queue(
            QueueName=physical(stage, queue.dlq_name),
            Attributes={"MessageRetentionPeriod": str(queue.dlq_retention_seconds)},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        attributes = {
            "VisibilityTimeout": str(queue.visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue.max_receive_count}
            ),
        }
        url = sqs.create_queue(QueueName=physical(stage, queue.name))["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        urls[queue.name], urls[queue.dlq_name] = url, dlq_url
    return urls


def create_buckets(session: Any, stack: Stack, stage: str) -> dict[str, str]:
    s3 = session.client("s3")
    names: dict[str, str] = {}
    for bucket in stack.buckets:
        name = physical(stage, bucket.name)
        if not _exists(lambda name=name: s3.head_bucket(Bucket=name), ("404", "NoSuchBucket")):
            region = session.region_name
            location = (
                {}
                if region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            s3.create_bucket(Bucket=name, **location)
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        names[bucket.name] = name
    return names


def create_kms_key(session: Any, stack: Stack, stage: str) -> str:
    kms = session.client("kms")
    alias = f"alias/{physical(stage, stack.kms_key_alias)}"
    for existing in kms.list_aliases()["Aliases"]:
        if existing["AliasName"] == alias and existing.get("TargetKeyId"):
            return str(existing["TargetKeyId"])
    key_id = kms.create_key(Description="DotMac PII field encryption")["KeyMetadata"]["KeyId"]
    kms.enable_key_rotation(KeyId=key_id)
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return str(key_id)


def ensure_role(session: Any, name: str, service: str) -> str:
    """An IAM role trusted by `service` (e.g. lambda.amazonaws.com); returns its ARN."""
    iam = session.client("iam")
    if _exists(lambda: iam.get_role(RoleName=name), ("NoSuchEntity",)):
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def create_functions(
    session: Any, stack: Stack, stage: str, environment: dict[str, str]
) -> dict[str, str]:
    lam = session.client("lambda")
    role_arn = ensure_role(session, physical(stage, "lambda"), "lambda.amazonaws.com")
    arns: dict[str, str] = {}
    for function in stack.functions:
        name = physical(stage, function.name)
        if _exists(
            lambda name=name: lam.get_function(FunctionName=name), ("ResourceNotFoundException",)
        ):
            arns[function.name] = lam.get_function(FunctionName=name)["Configuration"][
                "FunctionArn"
            ]
            continue
        arns[function.name] = lam.create_function(
            FunctionName=name,
            Runtime=LAMBDA_RUNTIME,
            Role=role_arn,
            Handler=f"app.{function.handler}",
            Code={"ZipFile": _placeholder_zip()},
            Timeout=function.timeout,
            MemorySize=function.memory,
            Environment={"Variables": environment},
        )["FunctionArn"]
    return arns


def render_definition(stack: Stack, machine_name: str, function_arns: dict[str, str]) -> str:
    """The ASL text with each `${<Function>Arn}` replaced (what CloudFormation's
    DefinitionSubstitutions does in AWS)."""
    machine = next(m for m in stack.state_machines if m.name == machine_name)
    text = machine.definition_path.read_text()
    for function in machine.functions:
        text = text.replace("${" + function_arn_key(function) + "}", function_arns[function])
    return text


def create_state_machines(
    session: Any, stack: Stack, stage: str, function_arns: dict[str, str], role_arn: str
) -> dict[str, str]:
    sfn = session.client("stepfunctions")
    existing = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    arns: dict[str, str] = {}
    for machine in stack.state_machines:
        name = physical(stage, machine.name)
        definition = render_definition(stack, machine.name, function_arns)
        if name in existing:
            sfn.update_state_machine(stateMachineArn=existing[name], definition=definition)
            arns[machine.name] = existing[name]
        else:
            arns[machine.name] = sfn.create_state_machine(
                name=name, definition=definition, roleArn=role_arn
            )["stateMachineArn"]
    return arns


def function_environment(stage: str, region: str) -> dict[str, str]:
    """The environment every function gets (the same keys CloudFormation sets)."""
    return {
        "DOTMAC_STAGE": stage,
        "DOTMAC_REGION": region,
        "POWERTOOLS_SERVICE_NAME": "dotmac",
        "POWERTOOLS_METRICS_NAMESPACE": "DotMac",
    }


def bootstrap(session: Any, stage: str = "local", stack: Stack = STACK) -> Created:
    """Create (or confirm) every resource of `stack` through `session`'s endpoint."""
    created = Created()
    created.table = create_table(session, stack, stage)
    created.queues = create_queues(session, stack, stage)
    created.buckets = create_buckets(session, stack, stage)
    created.kms_key_id = create_kms_key(session, stack, stage)
    env = function_environment(stage, session.region_name)
    created.functions = create_functions(session, stack, stage, env)
    role_arn = ensure_role(session, physical(stage, "states"), "states.amazonaws.com")
    created.state_machines = create_state_machines(
        session, stack, stage, created.functions, role_arn
    )
    return created
