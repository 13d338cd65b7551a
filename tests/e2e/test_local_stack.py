"""The running local platform, driven over HTTP and real AWS clients like a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e

APPS = ("identity", "management", "billing", "isp", "crm", "commerce", "projects")


def _wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_ready_lists_every_dependency_as_ok(local_stack: LocalStack) -> None:
    response = local_stack.request("GET", "/health/ready")
    body = response.json()
    assert response.status == 200
    assert set(body["checks"]) == {
        "table:dotmac-e2e-main",
        "bucket:dotmac-e2e-objects",
        "queue:dotmac-e2e-notifications",
        "queue:dotmac-e2e-billing-jobs",
        "queue:dotmac-e2e-device-events",
    }
    assert all(check["status"] == "ok" for check in body["checks"].values())
    for probe in ("live", "startup"):
        assert local_stack.request("GET", f"/health/{probe}").json() == {"status": "ok"}


@pytest.mark.parametrize("app", APPS)
def test_every_app_is_mounted_with_probes_and_openapi(local_stack: LocalStack, app: str) -> None:
    assert local_stack.request("GET", f"/api/v1/{app}/health/live").status == 200
    document = local_stack.request("GET", f"/api/v1/{app}/openapi.json")
    assert document.status == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.")
    assert f"/api/v1/{app}/health/ready" in spec["paths"]
    assert document.headers.get("X-Request-Id")


def test_unknown_routes_and_methods_get_the_error_envelope(local_stack: LocalStack) -> None:
    missing = local_stack.request("GET", "/api/v1/isp/no-such-thing")
    assert missing.status == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = local_stack.request("DELETE", "/health/live")
    assert wrong.status == 405
    error = wrong.json()["error"]
    assert error["code"] == "METHOD_NOT_ALLOWED" and error["request_id"]


def test_awscli_and_localstack_client_reach_the_emulator(local_stack: LocalStack) -> None:
    aws = Path(sys.executable).with_name("aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    listed = subprocess.run(
        [str(aws), "--endpoint-url", local_stack.endpoint, "dynamodb", "list-tables"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert "dotmac-e2e-main" in json.loads(listed.stdout)["TableNames"]

    import localstack_client.session

    port = local_stack.endpoint.rsplit(":", 1)[1]
    session = localstack_client.session.Session(localstack_host=f"127.0.0.1:{port}")
    queues = session.client("sqs").list_queues()["QueueUrls"]
    assert any(url.endswith("dotmac-e2e-notifications") for url in queues)
    assert any(url.endswith("dotmac-e2e-notifications-dlq") for url in queues)


def test_a_queued_notification_is_delivered_by_the_poller(local_stack: LocalStack) -> None:
    sqs, s3 = local_stack.boto3("sqs"), local_stack.boto3("s3")
    url = sqs.get_queue_url(QueueName="dotmac-e2e-notifications")["QueueUrl"]
    notification_id = uuid.uuid4().hex
    body = {
        "id": notification_id,
        "tenant_id": "abc-corp",
        "channel": "email",
        "recipient": "sarah@abc-corp.example",
        "template": "welcome",
        "data": {},
    }
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    key = f"tenants/abc-corp/outbox/{notification_id}.json"

    def delivered() -> bool:
        listed = s3.list_objects_v2(Bucket="dotmac-e2e-objects", Prefix=key)
        return listed.get("KeyCount", 0) == 1

    assert _wait_for(delivered), local_stack.log()[-2000:]


def test_a_poison_message_ends_in_the_dlq(local_stack: LocalStack) -> None:
    sqs = local_stack.boto3("sqs")
    url = sqs.get_queue_url(QueueName="dotmac-e2e-notifications")["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName="dotmac-e2e-notifications-dlq")["QueueUrl"]
    # Shorten the retry wait for this test; the redrive policy (3 receives) stays as deployed.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    # A receive already waiting (1 s long poll) keeps the visibility it started with.
    time.sleep(1.5)
    try:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": "x", "poison": True}))

        def dead_lettered() -> bool:
            got = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, VisibilityTimeout=0)
            return any("poison" in m["Body"] for m in got.get("Messages", []))

        assert _wait_for(dead_lettered, timeout=30), local_stack.log()[-2000:]
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "60"})


def test_step_functions_run_lambda_tasks_in_the_local_cloud(local_stack: LocalStack) -> None:
    sfn, lam, iam = (
        local_stack.boto3("stepfunctions"),
        local_stack.boto3("lambda"),
        local_stack.boto3("iam"),
    )
    arn = lam.get_function(FunctionName="dotmac-e2e-dlq-monitor")["Configuration"]["FunctionArn"]
    role = iam.get_role(RoleName="dotmac-e2e-states")["Role"]["Arn"]
    definition = {
        "StartAt": "Monitor",
        "States": {"Monitor": {"Type": "Task", "Resource": arn, "End": True}},
    }
    machine = sfn.create_state_machine(
        name=f"e2e-{uuid.uuid4().hex[:6]}", definition=json.dumps(definition), roleArn=role
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex)["executionArn"]

    def finished() -> bool:
        return sfn.describe_execution(executionArn=execution)["status"] != "RUNNING"

    assert _wait_for(finished)
    described = sfn.describe_execution(executionArn=execution)
    assert described["status"] == "SUCCEEDED", described
    assert "dead_letters" in json.loads(described["output"])


_TOKENS: dict[tuple[str, str], str] = {}


def _login(local_stack: LocalStack, email: str, password: str = "DotMac-demo-2026") -> str:
    """A demo user's access token, signed in once per stack (logins are rate-limited per IP:
    5 a minute)."""
    if (local_stack.api, email) not in _TOKENS:
        response = local_stack.request(
            "POST",
            "/api/v1/auth/login",
            {"tenant": "abc-corp", "email": email, "password": password},
        )
        assert response.status == 200, response.body
        _TOKENS[local_stack.api, email] = str(response.json()["data"]["attributes"]["access_token"])
    return _TOKENS[local_stack.api, email]


def test_seeded_users_sign_in_and_the_real_authorizer_guards_routes(
    local_stack: LocalStack,
) -> None:
    john = _login(local_stack, "john.smith@abc-corp.example")
    me = local_stack.request("GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {john}"})
    assert me.status == 200
    assert me.json()["data"]["attributes"]["apps"] == ["commerce", "crm", "isp"]
    users = local_stack.request("GET", "/api/v1/users", headers={"Authorization": f"Bearer {john}"})
    assert {u["attributes"]["email"] for u in users.json()["data"]} >= {
        "sarah@abc-corp.example",
        "tom@abc-corp.example",
    }
    tom = _login(local_stack, "tom@abc-corp.example")
    refused = local_stack.request(
        "GET", "/api/v1/users", headers={"Authorization": f"Bearer {tom}"}
    )
    assert refused.status == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    anonymous = local_stack.request("GET", "/api/v1/users")
    assert anonymous.status == 401
    forged = local_stack.request(
        "GET", "/api/v1/users", headers={"Authorization": f"Bearer {john[:-4]}AAAA"}
    )
    assert forged.status == 401
    jwks = local_stack.request("GET", "/.well-known/jwks.json").json()
    assert jwks["keys"] and all(k["alg"] == "ES256" and k["kid"] for k in jwks["keys"])


def test_the_isp_demo_serves_the_staff_tom_and_jane_their_views(
    local_stack: LocalStack,
) -> None:
    def get(token: str, path: str) -> tuple[int, Any]:
        answer = local_stack.request(
            "GET", f"/api/v1/isp{path}", headers={"Authorization": f"Bearer {token}"}
        )
        return answer.status, answer.json()

    staff = _login(local_stack, "john.smith@abc-corp.example")  # the tenant admin sees it all
    status, dashboard = get(staff, "/dashboard")
    figures = dashboard["data"]["attributes"]
    assert status == 200
    assert figures["customers"]["by_status"] == {"NEW": 1, "ACTIVE": 4, "BLOCKED": 0, "INACTIVE": 0}
    assert figures["mrr"] == [{"amount": "402.00", "currency": "USD", "active_services": 4}]
    assert figures["tickets"]["open"] == 1

    tom = _login(local_stack, "tom@abc-corp.example")
    status, orders = get(tom, "/work-orders")
    assert status == 200
    assert [o["attributes"]["status"] for o in orders["data"]] == ["ASSIGNED"]
    assert get(tom, "/customers")[0] == 403

    jane = _login(local_stack, "jane@abc-corp.example")
    status, services = get(jane, "/portal/services")
    assert status == 200 and len(services["data"]) == 1
    number = services["data"][0]["id"]
    status, commands = get(staff, f"/services/{number}/network-commands")
    assert status == 200 and commands["data"], commands
    (month,) = get(jane, f"/portal/services/{number}/usage")[1]["data"]
    assert month["attributes"]["records"] == 3
    (invoice,) = get(jane, "/portal/invoices")[1]["data"]
    assert invoice["attributes"]["lines"][0]["description"].startswith(f"Fibre 100 {number}")
    status, customers = get(staff, "/customers")
    others = [c["id"] for c in customers["data"] if c["attributes"]["name"] != "Jane Doe"]
    for other in others:
        status, found = get(staff, f"/services?customer={other}")
        for service in found["data"]:
            assert get(jane, f"/portal/services/{service['id']}")[0] == 404


def test_the_gateway_serves_requests_concurrently_each_as_its_own_caller(
    local_stack: LocalStack,
) -> None:
    """A request still sending its body holds one handler thread; meanwhile twelve requests
    of three users, made at once, are all answered, each as its own caller."""
    emails = ["john.smith@abc-corp.example", "tom@abc-corp.example", "jane@abc-corp.example"]
    tokens = {email: _login(local_stack, email) for email in emails}

    def me(email: str) -> tuple[int, str]:
        bearer = {"Authorization": f"Bearer {tokens[email]}"}
        answer = local_stack.request("GET", "/api/v1/auth/me", headers=bearer)
        return answer.status, answer.json()["data"]["attributes"]["user"]["email"]

    api = urlsplit(local_stack.api)
    with socket.create_connection((api.hostname, api.port), timeout=30) as slow:
        slow.sendall(
            b"POST /api/v1/isp/tickets HTTP/1.1\r\nHost: local\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{"
        )
        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(me, emails * 4))
        assert answers == [(200, email) for email in emails * 4]
        slow.sendall(b"}")  # the held request completes: no token, so the authorizer's 401
        assert slow.recv(64).startswith(b"HTTP/1.1 401")
