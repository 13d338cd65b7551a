"""The HTTP app factory, driven in-process with `chalice.test.Client` (no sockets, no AWS)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from chalice.test import Client
from pydantic import BaseModel
from pynamodb.exceptions import GetError, PutError, QueryError

from dotmac.core import audit, health
from dotmac.core.api import IDEMPOTENCY_KEY, Api, Call, ConcurrentChalice, Reply
from dotmac.core.errors import (
    AuthenticationError,
    ConflictError,
    DependencyUnavailableError,
    DotmacError,
    FieldError,
    ForbiddenError,
    MethodNotAllowedError,
    NotFoundError,
    RateLimitedError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from dotmac.core.health import Check
from dotmac.core.pagination import PageRequest, encode_cursor
from tests.fakes import token_authorizer

BASE = "/api/v1/isp"
REFS = "#/components/schemas/"
JSON_HEADERS = {"Content-Type": "application/json"}

# Authorization header value -> the claims the (fake) authorizer puts in the context.
TOKENS: dict[str, dict[str, str]] = {
    "reader": {
        "tid": "acme",
        "sub": "u1",
        "roles": "r",
        "perms": "isp:customers:read",
        "apps": "isp",
    },
    "wild": {"tid": "acme", "sub": "u2", "roles": "admin", "perms": "isp:*:*", "apps": "isp,crm"},
    "crm-only": {"tid": "acme", "sub": "u3", "roles": "r", "perms": "crm:*:*", "apps": "isp"},
    "unsubscribed": {
        "tid": "acme",
        "sub": "u4",
        "roles": "r",
        "perms": "isp:customers:read",
        "apps": "crm",
    },
    "operator": {"tid": "platform", "sub": "op", "roles": "op", "perms": "*:*:*", "apps": ""},
    "operator-no-perms": {"tid": "platform", "sub": "op", "roles": "", "perms": "", "apps": ""},
    "no-tenant": {"sub": "u5", "perms": "isp:customers:read", "apps": "isp"},
}


AUTHORIZER = token_authorizer(TOKENS)


class CountingLimiter:
    """Stands in for the DynamoDB rate limiter: records what each request counted."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def count(self, ctx: Any, tenant_limit: str | None, mutation: bool) -> None:
        self.calls.append((ctx.tenant_id, ctx.user_id, tenant_limit))


LIMITS = CountingLimiter()


class Address(BaseModel):
    street: str
    zip: str


class Line(BaseModel):
    sku: str
    qty: int


class NewCustomer(BaseModel):
    name: str
    address: Address
    lines: list[Line] = []


ERRORS: dict[str, DotmacError] = {
    "validation": ValidationError(
        "bad input",
        details=[FieldError("name", "too short"), FieldError("address.zip", "not a zip")],
    ),
    "unauthenticated": AuthenticationError("who are you"),
    "forbidden": ForbiddenError("nope"),
    "plan": ForbiddenError("plan limit", code="PLAN_LIMIT_EXCEEDED"),
    "not-found": NotFoundError("no such customer"),
    "method": MethodNotAllowedError("no"),
    "conflict": ConflictError("duplicate email"),
    "media": UnsupportedMediaTypeError("xml?"),
    "unprocessable": UnprocessableError("cannot do that now"),
    "rate": RateLimitedError("slow down", retry_after=30),
    "rate-zero": RateLimitedError("slow down", retry_after=0),
    "unavailable": DependencyUnavailableError("table down"),
}

EXPECTED_STATUS = {
    "validation": (400, "VALIDATION_ERROR"),
    "unauthenticated": (401, "UNAUTHENTICATED"),
    "forbidden": (403, "FORBIDDEN"),
    "plan": (403, "PLAN_LIMIT_EXCEEDED"),
    "not-found": (404, "NOT_FOUND"),
    "method": (405, "METHOD_NOT_ALLOWED"),
    "conflict": (409, "CONFLICT"),
    "media": (415, "UNSUPPORTED_MEDIA_TYPE"),
    "unprocessable": (422, "UNPROCESSABLE"),
    "rate": (429, "RATE_LIMITED"),
    "rate-zero": (429, "RATE_LIMITED"),
    "unavailable": (503, "SERVICE_UNAVAILABLE"),
}

UNEXPECTED: dict[str, Exception] = {
    "runtime": RuntimeError("db password is hunter2"),
    "key": KeyError("hunter2"),
    "client-error": ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "hunter2"}}, "PutItem"
    ),
    "pynamodb-error": PutError(
        "hunter2",
        ClientError(
            {"Error": {"Code": "ConditionalCheckFailedException", "Message": "hunter2"}}, "PutItem"
        ),
    ),
}

UNAVAILABLE: dict[str, Exception] = {
    "endpoint": EndpointConnectionError(endpoint_url="http://dynamodb.invalid"),
    "timeout": ReadTimeoutError(endpoint_url="http://dynamodb.invalid"),
    "throttled": ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "Query"
    ),
    "throttling": ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Query"),
    # PynamoDB wraps botocore's errors; the cause decides.
    "pynamodb-endpoint": GetError(
        "x", EndpointConnectionError(endpoint_url="http://dynamodb.invalid")
    ),
    "pynamodb-throttled": QueryError(
        "x", ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Query")
    ),
}


def build_api() -> Api:
    api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)

    @api.route("/customers/{customer_id}", permission="isp:customers:read", summary="Get one")
    def get_customer(call: Call, customer_id: str) -> dict[str, Any]:
        ctx = call.ctx
        return {
            "id": customer_id,
            "tenant": ctx.tenant_id,
            "user": ctx.user_id,
            "roles": sorted(ctx.roles),
            "perms": sorted(ctx.permissions),
            "apps": sorted(ctx.apps),
            "request_id": call.request_id,
            "ctx_request_id": ctx.request_id,
            "query": call.query,
        }

    @api.route("/customers", permission="isp:customers:read")
    def list_customers(call: Call) -> dict[str, Any]:
        page = PageRequest.from_query(call.query)
        start = page.start_key(call.ctx.key("CUSTOMERS"))
        return {"limit": page.limit, "start": start}

    @api.route("/customers", methods=["POST"], permission="isp:customers:write")
    def create_customer(call: Call) -> Reply:
        body = call.body(NewCustomer)
        if call.query.get("audit") != "skip":
            audit.mark_recorded()
        return Reply(body.model_dump(), status=201, headers={"Location": f"{BASE}/customers/c1"})

    @api.route("/echo", methods=["POST"], public=True, changes_state=False)
    def echo(call: Call) -> dict[str, Any]:
        return call.body(NewCustomer).model_dump()

    @api.route("/fail/{kind}", public=True)
    def fail(call: Call, kind: str) -> dict[str, Any]:
        raise {**ERRORS, **UNEXPECTED, **UNAVAILABLE}[kind]

    @api.route("/whoami", public=True)
    def whoami(call: Call) -> dict[str, Any]:
        return {"tenant": call.ctx.tenant_id}

    @api.route("/platform/tenants", permission="platform:tenants:manage")
    def list_tenants(call: Call) -> dict[str, Any]:
        return {"tenant": call.ctx.tenant_id}

    return api


@pytest.fixture(scope="module")
def api() -> Api:
    return build_api()


@pytest.fixture
def client(api: Api) -> Iterator[Any]:
    with Client(api.app) as test_client:
        yield test_client.http


def body_of(response: Any) -> Any:
    return json.loads(response.body)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Check the whole error envelope of DESIGN §8 and return its `error` object."""
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    payload = body_of(response)
    assert set(payload) == {"error"}
    error = payload["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["details"], list)
    for detail in error["details"]:
        assert set(detail) == {"field", "message"}
    assert error["request_id"] == response.headers["X-Request-Id"]
    uuid.UUID(error["request_id"])
    return error


class TestRouteDeclaration:
    def test_permission_and_public_are_exclusive(self) -> None:
        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)
        with pytest.raises(ValueError, match="either a permission or public"):
            api.route("/x", permission="isp:x:read", public=True)

    def test_one_of_permission_and_public_is_required(self) -> None:
        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)
        with pytest.raises(ValueError, match="either a permission or public"):
            api.route("/x")

    def test_permission_routes_default_to_the_platform_authorizer(self) -> None:
        api = Api("isp")

        @api.route("/x", permission="isp:x:read")
        def view(call: Call) -> dict[str, str]:
            return {}

        assert api.app.routes["/api/v1/isp/x"]["GET"].authorizer.name == "dotmac"

    @pytest.mark.parametrize("bad", ["isp:x", "isp", "isp::read", "public"])
    def test_malformed_permission_refused(self, bad: str) -> None:
        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)
        with pytest.raises(ValueError):
            api.route("/x", permission=bad)

    def test_specs_record_every_method(self) -> None:
        api = Api("crm", authorizer=AUTHORIZER, limiter=LIMITS.count)

        @api.route("/leads", methods=["get", "post"], permission="crm:leads:write", summary="s")
        def leads(call: Call) -> dict[str, Any]:
            return {}

        mine = [(s.path, s.method, s.permission) for s in api.specs if s.path.endswith("/leads")]
        assert mine == [
            ("/api/v1/crm/leads", "GET", "crm:leads:write"),
            ("/api/v1/crm/leads", "POST", "crm:leads:write"),
        ]
        assert set(api.app.routes["/api/v1/crm/leads"]) == {"GET", "POST"}
        # The decorator hands the view back unchanged.
        assert leads(None) == {}  # type: ignore[arg-type]


class TestHappyPath:
    def test_body_and_request_id(self, client: Any) -> None:
        response = client.get(
            f"{BASE}/customers/c-42?include=notes", headers={"Authorization": "reader"}
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/json"
        body = body_of(response)
        assert body == {
            "id": "c-42",
            "tenant": "acme",
            "user": "u1",
            "roles": ["r"],
            "perms": ["isp:customers:read"],
            "apps": ["isp"],
            "request_id": response.headers["X-Request-Id"],
            "ctx_request_id": response.headers["X-Request-Id"],
            "query": {"include": "notes"},
        }
        uuid.UUID(response.headers["X-Request-Id"])

    def test_request_ids_differ_per_request(self, client: Any) -> None:
        ids = {client.get(f"{BASE}/health/live").headers["X-Request-Id"] for _ in range(3)}
        assert len(ids) == 3

    def test_reply_status_and_headers(self, client: Any) -> None:
        payload = {"name": "Ann", "address": {"street": "Main", "zip": "1000"}, "lines": []}
        response = client.post(
            f"{BASE}/customers",
            headers={"Authorization": "wild", **JSON_HEADERS},
            body=json.dumps(payload),
        )
        assert response.status_code == 201
        assert response.headers["Location"] == f"{BASE}/customers/c1"
        assert "X-Request-Id" in response.headers
        assert body_of(response) == payload

    def test_wildcard_permission_passes(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers/c1", headers={"Authorization": "wild"})
        assert response.status_code == 200


class TestDomainErrors:
    @pytest.mark.parametrize("kind", sorted(ERRORS))
    def test_each_error_maps_to_its_status_and_envelope(self, client: Any, kind: str) -> None:
        status, code = EXPECTED_STATUS[kind]
        response = client.get(f"{BASE}/fail/{kind}")
        error = assert_error(response, status, code)
        assert error["message"] == ERRORS[kind].message

    def test_details_are_listed_with_field_and_message(self, client: Any) -> None:
        error = assert_error(client.get(f"{BASE}/fail/validation"), 400, "VALIDATION_ERROR")
        assert error["details"] == [
            {"field": "name", "message": "too short"},
            {"field": "address.zip", "message": "not a zip"},
        ]

    def test_rate_limited_has_retry_after(self, client: Any) -> None:
        response = client.get(f"{BASE}/fail/rate")
        assert_error(response, 429, "RATE_LIMITED")
        assert response.headers["Retry-After"] == "30"

    def test_retry_after_is_at_least_one_second(self, client: Any) -> None:
        response = client.get(f"{BASE}/fail/rate-zero")
        assert response.headers["Retry-After"] == "1"

    def test_public_route_asking_for_the_caller_is_401(self, client: Any) -> None:
        assert_error(client.get(f"{BASE}/whoami"), 401, "UNAUTHENTICATED")


class TestUnexpectedErrors:
    @pytest.mark.parametrize("kind", sorted(UNEXPECTED))
    def test_internal_error_leaks_nothing(self, client: Any, kind: str) -> None:
        response = client.get(f"{BASE}/fail/{kind}")
        error = assert_error(response, 500, "INTERNAL_ERROR")
        assert error["message"] == "an internal error occurred"
        assert error["details"] == []
        raw = response.body.decode()
        for secret in ("hunter2", "Traceback", "RuntimeError", "KeyError", "ConditionalCheck"):
            assert secret not in raw

    @pytest.mark.parametrize("kind", sorted(UNAVAILABLE))
    def test_backing_service_failure_is_503(self, client: Any, kind: str) -> None:
        response = client.get(f"{BASE}/fail/{kind}")
        error = assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert "dynamodb.invalid" not in error["message"]

    @pytest.mark.parametrize(
        ("reason", "expected"),
        [("TransactionConflict", (409, "CONFLICT")), ("ValidationError", (500, "INTERNAL_ERROR"))],
    )
    def test_a_transaction_lost_to_a_concurrent_one_is_a_409_to_retry(
        self, reason: str, expected: tuple[int, str]
    ) -> None:
        """Real DynamoDB cancels a transaction that meets another on the same item; a route
        that does not retry it answers 409 (try again), not 500. Other cancellations stay
        internal errors."""
        from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

        from dotmac.core.api import as_domain_error

        cancelled = VerboseClientError(
            {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
            "TransactWriteItems",
            cancellation_reasons=[None, CancellationReason(code=reason)],
        )
        error = as_domain_error(TransactWriteError("Failed to write transaction", cause=cancelled))
        assert (error.status, error.code) == expected


class TestBodyValidation:
    def test_valid_body(self, client: Any) -> None:
        payload = {"name": "Ann", "address": {"street": "Main", "zip": "1"}, "lines": []}
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=json.dumps(payload))
        assert response.status_code == 200
        assert body_of(response) == payload

    def test_field_paths_of_pydantic_errors(self, client: Any) -> None:
        payload = {
            "address": {"street": "Main"},
            "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "x"}],
        }
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=json.dumps(payload))
        error = assert_error(response, 400, "VALIDATION_ERROR")
        fields = sorted(d["field"] for d in error["details"])
        assert fields == ["address.zip", "lines.1.qty", "name"]
        assert all(d["message"] for d in error["details"])

    def test_empty_body_is_validated_as_an_empty_object(self, client: Any) -> None:
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=b"")
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert {d["field"] for d in error["details"]} == {"name", "address"}

    @pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"'])
    def test_non_object_json_is_400_on_the_whole_body(self, client: Any, raw: bytes) -> None:
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=raw)
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert [d["field"] for d in error["details"]] == [""]

    @pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b"not json", b"\xff\xfe\x00", b"{} x"])
    def test_invalid_json_is_400(self, client: Any, raw: bytes) -> None:
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=raw)
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert error["message"] == "request body is not valid JSON"

    def test_deeply_nested_json_is_400(self, client: Any) -> None:
        response = client.post(f"{BASE}/echo", headers=JSON_HEADERS, body=b"[" * 5000)
        assert_error(response, 400, "VALIDATION_ERROR")

    def test_wrong_content_type_is_415_envelope(self, client: Any) -> None:
        response = client.post(f"{BASE}/echo", headers={"Content-Type": "text/plain"}, body=b"{}")
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_wrong_method_is_405_envelope(self, client: Any) -> None:
        response = client.get(f"{BASE}/echo")
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["Allow"] == "POST"


class TestListQuery:
    def test_defaults(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers", headers={"Authorization": "reader"})
        assert response.status_code == 200
        assert body_of(response) == {"limit": 50, "start": None}

    def test_own_cursor_is_accepted(self, client: Any) -> None:
        key = {"PK": {"S": "T#acme#CUSTOMERS"}, "SK": {"S": "C#9"}}
        response = client.get(
            f"{BASE}/customers?limit=10&cursor={encode_cursor(key)}",
            headers={"Authorization": "reader"},
        )
        assert response.status_code == 200
        assert body_of(response) == {"limit": 10, "start": key}

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("cursor=garbage", "cursor"),
            # Another tenant's cursor: refused, not used as a start key.
            (f"cursor={encode_cursor({'PK': {'S': 'T#globex#CUSTOMERS'}})}", "cursor"),
        ],
    )
    def test_bad_list_query_is_400(self, client: Any, query: str, field: str) -> None:
        response = client.get(f"{BASE}/customers?{query}", headers={"Authorization": "reader"})
        error = assert_error(response, 400, "VALIDATION_ERROR")
        assert [d["field"] for d in error["details"]] == [field]

    def test_unicode_digit_limit_is_400(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers?limit=%C2%B2", headers={"Authorization": "reader"})
        assert_error(response, 400, "VALIDATION_ERROR")


class TestAuthorization:
    def test_missing_permission_is_403_forbidden(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers/c1", headers={"Authorization": "crm-only"})
        error = assert_error(response, 403, "FORBIDDEN")
        assert "isp:customers:read" in error["message"]

    def test_read_permission_does_not_grant_write(self, client: Any) -> None:
        response = client.post(
            f"{BASE}/customers", headers={"Authorization": "reader", **JSON_HEADERS}, body=b"{}"
        )
        assert_error(response, 403, "FORBIDDEN")

    def test_unsubscribed_app_is_403_app_not_subscribed(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers/c1", headers={"Authorization": "unsubscribed"})
        assert_error(response, 403, "APP_NOT_SUBSCRIBED")

    def test_platform_tenant_passes_the_subscription_check(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers/c1", headers={"Authorization": "operator"})
        assert response.status_code == 200
        assert body_of(response)["tenant"] == "platform"

    def test_platform_tenant_still_needs_the_permission(self, client: Any) -> None:
        response = client.get(
            f"{BASE}/customers/c1", headers={"Authorization": "operator-no-perms"}
        )
        assert_error(response, 403, "FORBIDDEN")

    def test_platform_permissions_skip_the_subscription_check(self, client: Any) -> None:
        response = client.get(f"{BASE}/platform/tenants", headers={"Authorization": "operator"})
        assert response.status_code == 200
        # ... but a tenant user without the permission is refused.
        response = client.get(f"{BASE}/platform/tenants", headers={"Authorization": "wild"})
        assert_error(response, 403, "FORBIDDEN")

    def test_context_without_tenant_is_401(self, client: Any) -> None:
        response = client.get(f"{BASE}/customers/c1", headers={"Authorization": "no-tenant"})
        assert_error(response, 401, "UNAUTHENTICATED")

    def test_authorizer_runs_before_the_view(self, client: Any) -> None:
        assert client.get(f"{BASE}/customers/c1").status_code == 401
        assert (
            client.get(f"{BASE}/customers/c1", headers={"Authorization": "bogus"}).status_code
            == 403
        )

    def test_public_routes_need_no_token(self, client: Any) -> None:
        assert client.get(f"{BASE}/health/live").status_code == 200


class TestOpenApi:
    def test_document_lists_every_route(self, api: Api, client: Any) -> None:
        response = client.get(f"{BASE}/openapi.json")
        assert response.status_code == 200
        doc = body_of(response)
        assert doc["openapi"].startswith("3.1")
        declared = {
            (path, method.lower()) for path, methods in api.app.routes.items() for method in methods
        }
        documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
        assert documented == declared
        for spec in api.specs:
            operation = doc["paths"][spec.path][spec.method.lower()]
            assert operation["x-dotmac-permission"] == spec.permission
            assert ("security" in operation) == (spec.permission != "public")

    def test_permissions_and_parameters(self, client: Any) -> None:
        doc = body_of(client.get(f"{BASE}/openapi.json"))
        get_one = doc["paths"][f"{BASE}/customers/{{customer_id}}"]["get"]
        assert get_one["x-dotmac-permission"] == "isp:customers:read"
        assert get_one["summary"] == "Get one"
        assert [p["name"] for p in get_one["parameters"]] == ["customer_id"]
        assert get_one["security"] == [{"bearer": []}]
        live = doc["paths"][f"{BASE}/health/live"]["get"]
        assert live["x-dotmac-permission"] == "public"
        assert "security" not in live
        op_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
        assert len(op_ids) == len(set(op_ids))
        assert "Error" in doc["components"]["schemas"]

    def test_bodies_and_query_keys_are_read_from_the_views(self, client: Any) -> None:
        doc = body_of(client.get(f"{BASE}/openapi.json"))
        paths, schemas = doc["paths"], doc["components"]["schemas"]
        create = paths[f"{BASE}/customers"]["post"]
        body = create["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"{REFS}NewCustomer"}
        assert schemas["NewCustomer"]["properties"]["address"] == {"$ref": f"{REFS}Address"}
        assert {"Address", "Line"} <= set(schemas)
        queries = [(p["name"], p["in"], p["required"]) for p in create["parameters"]]
        assert queries == [("audit", "query", False)]
        listing = paths[f"{BASE}/customers"]["get"]
        assert "requestBody" not in listing
        assert [(p["name"], p["schema"]) for p in listing["parameters"]] == [
            ("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
            ("cursor", {"type": "string"}),
        ]

    def test_helpers_the_view_calls_count_and_an_idempotency_key_is_a_header(self) -> None:
        from dotmac.core.openapi import document

        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)

        @api.route("/orders", ["POST"], permission="isp:orders:write")
        def create_order(call: Call) -> Reply:
            return _order_from(call)

        operation = document(api)["paths"][f"{BASE}/orders"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"{REFS}Line"}
        (key,) = operation["parameters"]
        assert (key["name"], key["in"], key["required"]) == ("Idempotency-Key", "header", True)
        assert key["schema"]["pattern"] == IDEMPOTENCY_KEY.pattern

    def test_a_view_parsing_one_of_several_models_takes_any_of_them(self) -> None:
        from dotmac.core.openapi import document

        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)

        @api.route("/lines-or-addresses", ["POST"], permission="isp:orders:write")
        def lines_or_addresses(call: Call) -> Reply:
            if call.query.get("kind") == "line":
                return Reply(call.body(Line).model_dump(), status=201)
            return Reply(call.body(Address).model_dump(), status=201)

        operation = document(api)["paths"][f"{BASE}/lines-or-addresses"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        # A body matches one branch; allOf would demand a body valid for both models.
        assert list(body) == ["anyOf"]
        assert sorted(r["$ref"] for r in body["anyOf"]) == [f"{REFS}Address", f"{REFS}Line"]

    def test_success_is_the_envelope_errors_the_error_envelope(self, client: Any) -> None:
        doc = body_of(client.get(f"{BASE}/openapi.json"))
        paths, schemas = doc["paths"], doc["components"]["schemas"]

        def schema(answer: dict[str, Any]) -> Any:
            return answer["content"]["application/json"]["schema"]

        got = paths[f"{BASE}/customers/{{customer_id}}"]["get"]["responses"]
        assert set(got) == {"2XX", "4XX", "default"}
        envelopes = [{"$ref": f"{REFS}Single"}, {"$ref": f"{REFS}Page"}]
        assert schema(got["2XX"]) == {"oneOf": envelopes}
        assert schema(got["4XX"]) == schema(got["default"]) == {"$ref": f"{REFS}Error"}
        page = schemas["Page"]["properties"]
        assert page["data"] == {"type": "array", "items": {"$ref": f"{REFS}Resource"}}
        assert "next_cursor" in page["meta"]["required"]
        assert page["meta"]["properties"]["summary"] == {"type": "object"}  # optional
        assert "summary" not in page["meta"]["required"]
        assert schemas["Single"]["properties"]["data"] == {"$ref": f"{REFS}Resource"}
        error = schemas["Error"]["properties"]["error"]
        assert error["required"] == ["code", "message", "details", "request_id"]
        created = paths[f"{BASE}/customers"]["post"]["responses"]
        assert created["204"] == {"description": "Done, no content"}  # a mutation may say nothing
        probe = paths[f"{BASE}/health/live"]["get"]["responses"]  # enveloped=False
        assert schema(probe["2XX"]) == {"type": "object"}
        assert schema(probe["4XX"]) == {"$ref": f"{REFS}Error"}

    def test_the_document_is_valid_openapi_and_follows_new_routes(self) -> None:
        import schemathesis

        api = build_api()
        with Client(api.app) as test_client:
            first = body_of(test_client.http.get(f"{BASE}/openapi.json"))
            schemathesis.openapi.from_dict(first).validate()

            @api.route("/late", public=True)
            def late(call: Call) -> dict[str, Any]:
                return {}

            again = body_of(test_client.http.get(f"{BASE}/openapi.json"))
        assert f"{BASE}/late" not in first["paths"]
        assert f"{BASE}/late" in again["paths"]


def _order_from(call: Call) -> Reply:
    call.idempotency_key(required=True)
    return Reply(call.body(Line).model_dump(), status=201)


class TestHealth:
    def test_live(self, client: Any) -> None:
        response = client.get(f"{BASE}/health/live")
        assert response.status_code == 200
        assert body_of(response) == {"status": "ok"}

    def test_startup_after_init(self, client: Any) -> None:
        response = client.get(f"{BASE}/health/startup")
        assert response.status_code == 200
        assert body_of(response) == {"status": "ok"}

    def test_startup_before_init(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(health, "_started_at", None)
        response = client.get(f"{BASE}/health/startup")
        assert response.status_code == 503
        assert body_of(response) == {"status": "starting"}

    def test_ready_names_failed_dependencies(
        self, client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        checks = [Check("table:t", True, "ok", 1.0), Check("queue:q", False, "Timeout", 2.0)]
        monkeypatch.setattr(health, "readiness", lambda: checks)
        response = client.get(f"{BASE}/health/ready")
        assert response.status_code == 503
        body = body_of(response)
        assert body["status"] == "unavailable"
        assert body["failed"] == ["queue:q"]
        assert body["checks"]["queue:q"]["status"] == "error"
        assert body["checks"]["table:t"]["status"] == "ok"

    def test_ready_when_everything_answers(
        self, client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(health, "readiness", lambda: [Check("table:t", True, "ok", 1.0)])
        response = client.get(f"{BASE}/health/ready")
        assert response.status_code == 200
        assert body_of(response)["failed"] == []


def test_concurrent_chalice_request_is_per_thread() -> None:
    app = ConcurrentChalice("threads")
    barrier = threading.Barrier(2, timeout=5)
    seen: dict[str, Any] = {}

    def worker(name: str) -> None:
        request, context = object(), object()
        app.current_request = request  # type: ignore[assignment]
        app.lambda_context = context
        barrier.wait()  # both threads have set their own values
        seen[name] = (app.current_request is request, app.lambda_context is context)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == {"a": (True, True), "b": (True, True)}
    assert app.current_request is None  # this thread never set one
    assert app.lambda_context is None


class TestAuditAndLimits:
    def test_a_mutation_that_recorded_no_audit_is_refused(self, client: Any) -> None:
        payload = {"name": "Ann", "address": {"street": "Main", "zip": "1"}, "lines": []}
        headers = {"Authorization": "wild", **JSON_HEADERS}
        audited = client.post(f"{BASE}/customers", headers=headers, body=json.dumps(payload))
        assert audited.status_code == 201
        silent = client.post(
            f"{BASE}/customers?audit=skip", headers=headers, body=json.dumps(payload)
        )
        error = assert_error(silent, 500, "INTERNAL_ERROR")
        assert "audit" not in error["message"]  # the reason is logged, not leaked

    def test_every_authenticated_call_is_counted_against_the_callers_limit(
        self, client: Any
    ) -> None:
        LIMITS.calls.clear()
        client.get(f"{BASE}/customers", headers={"Authorization": "reader"})
        client.get(f"{BASE}/health/live")
        assert LIMITS.calls == [("acme", "u1", None)]

    def test_tenant_limits_are_search_or_bulk(self) -> None:
        api = Api("isp", authorizer=AUTHORIZER, limiter=LIMITS.count)
        with pytest.raises(ValueError, match="tenant_limit"):
            api.route("/x", permission="isp:x:read", tenant_limit="other")
