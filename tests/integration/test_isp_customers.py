"""ISP customers through the gateway: lifecycle with recorded transitions, PII sealed at rest,
the plan-limit counter moving with the item, bad input, tenant isolation, permissions and
DynamoDB calls per read."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    GLOBEX,
    GLOBEX_PASSWORD,
    GLOBEX_USER,
    JANE,
    JOHN,
    MIKE,
    SARAH,
    TOM,
    Answer,
    Platform,
)
from tests.integration.management_fixtures import *  # noqa: F403
from tests.integration.management_fixtures import scan_keys

BASE = "/api/v1/isp"
ADDRESS = {
    "line1": "1 Fibre Street",
    "city": "Lagos",
    "postal_code": "100001",
    "country": "NG",
}
CUSTOMER = {
    "name": "Ada Obi",
    "email": "ada.obi@example.net",
    "phone": "+234 801 234 5678",
    "address": ADDRESS,
    "billing_day": 15,
    "billing_mode": "prepaid",
}


class Isp:
    """One user's calls to the ISP app."""

    def __init__(self, platform: Platform, token: str) -> None:
        self.platform = platform
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        return self.platform.call(method, BASE + path, self.token, body=body, headers=headers)

    def created(self, path: str, body: Any) -> dict[str, Any]:
        answer = self.call("POST", path, body)
        assert answer.status == 201, answer.json
        assert answer.header("Location") == f"{BASE}{path}/{answer.json['data']['id']}"
        return {"id": answer.json["data"]["id"], **answer.attributes}

    def customer(self, **overrides: Any) -> str:
        return str(self.created("/customers", {**CUSTOMER, **overrides})["id"])

    def plan(self, name: str = "Fibre 100", price: str = "30.00", **extra: Any) -> str:
        body = {"name": name, "price": price, "download_mbps": 100, "upload_mbps": 20, **extra}
        return str(self.created("/service-plans", body)["id"])

    def get(self, path: str) -> dict[str, Any]:
        answer = self.call("GET", path)
        assert answer.status == 200, answer.json
        return answer.attributes

    def act(self, path: str, reason: str = "because") -> Answer:
        return self.call("POST", path, {"reason": reason})


def items(platform: Platform, marker: str = "ISP_", tenant: str = ABC) -> list[tuple[str, str]]:
    return sorted(k for k in scan_keys(platform, f"T#{tenant}#") if marker in k[0])


def used(platform: Platform, metric: str, tenant: str = ABC) -> int:
    """A usage counter, read straight from the table."""
    item = (
        platform.cloud.client("dynamodb")
        .get_item(
            TableName=platform.cloud.created.table,
            Key={"PK": {"S": f"T#{tenant}#USAGE"}, "SK": {"S": metric}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return int(item["count"]["N"]) if item and "count" in item else 0  # UsageItem.used


def raw_item(platform: Platform, pk: str, sk: str = "ROOT") -> dict[str, Any]:
    found = platform.cloud.client("dynamodb").get_item(
        TableName=platform.cloud.created.table, Key={"PK": {"S": pk}, "SK": {"S": sk}}
    )
    return dict(found["Item"])


class Caller(Protocol):
    """Anything that sends a request as one user (`Isp`, `management_fixtures.Operator`)."""

    def call(self, method: str, path: str, body: Any = None) -> Answer: ...


def counting(
    client: Caller, wanted: Callable[[str, str, str], bool]
) -> Callable[..., tuple[Answer, Counter[str]]]:
    """A caller that also counts the botocore calls `wanted(service, operation, params)`
    selects (DESIGN §10), leaving out the authorizer's caches and the API meters."""

    def call(method: str, path: str, body: Any = None) -> tuple[Answer, Counter[str]]:
        import botocore.client

        counted: Counter[str] = Counter()
        original = botocore.client.BaseClient._make_api_call

        def spy(self: Any, operation: str, params: Any) -> Any:
            service = self.meta.service_model.service_name
            if wanted(service, operation, json.dumps(params, default=str)):
                counted[f"{service}:{operation}"] += 1
            return original(self, operation, params)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
            answer = client.call(method, path, body)
        assert answer.status < 300, answer.json
        return answer, counted

    return call


def isp_data(service: str, operation: str, params: str) -> bool:
    """Calls on ISP items, the plan-limit counters, audit records written on their own, and
    KMS (the PII envelopes)."""
    if service == "kms" or '"isp.' in params:
        return True
    return (
        "ISP_" in params or "IPAM_" in params or ('#USAGE"' in params and "api_calls" not in params)
    )


@pytest.fixture
def john(platform: Platform) -> Isp:
    return Isp(platform, platform.token(JOHN))


# --- lifecycle -------------------------------------------------------------------------------


def test_customer_lifecycle_with_recorded_transitions(platform: Platform, john: Isp) -> None:
    before = used(platform, "customers")
    created = john.created("/customers", CUSTOMER)
    customer = created["id"]
    assert used(platform, "customers") == before + 1
    assert created["status"] == "NEW"
    assert (created["email"], created["phone"]) == (CUSTOMER["email"], CUSTOMER["phone"])
    assert created["address"] == {**ADDRESS, "line2": None, "region": None}
    assert (created["billing_day"], created["billing_mode"]) == (15, "prepaid")
    john_id = platform.user_id(JOHN)
    assert [(h["action"], h["from"], h["to"], h["by"]) for h in created["history"]] == [
        ("create", None, "NEW", john_id)
    ]
    # Defaults: billing day 1, postpaid.
    other = john.created("/customers", {"name": "Bo", "email": "bo@example.net"})
    assert (other["billing_day"], other["billing_mode"], other["phone"]) == (1, "postpaid", None)

    patched = john.call(
        "PATCH", f"/customers/{customer}", {"phone": "+234 700 000 0000", "billing_day": 28}
    )
    assert patched.status == 200, patched.json
    assert (patched.attributes["phone"], patched.attributes["billing_day"]) == (
        "+234 700 000 0000",
        28,
    )
    assert patched.attributes["email"] == CUSTOMER["email"]  # untouched
    cleared = john.call("PATCH", f"/customers/{customer}", {"address": None})
    assert cleared.attributes["address"] is None

    steps = [
        ("activate", "first payment received", "ACTIVE"),
        ("block", "invoice INV-2026-000001 overdue", "BLOCKED"),
        ("activate", "balance cleared", "ACTIVE"),
        ("deactivate", "moved away", "INACTIVE"),
    ]
    for action, reason, status in steps:
        answer = john.act(f"/customers/{customer}/{action}", reason)
        assert answer.status == 200, answer.json
        assert answer.attributes["status"] == status
    for action in ("block", "deactivate"):
        wrong = john.act(f"/customers/{customer}/{action}")
        assert (wrong.status, wrong.error_code) == (409, "INVALID_STATE"), action
    wrong = john.act(f"/customers/{other['id']}/block")  # NEW cannot be blocked
    assert (wrong.status, wrong.error_code) == (409, "INVALID_STATE")

    history = john.get(f"/customers/{customer}")["history"]
    assert [(h["action"], h["from"], h["to"], h["reason"]) for h in history] == [
        ("create", None, "NEW", "created"),
        ("activate", "NEW", "ACTIVE", "first payment received"),
        ("block", "ACTIVE", "BLOCKED", "invoice INV-2026-000001 overdue"),
        ("activate", "BLOCKED", "ACTIVE", "balance cleared"),
        ("deactivate", "ACTIVE", "INACTIVE", "moved away"),
    ]
    assert {h["by"] for h in history} == {john_id}
    assert all(h["at"] for h in history)
    actions = Counter(r["action"] for r in platform.audit_records() if r["resource_id"] == customer)
    assert actions == {
        "isp.customer.create": 1,
        "isp.customer.update": 2,
        "isp.customer.activate": 2,
        "isp.customer.block": 1,
        "isp.customer.deactivate": 1,
    }

    # Lists: all, by status (an index), paged; no PII in lists.
    listed = john.call("GET", "/customers").json["data"]
    assert [c["id"] for c in listed] == [customer, other["id"]]
    assert "email" not in listed[0]["attributes"]
    assert [c["id"] for c in john.call("GET", "/customers?status=INACTIVE").json["data"]] == [
        customer
    ]
    assert [c["id"] for c in john.call("GET", "/customers?status=NEW").json["data"]] == [
        other["id"]
    ]
    assert john.call("GET", "/customers?status=ACTIVE").json["data"] == []
    page = john.call("GET", "/customers?limit=1")
    assert len(page.json["data"]) == 1 and page.json["meta"]["next_cursor"]
    rest = john.call("GET", f"/customers?limit=1&cursor={page.json['meta']['next_cursor']}")
    assert [c["id"] for c in rest.json["data"]] == [other["id"]]


def test_pii_is_sealed_at_rest_for_the_tenant_only(platform: Platform, john: Isp) -> None:
    from dotmac.core import crypto

    customer = john.customer()
    stored = raw_item(platform, f"T#{ABC}#ISP_CUSTOMER#{customer}")
    text = json.dumps(stored)
    for secret in ("ada.obi", "example.net", "801 234", "Fibre Street", "100001"):
        assert secret not in text, secret
    assert "email" not in stored and "phone" not in stored and "address" not in stored
    assert stored["name"]["S"] == "Ada Obi"  # not PII here: lists show it
    assert crypto.decrypt(ABC, stored["email_enc"]["S"]) == CUSTOMER["email"]
    with pytest.raises(Exception):  # noqa: B017 - KMS refuses another tenant's context
        crypto.decrypt(GLOBEX, stored["email_enc"]["S"])
    # The transition items and the audit trail carry no PII either.
    everything = json.dumps([raw for raw in platform.audit_records()], default=str)
    assert "ada.obi" not in everything
    john.call("PATCH", f"/customers/{customer}", {"email": "new@example.org"})
    assert "new@example.org" not in json.dumps(
        raw_item(platform, f"T#{ABC}#ISP_CUSTOMER#{customer}")
    )
    assert john.get(f"/customers/{customer}")["email"] == "new@example.org"


def test_bad_input_is_a_400_and_writes_nothing(platform: Platform, john: Isp) -> None:
    customer = john.customer()
    before, counted = items(platform), used(platform, "customers")
    bad: list[dict[str, Any]] = [
        {**CUSTOMER, "email": "not-an-email"},
        {**CUSTOMER, "billing_day": 29},
        {**CUSTOMER, "billing_day": 0},
        {**CUSTOMER, "billing_day": "5"},
        {**CUSTOMER, "billing_mode": "monthly"},
        {**CUSTOMER, "phone": "call me"},
        {**CUSTOMER, "address": {**ADDRESS, "country": "Nigeria"}},
        {**CUSTOMER, "address": "1 Fibre Street"},
        {**CUSTOMER, "name": ""},
        {**CUSTOMER, "status": "ACTIVE"},  # states move only by transitions
        {"email": "x@example.net"},
    ]
    for body in bad:
        answer = john.call("POST", "/customers", body)
        assert (answer.status, answer.error_code) == (400, "VALIDATION_ERROR"), body
        assert answer.json["error"]["details"], body
    for patch in ({}, {"name": None}, {"email": None}, {"billing_day": 31}, {"status": "X"}):
        answer = john.call("PATCH", f"/customers/{customer}", patch)
        assert answer.status == 400, patch
    for action in ("activate", "block", "deactivate"):
        for body in ({}, {"reason": ""}, {"reason": "x" * 501}, {"reason": "ok", "x": 1}):
            answer = john.call("POST", f"/customers/{customer}/{action}", body)
            assert answer.status == 400, (action, body)
    assert john.call("GET", "/customers?status=GONE").status == 400
    assert john.call("GET", "/customers?limit=0").status == 400
    assert john.call("GET", "/customers?cursor=nope").status == 400
    for missing in ("/customers/0123456789abcdef", "/customers/nope"):
        assert john.call("GET", missing).status == 404
        assert john.act(f"{missing}/activate").status == 404
        assert john.call("PATCH", missing, {"name": "X"}).status == 404
    assert items(platform) == before
    assert used(platform, "customers") == counted
    assert john.get(f"/customers/{customer}")["status"] == "NEW"


def test_a_failed_create_counts_nothing(platform: Platform, john: Isp) -> None:
    """The counter and the customer commit in one transaction: when the customer cannot be
    written (here: its key is taken), the counter does not move either."""
    from dotmac.core import retry
    from dotmac.isp import customers

    first = john.customer()
    before, counted = items(platform), used(platform, "customers")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(customers, "_new_id", lambda: first)
        patch.setattr(retry, "until_won", lambda attempt: attempt())  # no retry
        answer = john.call("POST", "/customers", CUSTOMER)
    assert answer.status == 409, answer.json
    assert items(platform) == before
    assert used(platform, "customers") == counted


def test_the_customer_limit_has_a_grace_period_then_refuses(
    platform: Platform, globex: Platform
) -> None:
    """Starter plan: 100 customers. Over it, writes go on for 24 h, then 403."""
    import time

    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    theirs.customer()
    assert used(platform, "customers", GLOBEX) == 1
    client, table = platform.cloud.client("dynamodb"), platform.cloud.created.table
    key = {"PK": {"S": f"T#{GLOBEX}#USAGE"}, "SK": {"S": "customers"}}
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET #count = :n",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={":n": {"N": "100"}},
    )
    theirs.customer()  # the 101st: allowed, the grace period starts
    assert used(platform, "customers", GLOBEX) == 101
    started = int(client.get_item(TableName=table, Key=key)["Item"]["exceeded_at"]["N"])
    assert abs(started - time.time()) < 60
    client.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET exceeded_at = :t",
        ExpressionAttributeValues={":t": {"N": str(started - 25 * 3600)}},
    )
    before = items(platform, tenant=GLOBEX)
    refused = theirs.call("POST", "/customers", CUSTOMER)
    assert (refused.status, refused.error_code) == (403, "PLAN_LIMIT_EXCEEDED")
    assert used(platform, "customers", GLOBEX) == 101
    assert items(platform, tenant=GLOBEX) == before


# --- isolation, roles, calls -----------------------------------------------------------------


def test_tenants_and_roles_reach_only_their_own_customers(
    platform: Platform, globex: Platform, john: Isp
) -> None:
    customer = john.customer()
    before = items(platform)
    theirs = Isp(platform, platform.token(GLOBEX_USER, GLOBEX, password=GLOBEX_PASSWORD))
    for method, path, body in [
        ("GET", f"/customers/{customer}", None),
        ("PATCH", f"/customers/{customer}", {"name": "Mallory"}),
        ("POST", f"/customers/{customer}/activate", {"reason": "x"}),
        ("POST", f"/customers/{customer}/block", {"reason": "x"}),
        ("POST", f"/customers/{customer}/deactivate", {"reason": "x"}),
    ]:
        answer = theirs.call(method, path, body)
        assert (answer.status, answer.error_code) == (404, "NOT_FOUND"), (method, path)
    assert theirs.call("GET", "/customers").json["data"] == []
    assert items(platform) == before
    mine = theirs.customer(email="wile@globex.example")
    assert [c["id"] for c in theirs.call("GET", "/customers").json["data"]] == [mine]
    assert [c["id"] for c in john.call("GET", "/customers").json["data"]] == [customer]

    for user in (TOM, JANE, MIKE):  # technician, portal customer, CRM rep
        client = Isp(platform, platform.token(user))
        for method, path, body in [
            ("GET", "/customers", None),
            ("GET", f"/customers/{customer}", None),
            ("POST", "/customers", CUSTOMER),
            ("POST", f"/customers/{customer}/activate", {"reason": "x"}),
        ]:
            answer = client.call(method, path, body)
            assert (answer.status, answer.error_code) == (403, "FORBIDDEN"), (user, path)
    sarah = Isp(platform, platform.token(SARAH))  # isp_manager: isp:*:*
    assert sarah.get(f"/customers/{customer}")["email"] == CUSTOMER["email"]
    assert sarah.act(f"/customers/{customer}/activate").status == 200


def test_reads_make_one_dynamodb_call(platform: Platform, john: Isp) -> None:
    """DESIGN §10: a get (with its history) or a list page is one DynamoDB call; the get
    also opens the PII envelopes (one KMS Decrypt per field present)."""
    customer = john.customer()
    for _ in range(3):  # warm the caches a cold container fills on its first requests
        john.get(f"/customers/{customer}")
    call = counting(john, isp_data)
    _, got = call("GET", f"/customers/{customer}")
    assert got == {"dynamodb:Query": 1, "kms:Decrypt": 3}
    for path in ("/customers", "/customers?status=NEW", "/customers?limit=1"):
        assert call("GET", path)[1] == {"dynamodb:Query": 1}, path
    _, created = call("POST", "/customers", CUSTOMER)
    assert created == {
        "kms:GenerateDataKey": 3,
        "dynamodb:GetItem": 1,  # the plan-limit counter
        "dynamodb:TransactWriteItems": 1,
    }
    _, moved = call("POST", f"/customers/{customer}/activate", {"reason": "paid"})
    assert moved == {
        "dynamodb:GetItem": 1,
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:Query": 1,
        "kms:Decrypt": 3,
    }
