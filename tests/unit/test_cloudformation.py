"""The CloudFormation template rendered from `infra.resources`, and the artifacts it needs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from chalice import Chalice

from devcloud.registry import chalice_app
from infra.__main__ import main
from infra.bootstrap import function_environment
from infra.cloudformation import (
    LEADING_KEYS,
    TemplateError,
    get_att,
    ref,
    render,
    resource_id,
    sub,
    swagger,
)
from infra.naming import function_arn_key
from infra.package import LAYER_ZIP, app_dirs, build, locked_versions, runtime_dependencies
from infra.resources import GATEWAY_RESPONSES, STACK, Function, QueueTrigger, Stack
from tests.fakes import extended_stack

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def _resources(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical: resource["Properties"]
        for logical, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def _fake_app(name: str, *, with_authorizer: bool = False) -> Chalice:
    """A Chalice app with one path-parameter route (optionally behind an authorizer)."""
    app = Chalice(app_name=f"fake-{name}")

    @app.authorizer()
    def jwt(auth_request: Any) -> Any:
        raise NotImplementedError

    @app.route(
        "/api/v1/things/{thing_id}",
        methods=["GET", "PUT"],
        authorizer=jwt if with_authorizer else None,
    )
    def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @app.route("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _http_stack(*apps: str, authorizer: bool = False) -> Stack:
    functions = tuple(Function(name=f"{app}-api", app=app, handler="app") for app in apps)
    if authorizer:
        functions += (Function(name="authorizer", app="identity", handler="authorize"),)
    return replace(STACK, http_apps=apps, functions=functions, state_machines=())


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return render(STACK)


@pytest.fixture
def big_stack(tmp_path: Path) -> Stack:
    return extended_stack(tmp_path)


def test_parameters_name_the_stage_and_the_artifacts(template: dict[str, Any]) -> None:
    assert template["Parameters"]["Stage"]["Default"] == "prod"
    assert template["Parameters"]["Stage"]["AllowedPattern"] == "^[a-z0-9-]{1,20}$"
    assert {"ArtifactBucket", "ArtifactPrefix"} <= set(template["Parameters"])


def test_tenant_scoped_role_confines_the_table_to_the_callers_tenant(
    template: dict[str, Any],
) -> None:
    role = template["Resources"]["TenantScopedRole"]["Properties"]
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert LEADING_KEYS == "T#${aws:PrincipalTag/tenant_id}#*"
    assert statement["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["T#${aws:PrincipalTag/tenant_id}#*"]}
    }
    assert statement["Resource"] == [get_att("MainTable", "Arn"), sub("${MainTable.Arn}/index/*")]
    assert all(action.startswith("dynamodb:") for action in statement["Action"])
    assert "dynamodb:Scan" not in statement["Action"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": get_att("ExecutionRole", "Arn")}
    assert set(trust["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert trust["Condition"] == {"StringLike": {"aws:RequestTag/tenant_id": "?*"}}


def test_functions_may_assume_the_tenant_scoped_role(template: dict[str, Any]) -> None:
    statements = template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    (assume,) = [s for s in statements if "sts:AssumeRole" in s["Action"]]
    assert set(assume["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    assert assume["Resource"] == [
        sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/dotmac-${Stage}-tenant-scoped")
    ]
    tenant_role = template["Resources"]["TenantScopedRole"]["Properties"]
    assert tenant_role["RoleName"] == sub("dotmac-${Stage}-tenant-scoped")


def test_every_queue_has_a_dead_letter_queue_with_a_redrive_policy(big_stack: Stack) -> None:
    queues = _resources(render(big_stack), "AWS::SQS::Queue")
    assert len(queues) == 2 * len(big_stack.queues)
    for queue in big_stack.queues:
        dlq_id = resource_id(queue.dlq_name, "queue")
        properties = queues[resource_id(queue.name, "queue")]
        assert properties["QueueName"] == sub(f"dotmac-${{Stage}}-{queue.name}")
        assert properties["VisibilityTimeout"] == queue.visibility_timeout
        assert properties["RedrivePolicy"] == {
            "deadLetterTargetArn": get_att(dlq_id, "Arn"),
            "maxReceiveCount": queue.max_receive_count,
        }
        assert queues[dlq_id]["QueueName"] == sub(f"dotmac-${{Stage}}-{queue.dlq_name}")
        assert queues[dlq_id]["MessageRetentionPeriod"] == queue.dlq_retention_seconds


def test_table_keys_indexes_ttl_and_recovery(template: dict[str, Any]) -> None:
    resource = template["Resources"]["MainTable"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    table = resource["Properties"]
    assert table["TableName"] == sub("dotmac-${Stage}-main")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {
        name: "S" for name in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
    }
    assert table["GlobalSecondaryIndexes"] == [
        {
            "IndexName": index.name,
            "KeySchema": [
                {"AttributeName": index.pk, "KeyType": "HASH"},
                {"AttributeName": index.sk, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
        for index in STACK.table.indexes
    ]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_buckets_are_versioned_encrypted_private_and_retained(template: dict[str, Any]) -> None:
    (bucket_id,) = _resources(template, "AWS::S3::Bucket")
    resource = template["Resources"][bucket_id]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    bucket = resource["Properties"]
    assert bucket["BucketName"] == sub("dotmac-${Stage}-objects-${AWS::AccountId}")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4


def test_kms_key_rotates_and_has_the_stage_alias(template: dict[str, Any]) -> None:
    (key,) = _resources(template, "AWS::KMS::Key").values()
    (alias,) = _resources(template, "AWS::KMS::Alias").values()
    assert key["EnableKeyRotation"] is True
    assert alias["AliasName"] == sub("alias/dotmac-${Stage}-pii")


def test_each_function_runs_its_app_with_the_layer_and_the_environment(
    template: dict[str, Any],
) -> None:
    functions = _resources(template, "AWS::Lambda::Function")
    assert len(functions) == len(STACK.functions)
    for function in STACK.functions:
        properties = functions[resource_id(function.name, "function")]
        assert properties["FunctionName"] == sub(f"dotmac-${{Stage}}-{function.name}")
        assert properties["Runtime"] == "python3.12"
        assert properties["Handler"] == f"app.{function.handler}"
        assert properties["Code"]["S3Key"] == sub(f"${{ArtifactPrefix}}/{function.app}.zip")
        assert (properties["Timeout"], properties["MemorySize"]) == (
            function.timeout,
            function.memory,
        )
        assert properties["Layers"] == [ref("Layer")]
        assert properties["TracingConfig"] == {"Mode": "Active"}
        variables = properties["Environment"]["Variables"]
        assert set(function_environment("x", "y")) < set(variables)
        assert variables["DOTMAC_STAGE"] == sub("${Stage}")
        assert variables["DOTMAC_TABLE_NAME"] == ref("MainTable")
        assert variables["DOTMAC_BUCKET_NAME"] == ref("ObjectsBucket")
        assert variables["DOTMAC_KMS_KEY_ALIAS"] == ref("PiiAlias")
        assert variables["DOTMAC_TRACING"] == "true"
    (layer,) = _resources(template, "AWS::Lambda::LayerVersion").values()
    assert layer["Content"]["S3Key"] == sub(f"${{ArtifactPrefix}}/{LAYER_ZIP}")


def test_the_gateways_own_answers_are_the_error_envelope(template: dict[str, Any]) -> None:
    """401/403/404/413/429/5xx that API Gateway answers itself look like the apps' errors;
    an authorizer that raised (its table down) is a 503 to retry, not a 500."""
    body = template["Resources"]["Api"]["Properties"]["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert set(responses) >= {"UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN"}
    for kind, response in responses.items():
        envelope = json.loads(response["responseTemplates"]["application/json"])
        assert envelope["error"]["request_id"] == "$context.requestId", kind
        assert envelope["error"]["code"] == GATEWAY_RESPONSES[kind].code
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.X-Request-Id"] == "context.requestId"
    for kind in ("AUTHORIZER_FAILURE", "AUTHORIZER_CONFIGURATION_ERROR"):
        assert responses[kind]["statusCode"] == "503", kind
        assert responses[kind]["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
    assert "statusCode" not in responses["DEFAULT_4XX"]  # keeps API Gateway's own 4xx


def test_swagger_covers_every_route_of_every_app_exactly_once(template: dict[str, Any]) -> None:
    body = template["Resources"]["Api"]["Properties"]["Body"]
    expected = {
        (path, method.lower()): resource_id(f"{app}-api", "function")
        for app in STACK.http_apps
        for path, methods in chalice_app(app).routes.items()
        for method in methods
    }
    found = {
        (path, method): operation["x-amazon-apigateway-integration"]
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
    }
    assert set(found) == set(expected)
    assert sum(len(operations) for operations in body["paths"].values()) == len(expected)
    for key, integration in found.items():
        assert integration["type"] == "aws_proxy"
        assert integration["httpMethod"] == "POST"
        assert integration["uri"] == sub(
            "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            f"${{{expected[key]}.Arn}}/invocations"
        )
    # Every protected route goes through the one token authorizer Lambda.
    (definition,) = body["securityDefinitions"].values()
    assert definition["x-amazon-apigateway-authtype"] == "custom"
    assert "${AuthorizerFunction.Arn}" in str(definition)
    protected = {
        (path, method)
        for path, methods in (
            (p, chalice_app(a).routes[p]) for a in STACK.http_apps for p in chalice_app(a).routes
        )
        for method, entry in methods.items()
        if entry.authorizer is not None
    }
    secured = {
        (path, method.upper())
        for path, operations in body["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    }
    assert protected and secured == protected


def test_api_is_deployed_to_the_api_stage_and_may_invoke_each_app(
    template: dict[str, Any],
) -> None:
    (stage,) = _resources(template, "AWS::ApiGateway::Stage").values()
    (deployment_id,) = _resources(template, "AWS::ApiGateway::Deployment")
    assert stage["StageName"] == "api"
    assert stage["DeploymentId"] == ref(deployment_id)
    permissions = [
        p
        for p in _resources(template, "AWS::Lambda::Permission").values()
        if p["Principal"] == "apigateway.amazonaws.com"
    ]
    assert sorted(p["FunctionName"]["Fn::GetAtt"][0] for p in permissions) == sorted(
        [resource_id("authorizer", "function")]
        + [resource_id(f"{app}-api", "function") for app in STACK.http_apps]
    )
    assert template["Outputs"]["ApiUrl"]["Value"] == sub(
        "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${ApiStage}"
    )


def test_path_parameters_are_declared() -> None:
    body = swagger(_http_stack("one"), {"one": _fake_app("one")})
    operation = body["paths"]["/api/v1/things/{thing_id}"]["get"]
    assert operation["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True, "type": "string"}
    ]


def _app_with(name: str, path: str, methods: list[str]) -> Chalice:
    app = Chalice(app_name=f"fake-{name}")
    app.route(path, methods=methods, name=f"{name}_view")(lambda: {})
    return app


def test_two_apps_may_share_a_path_with_different_methods() -> None:
    apps = {
        "one": _app_with("one", "/shared", ["GET"]),
        "two": _app_with("two", "/shared", ["POST"]),
    }
    body = swagger(_http_stack("one", "two"), apps)
    uris = {
        m: op["x-amazon-apigateway-integration"]["uri"]
        for m, op in body["paths"]["/shared"].items()
    }
    assert "${OneApiFunction.Arn}" in uris["get"]["Fn::Sub"]
    assert "${TwoApiFunction.Arn}" in uris["post"]["Fn::Sub"]


def test_the_same_route_in_two_apps_is_refused() -> None:
    apps = {
        "one": _app_with("one", "/shared", ["GET"]),
        "two": _app_with("two", "/shared", ["POST", "GET"]),
    }
    with pytest.raises(TemplateError, match=r"GET /shared is declared by both one and two"):
        render(_http_stack("one", "two"), apps)


def test_an_http_app_without_its_function_is_refused() -> None:
    stack = replace(_http_stack("one"), http_apps=("one", "two"))
    with pytest.raises(TemplateError, match=r"needs a function named 'two-api'"):
        swagger(stack, {"one": _fake_app("one"), "two": _fake_app("two")})


def test_routes_with_an_authorizer_use_the_authorizer_function() -> None:
    stack = _http_stack("one", authorizer=True)
    template = render(stack, {"one": _fake_app("one", with_authorizer=True)})
    body = template["Resources"]["Api"]["Properties"]["Body"]
    for method in ("get", "put"):
        assert body["paths"]["/api/v1/things/{thing_id}"][method]["security"] == [{"jwt": []}]
    assert "security" not in body["paths"]["/api/v1/health"]["get"]
    (definition,) = body["securityDefinitions"].items()
    assert definition[0] == "jwt"
    assert definition[1]["x-amazon-apigateway-authtype"] == "custom"
    authorizer = definition[1]["x-amazon-apigateway-authorizer"]
    assert authorizer["type"] == "token"
    assert "${AuthorizerFunction.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]
    (permission,) = [
        p
        for p in _resources(template, "AWS::Lambda::Permission").values()
        if p["FunctionName"] == get_att("AuthorizerFunction", "Arn")
    ]
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${Api}/authorizers/*")


def test_an_authorizer_route_without_an_authorizer_function_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"needs a function named 'authorizer'"):
        render(_http_stack("one"), {"one": _fake_app("one", with_authorizer=True)})


def test_queue_triggers_are_event_source_mappings_with_partial_batch_responses(
    big_stack: Stack,
) -> None:
    mappings = _resources(render(big_stack), "AWS::Lambda::EventSourceMapping").values()
    triggers = [(f, t) for f in big_stack.functions for t in f.queue_triggers]
    assert len(mappings) == len(triggers) >= 2
    for function, trigger in triggers:
        (mapping,) = [
            m for m in mappings if m["FunctionName"] == ref(resource_id(function.name, "function"))
        ]
        assert mapping["EventSourceArn"] == get_att(resource_id(trigger.queue, "queue"), "Arn")
        assert mapping["BatchSize"] == trigger.batch_size
        assert mapping["MaximumBatchingWindowInSeconds"] == trigger.max_batching_window
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_a_queue_hiding_messages_for_less_than_its_consumer_runs_is_refused() -> None:
    functions = tuple(
        replace(f, timeout=61) if f.name == "notifications-worker" else f for f in STACK.functions
    )
    stack = replace(STACK, functions=functions)
    with pytest.raises(TemplateError, match=r"'notifications' hides messages for 60 s"):
        render(stack)


def test_a_trigger_on_an_unknown_queue_is_refused() -> None:
    worker = STACK.function("notifications-worker")
    orphan = replace(worker, queue_triggers=(QueueTrigger("nowhere"),))
    with pytest.raises(TemplateError, match=r"no queue named 'nowhere'"):
        render(replace(STACK, functions=(*STACK.functions, replace(orphan, name="orphan"))))


def test_scheduled_functions_have_a_rule_allowed_to_invoke_them(template: dict[str, Any]) -> None:
    rules = _resources(template, "AWS::Events::Rule")
    scheduled = [f for f in STACK.functions if f.schedule]
    assert len(rules) == len(scheduled) >= 1
    permissions = _resources(template, "AWS::Lambda::Permission").values()
    for function in scheduled:
        function_id = resource_id(function.name, "function")
        (rule_id,) = [
            r for r, p in rules.items() if p["Targets"][0]["Arn"]["Fn::GetAtt"][0] == function_id
        ]
        assert rules[rule_id]["ScheduleExpression"] == function.schedule
        assert any(
            p["Principal"] == "events.amazonaws.com" and p["SourceArn"] == get_att(rule_id, "Arn")
            for p in permissions
        )


def test_state_machines_substitute_function_arns_and_may_invoke_them(big_stack: Stack) -> None:
    template = render(big_stack)
    (machine,) = big_stack.state_machines
    properties = template["Resources"][resource_id(machine.name, "state-machine")]["Properties"]
    assert properties["StateMachineName"] == sub("dotmac-${Stage}-provisioning")
    assert properties["DefinitionString"] == machine.definition_path.read_text()
    worker_arn = get_att("NotificationsWorkerFunction", "Arn")
    assert properties["DefinitionSubstitutions"] == {
        function_arn_key("notifications-worker"): worker_arn
    }
    role_id = properties["RoleArn"]["Fn::GetAtt"][0]
    statements = template["Resources"][role_id]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    (invoke,) = [s for s in statements if s["Action"] == ["lambda:InvokeFunction"]]
    assert invoke["Resource"] == [worker_arn]
    assert template["Outputs"]["ProvisioningStateMachineArn"]["Value"] == ref(
        "ProvisioningStateMachine"
    )
    execution = template["Resources"]["ExecutionRole"]["Properties"]["Policies"][0]
    assert any(
        s["Action"] == ["states:StartExecution"] for s in execution["PolicyDocument"]["Statement"]
    )


def test_outputs_name_the_table_bucket_and_every_queue(big_stack: Stack) -> None:
    outputs = render(big_stack)["Outputs"]
    assert outputs["TableName"]["Value"] == ref("MainTable")
    assert outputs["BucketName"]["Value"] == ref("ObjectsBucket")
    for queue in big_stack.queues:
        for name in (queue.name, queue.dlq_name):
            queue_id = resource_id(name, "queue")
            assert outputs[f"{queue_id}Url"]["Value"] == ref(queue_id)


def test_templates_pass_cfn_lint(tmp_path: Path, big_stack: Stack) -> None:
    real = tmp_path / "real.json"
    assert main(["render", "-o", str(real)]) == 0
    assert json.loads(real.read_text()) == json.loads(json.dumps(render(STACK)))
    everything = tmp_path / "everything.json"
    stack = replace(
        big_stack,
        functions=(
            *big_stack.functions,
            Function(name="fake-api", app="fake", handler="app"),
        ),
        http_apps=(*big_stack.http_apps, "fake"),
    )
    apps = {app: chalice_app(app) for app in STACK.http_apps}
    apps["fake"] = _fake_app("fake", with_authorizer=True)
    everything.write_text(json.dumps(render(stack, apps)))
    result = subprocess.run(
        [str(CFN_LINT), "--", str(real), str(everything)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as zipped:
        return zipped.namelist()


def test_package_without_dependencies_builds_the_layer_and_every_app(tmp_path: Path) -> None:
    built = build(tmp_path / "first", install_deps=False)
    assert [p.name for p in built] == [LAYER_ZIP] + [f"{d.name}.zip" for d in app_dirs()]
    layer = _names(built[0])
    assert layer == sorted(layer)
    assert {"python/dotmac/__init__.py", "python/dotmac/core/api.py"} <= set(layer)
    assert all(n.startswith("python/dotmac/") for n in layer)
    assert not [n for n in layer if "__pycache__" in n or n.endswith(".pyc")]
    for archive in built[1:]:
        assert "app.py" in _names(archive)
        assert all(n == "app.py" or n.startswith("chalicelib/") for n in _names(archive))
    with zipfile.ZipFile(built[0]) as zipped:
        assert {info.date_time for info in zipped.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert main(["package", str(tmp_path / "second"), "--no-deps"]) == 0
    for archive in built:
        assert (tmp_path / "second" / archive.name).read_bytes() == archive.read_bytes()


def test_dependencies_come_from_pyproject_pinned_by_the_lock(tmp_path: Path) -> None:
    pins = {pin.lower() for pin in locked_versions()}
    without_extras = {re.sub(r"\[.*?\]", "", d).lower() for d in runtime_dependencies()}
    assert without_extras <= pins
    lockfile = tmp_path / "uv.lock"
    lockfile.write_text(
        "\n".join(
            f'[[package]]\nname = "{name}"\nversion = "{version}"\nsource = {source}\n'
            for name, version, source in [
                ("a", "1.0", '{ registry = "https://pypi.org/simple" }'),
                ("forked", "1.0", '{ registry = "https://pypi.org/simple" }'),
                ("forked", "2.0", '{ registry = "https://pypi.org/simple" }'),
                ("project", "0.1.0", '{ editable = "." }'),
            ]
        )
    )
    assert locked_versions(lockfile) == ["a==1.0"]
