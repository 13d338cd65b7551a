"""The moto patch that runs Lambda invocations in-process: fails loudly if moto changes."""

from __future__ import annotations

import json
import time
import uuid

import moto
import pytest
from moto.awslambda.models import LambdaFunction

from devcloud import lambda_dispatch
from infra.naming import physical
from tests.integration.conftest import STAGE, MotoCloud


def test_pinned_moto_version_and_patched_method_exist() -> None:
    # If this fails, moto was upgraded: re-read LambdaFunction._invoke_lambda and update
    # devcloud.lambda_dispatch.SUPPORTED_MOTO once the patch is verified again.
    assert moto.__version__ == lambda_dispatch.SUPPORTED_MOTO
    original = getattr(LambdaFunction, lambda_dispatch.PATCHED_METHOD)
    assert callable(original)
    invoke_source = LambdaFunction.invoke.__code__.co_names
    assert lambda_dispatch.PATCHED_METHOD in invoke_source, "invoke no longer calls _invoke_lambda"


def test_install_refuses_an_unsupported_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "0.0.1")
    with pytest.raises(RuntimeError, match="supports moto"):
        lambda_dispatch.install()


def test_boto3_invoke_reaches_the_real_handler(moto_cloud: MotoCloud) -> None:
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    response = moto_cloud.client("lambda").invoke(
        FunctionName=physical(STAGE, "dlq-monitor"), Payload=json.dumps(event)
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {
        "dead_letters": {"notifications": 0, "billing-jobs": 0, "device-events": 0}
    }


def test_handler_errors_come_back_as_lambda_function_errors(moto_cloud: MotoCloud) -> None:
    response = moto_cloud.client("lambda").invoke(
        FunctionName=physical(STAGE, "notifications-worker"), Payload=b'{"Records": "nope"}'
    )
    assert response["FunctionError"] == "Handled"
    payload = json.loads(response["Payload"].read())
    assert payload["errorType"] and payload["errorMessage"]


def test_unregistered_function_fails_loudly(moto_cloud: MotoCloud) -> None:
    lam = moto_cloud.client("lambda")
    template = lam.get_function(FunctionName=physical(STAGE, "crm-api"))["Configuration"]
    lam.create_function(
        FunctionName="not-registered",
        Runtime="python3.12",
        Role=template["Role"],
        Handler="app.app",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},  # an empty zip archive
    )
    response = lam.invoke(FunctionName="not-registered", Payload=b"{}")
    assert response["FunctionError"] == "Handled"
    assert json.loads(response["Payload"].read())["errorType"] == "HandlerNotFound"


def test_step_functions_task_invokes_the_real_handler(moto_cloud: MotoCloud) -> None:
    """A state machine task calling a Lambda runs our handler and gets its result back."""
    arn = moto_cloud.created.functions["dlq-monitor"]
    definition = {
        "StartAt": "Monitor",
        "States": {"Monitor": {"Type": "Task", "Resource": arn, "End": True}},
    }
    sfn = moto_cloud.client("stepfunctions")
    role = moto_cloud.client("iam").get_role(RoleName=physical(STAGE, "states"))["Role"]["Arn"]
    machine = sfn.create_state_machine(
        name="dispatch-check", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=machine, name=f"run-{uuid.uuid4().hex[:8]}", input="{}"
    )["executionArn"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        time.sleep(0.1)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {
        "dead_letters": {"notifications": 0, "billing-jobs": 0, "device-events": 0}
    }
