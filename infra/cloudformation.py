"""Render `infra.resources.STACK` as a CloudFormation template for AWS.

Everything is derived from the `Stack` value: physical names follow `infra.naming.physical`
with the `Stage` parameter, code comes from the artifacts `infra.package` builds, and the one
REST API is the union of the routes of every HTTP app. `python -m infra render` prints it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from devcloud.registry import chalice_app
from infra.bootstrap import LAMBDA_RUNTIME, function_environment
from infra.naming import function_arn_key, logical_id, physical
from infra.package import LAMBDA_ARCHITECTURE, LAYER_ZIP, app_zip_name
from infra.resources import (
    GATEWAY_RESPONSES,
    STACK,
    Bucket,
    Function,
    GatewayResponse,
    Queue,
    Stack,
    StateMachine,
)

Json = dict[str, Any]
Resource = tuple[str, Json]

STAGE_PATTERN = "^[a-z0-9-]{1,20}$"
API_STAGE = "api"
AUTHORIZER_FUNCTION = "authorizer"
AUTHORIZER_HEADER = "Authorization"
AUTHORIZER_TTL_SECONDS = 300
EXECUTION_ROLE = "lambda"
TENANT_ROLE = "tenant-scoped"
TENANT_TAG = "tenant_id"
# An IAM policy variable, not a CloudFormation one: it stays outside any Fn::Sub.
LEADING_KEYS = "T#${aws:PrincipalTag/" + TENANT_TAG + "}#*"
POLICY_VERSION = "2012-10-17"

# Logical-id suffixes, one per kind of resource (see `resource_id`).
TABLE = "table"
QUEUE = "queue"
BUCKET = "bucket"
KEY = "key"
ALIAS = "alias"
FUNCTION = "function"
STATE_MACHINE = "state-machine"
API_ID = "Api"
API_STAGE_ID = "ApiStage"
LAYER_ID = "Layer"
EXECUTION_ROLE_ID = "ExecutionRole"
TENANT_ROLE_ID = "TenantScopedRole"

TABLE_ITEM_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
QUEUE_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
OBJECT_ACTIONS = ("s3:DeleteObject", "s3:GetObject", "s3:PutObject")
KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")
SIGNING_KEY_ACTIONS = ("kms:CreateKey", "kms:GetPublicKey", "kms:Sign")
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
XRAY_ACTIONS = (
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
)

PARAMETERS: Json = {
    "Stage": {
        "Type": "String",
        "Default": "prod",
        "AllowedPattern": STAGE_PATTERN,
        "Description": "Deployment stage; every physical name is dotmac-<Stage>-<logical>.",
    },
    "ArtifactBucket": {
        "Type": "String",
        "Description": "S3 bucket holding the artifacts `python -m infra package` builds.",
    },
    "ArtifactPrefix": {
        "Type": "String",
        "Description": "Key prefix of this build's artifacts (a new one per build).",
    },
}


class TemplateError(ValueError):
    """The stack cannot be rendered as asked (duplicate route, missing function, ...)."""


# --- intrinsic functions and names ------------------------------------------------------


def sub(text: str) -> Json:
    """`Fn::Sub` of `text`."""
    return {"Fn::Sub": text}


def ref(logical: str) -> Json:
    """`Ref` to a parameter or resource."""
    return {"Ref": logical}


def get_att(logical: str, attribute: str) -> Json:
    """`Fn::GetAtt` of a resource attribute."""
    return {"Fn::GetAtt": [logical, attribute]}


def stage_name(logical: str) -> str:
    """The `Fn::Sub` text of a physical name: `dotmac-${Stage}-<logical>`."""
    return physical("${Stage}", logical)


def physical_name(logical: str) -> Json:
    """The physical name of `logical` for the stage being deployed."""
    return sub(stage_name(logical))


def resource_id(logical: str, kind: str) -> str:
    """The logical id of a resource: `("notifications", QUEUE)` -> `NotificationsQueue`."""
    return logical_id(logical, kind)


def _arn(service: str, resource: str) -> Json:
    return sub(f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}")


def _statement(actions: Iterable[str], resources: list[Any], condition: Json | None = None) -> Json:
    statement: Json = {"Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _role(
    role_name: str,
    principal: Json,
    statements: list[Json],
    *,
    assume_actions: tuple[str, ...] = ("sts:AssumeRole",),
    assume_condition: Json | None = None,
) -> Json:
    assume: Json = {"Effect": "Allow", "Principal": principal, "Action": list(assume_actions)}
    if assume_condition is not None:
        assume["Condition"] = assume_condition
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": physical_name(role_name),
            "AssumeRolePolicyDocument": {"Version": POLICY_VERSION, "Statement": [assume]},
            "Policies": [
                {
                    "PolicyName": "dotmac",
                    "PolicyDocument": {"Version": POLICY_VERSION, "Statement": statements},
                }
            ],
        },
    }


def _retained(resource_type: str, properties: Json) -> Json:
    return {
        "Type": resource_type,
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": properties,
    }


def _require_function(stack: Stack, function_name: str, needed_by: str) -> Function:
    for function in stack.functions:
        if function.name == function_name:
            return function
    raise TemplateError(f"{needed_by} needs a function named {function_name!r} in the stack")


def _queue(stack: Stack, queue_name: str) -> Queue:
    for queue in stack.queues:
        if queue.name == queue_name:
            return queue
    raise TemplateError(f"no queue named {queue_name!r} in the stack")


def _primary_bucket(stack: Stack) -> Bucket:
    if not stack.buckets:
        raise TemplateError("the stack needs a bucket for DOTMAC_BUCKET_NAME")
    return stack.buckets[0]


def _all_queue_names(stack: Stack) -> list[str]:
    return [n for queue in stack.queues for n in (queue.name, queue.dlq_name)]


# --- storage ---------------------------------------------------------------------------


def _key_schema(pk: str, sk: str) -> list[Json]:
    return [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}]


def table_resources(stack: Stack) -> Iterator[Resource]:
    """The single table: on-demand, string keys, GSIs (ALL), TTL, PITR, SSE, retained."""
    table = stack.table
    attributes = {table.pk, table.sk} | {a for i in table.indexes for a in (i.pk, i.sk)}
    yield (
        resource_id(table.name, TABLE),
        _retained(
            "AWS::DynamoDB::Table",
            {
                "TableName": physical_name(table.name),
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [
                    {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
                ],
                "KeySchema": _key_schema(table.pk, table.sk),
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": index.name,
                        "KeySchema": _key_schema(index.pk, index.sk),
                        "Projection": {"ProjectionType": "ALL"},
                    }
                    for index in table.indexes
                ],
                "TimeToLiveSpecification": {
                    "AttributeName": table.ttl_attribute,
                    "Enabled": True,
                },
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "SSESpecification": {"SSEEnabled": True},
            },
        ),
    )


def _sqs_queue(queue_name: str, properties: Json) -> Resource:
    return resource_id(queue_name, QUEUE), {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": physical_name(queue_name),
            "SqsManagedSseEnabled": True,
            **properties,
        },
    }


def queue_resources(stack: Stack) -> Iterator[Resource]:
    """Each queue and its dead-letter queue, wired by a redrive policy."""
    for queue in stack.queues:
        yield _sqs_queue(queue.dlq_name, {"MessageRetentionPeriod": queue.dlq_retention_seconds})
        yield _sqs_queue(
            queue.name,
            {
                "VisibilityTimeout": queue.visibility_timeout,
                "RedrivePolicy": {
                    "deadLetterTargetArn": get_att(resource_id(queue.dlq_name, QUEUE), "Arn"),
                    "maxReceiveCount": queue.max_receive_count,
                },
            },
        )


def bucket_resources(stack: Stack) -> Iterator[Resource]:
    """Each bucket: versioned, encrypted, private, retained; named per account."""
    for bucket in stack.buckets:
        yield (
            resource_id(bucket.name, BUCKET),
            _retained(
                "AWS::S3::Bucket",
                {
                    "BucketName": sub(stage_name(bucket.name) + "-${AWS::AccountId}"),
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                },
            ),
        )


def key_resources(stack: Stack) -> Iterator[Resource]:
    """The PII field-encryption key (rotated, retained) and its alias."""
    key_id = resource_id(stack.kms_key_alias, KEY)
    yield (
        key_id,
        _retained(
            "AWS::KMS::Key",
            {
                "Description": "DotMac PII field encryption",
                "EnableKeyRotation": True,
                "KeyPolicy": {
                    "Version": POLICY_VERSION,
                    "Statement": [
                        {
                            "Sid": "AccountAdministersTheKeyThroughIam",
                            "Effect": "Allow",
                            "Principal": {
                                "AWS": sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
                            },
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                },
            },
        ),
    )
    yield (
        resource_id(stack.kms_key_alias, ALIAS),
        {
            "Type": "AWS::KMS::Alias",
            "Properties": {
                "AliasName": sub(f"alias/{stage_name(stack.kms_key_alias)}"),
                "TargetKeyId": ref(key_id),
            },
        },
    )


# --- permissions -----------------------------------------------------------------------


def _table_statement(stack: Stack, actions: Iterable[str], condition: Json | None = None) -> Json:
    table_id = resource_id(stack.table.name, TABLE)
    return _statement(
        actions, [get_att(table_id, "Arn"), sub(f"${{{table_id}.Arn}}/index/*")], condition
    )


def _queue_statement(stack: Stack, actions: Iterable[str]) -> Json:
    return _statement(
        actions, [get_att(resource_id(n, QUEUE), "Arn") for n in _all_queue_names(stack)]
    )


def _object_statement(stack: Stack) -> Json:
    return _statement(
        OBJECT_ACTIONS,
        [sub(f"${{{resource_id(b.name, BUCKET)}.Arn}}/*") for b in stack.buckets],
    )


def _role_arn(role_name: str) -> Json:
    # By name, not GetAtt: roles that trust each other would otherwise depend on each other.
    return sub(f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{stage_name(role_name)}")


def _state_machine_arn(machine: StateMachine) -> Json:
    # By name: the state machines depend on the functions, which depend on this role.
    return _arn("states", f"stateMachine:{stage_name(machine.name)}")


def execution_role(stack: Stack) -> Iterator[Resource]:
    """The role every function runs as: its table, queues, buckets, key, workflows, logs."""
    statements = [
        _table_statement(stack, (*TABLE_ITEM_ACTIONS, "dynamodb:DescribeTable")),
        _queue_statement(stack, QUEUE_ACTIONS),
        _object_statement(stack),
        _statement(
            ["s3:ListBucket"], [get_att(resource_id(b.name, BUCKET), "Arn") for b in stack.buckets]
        ),
        _statement(KEY_ACTIONS, [get_att(resource_id(stack.kms_key_alias, KEY), "Arn")]),
        # JWT signing keys are created and used at run time (dotmac.identity.keys.rotate).
        _statement(SIGNING_KEY_ACTIONS, ["*"]),
        _statement(
            LOG_ACTIONS,
            [
                _arn("logs", f"log-group:/aws/lambda/{stage_name(f.name)}:*")
                for f in stack.functions
            ],
        ),
        _statement(XRAY_ACTIONS, ["*"]),
        _statement(["sts:AssumeRole", "sts:TagSession"], [_role_arn(TENANT_ROLE)]),
    ]
    if stack.state_machines:
        statements.append(
            _statement(
                ["states:StartExecution"], [_state_machine_arn(m) for m in stack.state_machines]
            )
        )
    yield EXECUTION_ROLE_ID, _role(EXECUTION_ROLE, {"Service": "lambda.amazonaws.com"}, statements)


def tenant_role(stack: Stack) -> Iterator[Resource]:
    """The role a function assumes, tagged `tenant_id`, to touch only that tenant's items."""
    statements = [
        _table_statement(
            stack,
            TABLE_ITEM_ACTIONS,
            {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [LEADING_KEYS]}},
        )
    ]
    yield (
        TENANT_ROLE_ID,
        _role(
            TENANT_ROLE,
            {"AWS": get_att(EXECUTION_ROLE_ID, "Arn")},
            statements,
            assume_actions=("sts:AssumeRole", "sts:TagSession"),
            assume_condition={"StringLike": {f"aws:RequestTag/{TENANT_TAG}": "?*"}},
        ),
    )


# --- compute ---------------------------------------------------------------------------


def _artifact(artifact_name: str) -> Json:
    return {"S3Bucket": ref("ArtifactBucket"), "S3Key": sub(f"${{ArtifactPrefix}}/{artifact_name}")}


def environment(stack: Stack) -> Json:
    """Every function's variables: the local ones (with Stage/Region) plus AWS-only names."""
    variables: Json = {
        key: sub(value) if "${" in value else value
        for key, value in function_environment("${Stage}", "${AWS::Region}").items()
    }
    variables.update(
        DOTMAC_TABLE_NAME=ref(resource_id(stack.table.name, TABLE)),
        DOTMAC_BUCKET_NAME=ref(resource_id(_primary_bucket(stack).name, BUCKET)),
        DOTMAC_KMS_KEY_ALIAS=ref(resource_id(stack.kms_key_alias, ALIAS)),
        DOTMAC_TRACING="true",
    )
    return variables


def function_resources(stack: Stack) -> Iterator[Resource]:
    """The shared layer and one traced function per `stack.functions` entry."""
    yield (
        LAYER_ID,
        {
            "Type": "AWS::Lambda::LayerVersion",
            "Properties": {
                "LayerName": physical_name("layer"),
                "Content": _artifact(LAYER_ZIP),
                "CompatibleRuntimes": [LAMBDA_RUNTIME],
                "CompatibleArchitectures": [LAMBDA_ARCHITECTURE],
            },
        },
    )
    variables = environment(stack)
    for function in stack.functions:
        yield (
            resource_id(function.name, FUNCTION),
            {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": physical_name(function.name),
                    "Runtime": LAMBDA_RUNTIME,
                    "Architectures": [LAMBDA_ARCHITECTURE],
                    "Handler": f"app.{function.handler}",
                    "Code": _artifact(app_zip_name(function.app)),
                    "Layers": [ref(LAYER_ID)],
                    "Role": get_att(EXECUTION_ROLE_ID, "Arn"),
                    "Timeout": function.timeout,
                    "MemorySize": function.memory,
                    "Environment": {"Variables": variables},
                    "TracingConfig": {"Mode": "Active"},
                },
            },
        )


def _invoke_permission(function_name: str, principal: str, source_arn: Json) -> Json:
    return {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": get_att(resource_id(function_name, FUNCTION), "Arn"),
            "Principal": principal,
            "SourceArn": source_arn,
        },
    }


def event_resources(stack: Stack) -> Iterator[Resource]:
    """Queue triggers as event source mappings; schedules as rules allowed to invoke."""
    for function in stack.functions:
        function_id = resource_id(function.name, FUNCTION)
        for trigger in function.queue_triggers:
            queue = _queue(stack, trigger.queue)
            if queue.visibility_timeout < function.timeout:
                # Lambda refuses such a mapping: a message could reappear mid-invocation.
                raise TemplateError(
                    f"queue {queue.name!r} hides messages for {queue.visibility_timeout} s, "
                    f"less than the {function.timeout} s timeout of {function.name!r}"
                )
            yield (
                logical_id(function.name, queue.name, "mapping"),
                {
                    "Type": "AWS::Lambda::EventSourceMapping",
                    "Properties": {
                        "EventSourceArn": get_att(resource_id(queue.name, QUEUE), "Arn"),
                        "FunctionName": ref(function_id),
                        "BatchSize": trigger.batch_size,
                        "MaximumBatchingWindowInSeconds": trigger.max_batching_window,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        "Enabled": True,
                    },
                },
            )
        if function.schedule:
            rule_id = logical_id(function.name, "schedule")
            yield (
                rule_id,
                {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "Name": physical_name(f"{function.name}-schedule"),
                        "ScheduleExpression": function.schedule,
                        "State": "ENABLED",
                        "Targets": [{"Id": function_id, "Arn": get_att(function_id, "Arn")}],
                    },
                },
            )
            yield (
                logical_id(function.name, "schedule", "permission"),
                _invoke_permission(function.name, "events.amazonaws.com", get_att(rule_id, "Arn")),
            )


def _state_machine_role(stack: Stack, machine: StateMachine) -> Json:
    statements = [
        _table_statement(stack, TABLE_ITEM_ACTIONS),
        _queue_statement(stack, ["sqs:SendMessage"]),
        _object_statement(stack),
        _statement(XRAY_ACTIONS, ["*"]),
    ]
    if machine.functions:
        statements.append(
            _statement(
                ["lambda:InvokeFunction"],
                [get_att(resource_id(f, FUNCTION), "Arn") for f in machine.functions],
            )
        )
    return _role(f"{machine.name}-states", {"Service": "states.amazonaws.com"}, statements)


def state_machine_resources(stack: Stack) -> Iterator[Resource]:
    """Each state machine from its ASL file, with function ARNs substituted, and its role."""
    for machine in stack.state_machines:
        machine_id = resource_id(machine.name, STATE_MACHINE)
        for function_name in machine.functions:
            _require_function(stack, function_name, f"state machine {machine.name!r}")
        yield f"{machine_id}Role", _state_machine_role(stack, machine)
        yield (
            machine_id,
            {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": physical_name(machine.name),
                    "DefinitionString": machine.definition_path.read_text(),
                    "DefinitionSubstitutions": {
                        function_arn_key(f): get_att(resource_id(f, FUNCTION), "Arn")
                        for f in machine.functions
                    },
                    "RoleArn": get_att(f"{machine_id}Role", "Arn"),
                    "TracingConfiguration": {"Enabled": True},
                },
            },
        )


# --- HTTP ------------------------------------------------------------------------------


def api_function_name(app: str) -> str:
    """The stack function that serves HTTP app `app`."""
    return f"{app}-api"


def _invocation_uri(function: Function) -> Json:
    return sub(
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
        f"${{{resource_id(function.name, FUNCTION)}.Arn}}/invocations"
    )


def _operation(route: Any, function: Function) -> Json:
    operation: Json = {
        "consumes": list(route.content_types),
        "produces": ["application/json"],
        "responses": {"200": {"description": "200 response"}},
        "x-amazon-apigateway-integration": {
            "type": "aws_proxy",
            "httpMethod": "POST",
            "uri": _invocation_uri(function),
            "passthroughBehavior": "when_no_match",
            "contentHandling": "CONVERT_TO_TEXT",
        },
    }
    if route.view_args:
        operation["parameters"] = [
            {"name": arg, "in": "path", "required": True, "type": "string"}
            for arg in route.view_args
        ]
    if route.authorizer is not None:
        operation["security"] = [{route.authorizer.name: []}]
    return operation


def _authorizer_definition(function: Function) -> Json:
    return {
        "type": "apiKey",
        "name": AUTHORIZER_HEADER,
        "in": "header",
        "x-amazon-apigateway-authtype": "custom",
        "x-amazon-apigateway-authorizer": {
            "type": "token",
            "authorizerUri": _invocation_uri(function),
            "authorizerResultTtlInSeconds": AUTHORIZER_TTL_SECONDS,
        },
    }


def _gateway_response(answer: GatewayResponse) -> Json:
    """API Gateway's own answer in the error envelope, with the request id."""
    envelope = {
        "error": {
            "code": answer.code,
            "message": answer.message,
            "details": [],
            "request_id": "$context.requestId",
        }
    }
    parameters = {"gatewayresponse.header.X-Request-Id": "context.requestId"}
    if answer.retry_after is not None:
        parameters["gatewayresponse.header.Retry-After"] = f"'{answer.retry_after}'"
    response: Json = {
        "responseParameters": parameters,
        "responseTemplates": {"application/json": json.dumps(envelope)},
    }
    if answer.status is not None:
        response["statusCode"] = str(answer.status)
    return response


def swagger(stack: Stack, apps: Mapping[str, Any]) -> Json:
    """The Swagger 2.0 body of the one REST API: every route of every app, proxied."""
    paths: dict[str, Json] = {}
    owners: dict[tuple[str, str], str] = {}
    authorizers: set[str] = set()
    binary_types: set[str] = set()
    for app in stack.http_apps:
        function = _require_function(stack, api_function_name(app), f"HTTP app {app!r}")
        binary_types.update(apps[app].api.binary_types)
        for path, methods in apps[app].routes.items():
            for method, route in methods.items():
                owner = owners.setdefault((path, method.upper()), app)
                if owner != app:
                    raise TemplateError(f"{method} {path} is declared by both {owner} and {app}")
                paths.setdefault(path, {})[method.lower()] = _operation(route, function)
                if route.authorizer is not None:
                    authorizers.add(route.authorizer.name)
    document: Json = {
        "swagger": "2.0",
        "info": {"title": "dotmac", "version": "1.0"},
        "schemes": ["https"],
        "paths": dict(sorted(paths.items())),
        "x-amazon-apigateway-binary-media-types": sorted(binary_types),
        "x-amazon-apigateway-gateway-responses": {
            kind: _gateway_response(answer) for kind, answer in GATEWAY_RESPONSES.items()
        },
    }
    if authorizers:
        function = _require_function(stack, AUTHORIZER_FUNCTION, "routes with an authorizer")
        document["securityDefinitions"] = {
            authorizer: _authorizer_definition(function) for authorizer in sorted(authorizers)
        }
    return document


def _execute_api_arn(path: str) -> Json:
    return _arn("execute-api", f"${{{API_ID}}}/{path}")


def api_resources(stack: Stack, apps: Mapping[str, Any]) -> Iterator[Resource]:
    """The REST API, its deployment and stage, and the permissions to invoke its functions."""
    body = swagger(stack, apps)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]
    # A new logical id whenever the routes change, or CloudFormation would not redeploy.
    deployment_id = f"ApiDeployment{digest}"
    yield (
        API_ID,
        {
            "Type": "AWS::ApiGateway::RestApi",
            "Properties": {
                "Name": physical_name("api"),
                "Body": body,
                "EndpointConfiguration": {"Types": ["REGIONAL"]},
                "FailOnWarnings": True,
            },
        },
    )
    yield (
        deployment_id,
        {
            "Type": "AWS::ApiGateway::Deployment",
            "Properties": {"RestApiId": ref(API_ID), "Description": f"routes {digest}"},
        },
    )
    yield (
        API_STAGE_ID,
        {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {
                "StageName": API_STAGE,
                "RestApiId": ref(API_ID),
                "DeploymentId": ref(deployment_id),
                "TracingEnabled": True,
            },
        },
    )
    for app in stack.http_apps:
        function_name = api_function_name(app)
        yield (
            logical_id(function_name, "permission"),
            _invoke_permission(function_name, "apigateway.amazonaws.com", _execute_api_arn("*")),
        )
    if "securityDefinitions" in body:
        yield (
            logical_id(AUTHORIZER_FUNCTION, "permission"),
            _invoke_permission(
                AUTHORIZER_FUNCTION, "apigateway.amazonaws.com", _execute_api_arn("authorizers/*")
            ),
        )


# --- the template ----------------------------------------------------------------------


def outputs(stack: Stack) -> Json:
    """Where to find the API, the table, the bucket, every queue and state machine."""
    values: Json = {
        "ApiUrl": sub(
            f"https://${{{API_ID}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}"
            f"/${{{API_STAGE_ID}}}"
        ),
        "TableName": ref(resource_id(stack.table.name, TABLE)),
        "BucketName": ref(resource_id(_primary_bucket(stack).name, BUCKET)),
        "TenantScopedRoleArn": get_att(TENANT_ROLE_ID, "Arn"),
    }
    for queue_name in _all_queue_names(stack):
        values[f"{resource_id(queue_name, QUEUE)}Url"] = ref(resource_id(queue_name, QUEUE))
    for machine in stack.state_machines:
        values[f"{resource_id(machine.name, STATE_MACHINE)}Arn"] = ref(
            resource_id(machine.name, STATE_MACHINE)
        )
    return {key: {"Value": value} for key, value in values.items()}


def _collect(sections: Iterable[Iterable[Resource]]) -> Json:
    resources: Json = {}
    for section in sections:
        for logical, resource in section:
            if logical in resources:
                raise TemplateError(f"two resources would have the logical id {logical}")
            resources[logical] = resource
    return resources


def render(stack: Stack = STACK, apps: Mapping[str, Any] | None = None) -> Json:
    """The CloudFormation template of `stack`; `apps` defaults to `functions/<app>/app.py`."""
    if apps is None:
        apps = {app: chalice_app(app) for app in stack.http_apps}
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "DotMac: multi-app SaaS platform (rendered by infra.cloudformation)",
        "Parameters": PARAMETERS,
        "Resources": _collect(
            [
                table_resources(stack),
                queue_resources(stack),
                bucket_resources(stack),
                key_resources(stack),
                execution_role(stack),
                tenant_role(stack),
                function_resources(stack),
                event_resources(stack),
                state_machine_resources(stack),
                api_resources(stack, apps),
            ]
        ),
        "Outputs": outputs(stack),
    }
