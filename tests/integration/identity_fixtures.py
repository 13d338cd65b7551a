"""Identity test fixtures: the seeded stack behind an in-process gateway, plus probe routes.

`platform` bootstraps the whole STACK in moto (`moto_cloud`), seeds the demo data
(`devcloud.seed.run`) and serves every HTTP app of `STACK.http_apps` through the local
gateway, which runs the real authorizer in-process. The extra `probe` app declares routes
whose permissions name the subscribable apps (`isp`, `crm`, `commerce`, `projects`), so the
route wrapper's subscription and permission checks can be exercised without domain code.

Import the fixtures into a test module with
`from tests.integration.identity_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.integration.conftest import MotoCloud

ABC = "abc-corp"
GLOBEX = "globex"
JOHN = "john.smith@abc-corp.example"
SARAH = "sarah@abc-corp.example"
MIKE = "mike@abc-corp.example"
JANE = "jane@abc-corp.example"
TOM = "tom@abc-corp.example"
OPERATOR = "operator@dotmac.example"
GLOBEX_USER = "wile@globex.example"
GLOBEX_PASSWORD = "Globex-secret-2026"

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Probe routes: path -> the permission it declares (one GET route each).
PROBES: dict[str, str] = {
    "/api/v1/probe/isp/work-orders": "isp:work_orders:read",
    "/api/v1/probe/isp/customers": "isp:customers:read",
    "/api/v1/probe/isp/portal": "isp:portal:read",
    "/api/v1/probe/crm/leads": "crm:leads:read",
    "/api/v1/probe/crm/deals": "crm:deals:write",
    "/api/v1/probe/commerce/shop": "commerce:shop:read",
    "/api/v1/probe/commerce/orders": "commerce:orders:read",
    "/api/v1/probe/projects/projects": "projects:projects:read",
    "/api/v1/probe/platform/tenants": "platform:tenants:manage",
}


def build_probe_app() -> Any:
    """A small app whose GET routes only echo who passed the route wrapper's checks."""
    from dotmac.core.api import Api, Call

    probe = Api("probe")

    def make(permission: str) -> Any:
        def view(call: Call) -> dict[str, Any]:
            return {
                "permission": permission,
                "tenant": call.ctx.tenant_id,
                "user": call.ctx.user_id,
            }

        view.__name__ = "probe_" + permission.replace(":", "_").replace("*", "any")
        return view

    for path, permission in PROBES.items():
        probe.route(path, permission=permission, absolute=True)(make(permission))
    return probe.app


@dataclass
class Answer:
    """One gateway response."""

    status: int
    headers: dict[str, str]
    json: Any
    raw: bytes = b""

    @property
    def attributes(self) -> dict[str, Any]:
        return dict(self.json["data"]["attributes"])

    @property
    def error_code(self) -> str | None:
        if isinstance(self.json, dict) and "error" in self.json:
            return str(self.json["error"]["code"])
        return None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def __iter__(self) -> Iterator[Any]:  # (status, headers, json) unpacking
        return iter((self.status, self.headers, self.json))


@dataclass
class Platform:
    """The seeded stack behind the in-process gateway."""

    cloud: MotoCloud
    gateway: Any
    apps: dict[str, Any]
    # (method, path, request id) of every 2xx/3xx mutation sent through `call`.
    mutations: list[tuple[str, str, str]] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        raw = None if body is None else json.dumps(body).encode()
        status, out_headers, out = self.gateway.handle(method, path, sent, raw)
        try:
            payload = json.loads(out) if out else None
        except ValueError:
            payload = None
        answer = Answer(status, out_headers, payload, out)
        if method in MUTATING and status < 400:
            self.mutations.append((method, path, answer.header("X-Request-Id") or ""))
        return answer

    def login(
        self,
        email: str,
        tenant: str | None = ABC,
        password: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Answer:
        from devcloud.seed import DEMO_PASSWORD

        body: dict[str, Any] = {"email": email, "password": password or DEMO_PASSWORD, **extra}
        if tenant is not None:
            body["tenant"] = tenant
        return self.call("POST", "/api/v1/auth/login", body=body, headers=headers)

    def session(self, email: str, tenant: str | None = ABC, **kwargs: Any) -> dict[str, Any]:
        """Log in and return the session attributes (asserts 200)."""
        answer = self.login(email, tenant, **kwargs)
        assert answer.status == 200, answer.json
        return answer.attributes

    def token(self, email: str, tenant: str | None = ABC, **kwargs: Any) -> str:
        return str(self.session(email, tenant, **kwargs)["access_token"])

    def notifications(self, template: str) -> list[dict[str, Any]]:
        """The messages of `template` waiting on the notifications queue; every message read
        is deleted (whatever its template)."""
        sqs = self.cloud.client("sqs")
        url = self.cloud.queue_url("notifications")
        found = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                body = json.loads(message["Body"])
                if body["template"] == template:
                    found.append(body)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def audit_records(self) -> list[dict[str, Any]]:
        """Every audit record in the table, all tenants (a Scan; the raw stored attributes)."""
        from boto3.dynamodb.types import TypeDeserializer

        plain = TypeDeserializer()
        client = self.cloud.client("dynamodb")
        found: list[dict[str, Any]] = []
        pages = client.get_paginator("scan").paginate(
            TableName=self.cloud.created.table,
            FilterExpression="kind = :audit",
            ExpressionAttributeValues={":audit": {"S": "audit"}},
        )
        for page in pages:
            for item in page["Items"]:
                found.append({k: plain.deserialize(v) for k, v in item.items()})
        return found

    def unaudited_mutations(self) -> list[tuple[str, str, str]]:
        """Successful mutations sent through `call` whose request id no audit record carries."""
        audited = {record.get("request_id") for record in self.audit_records()}
        return [m for m in self.mutations if m[2] not in audited]

    def user_id(self, email: str, tenant: str = ABC) -> str:
        """A user's id, read from the table."""
        from dotmac.core.tenancy import TenantContext
        from dotmac.identity.repository import UserRepository
        from dotmac.identity.service import user_id_of

        user = UserRepository(TenantContext(tenant, "test")).find_by_email(email)
        assert user is not None, email
        return user_id_of(user)

    def user_item(self, email: str, tenant: str = ABC) -> Any:
        from dotmac.core.tenancy import TenantContext
        from dotmac.identity.repository import UserRepository

        user = UserRepository(TenantContext(tenant, "test")).find_by_email(email)
        assert user is not None, email
        return user

    def add_tenant(
        self,
        tenant_id: str,
        *,
        apps: frozenset[str] = frozenset({"isp"}),
        mfa_required: bool = False,
        users: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
    ) -> None:
        """Create an ACTIVE tenant and users with known passwords: (email, password, roles)."""
        from dotmac.management import repository

        repository.create_tenant(
            tenant_id, tenant_id.title(), "starter", set(apps), mfa_required=mfa_required
        )
        self.add_users(tenant_id, users)

    def add_users(
        self, tenant_id: str, users: tuple[tuple[str, str, tuple[str, ...]], ...]
    ) -> None:
        """Create users with known passwords in an existing tenant: (email, password, roles)."""
        from dotmac.core.tenancy import TenantContext
        from dotmac.identity import service
        from dotmac.identity.schemas import UserCreate

        ctx = TenantContext(
            tenant_id,
            "test-setup",
            permissions=frozenset({"identity:*:*"}),
            request_id="test-setup",
        )
        for email, password, roles in users:
            request = UserCreate(email=email, name=email.split("@")[0], roles=list(roles))
            service.create_user(ctx, request, password=password)


def reset_identity_caches() -> None:
    """Forget every per-process cache the identity path keeps (they must not leak)."""
    from dotmac.core.ratelimit import api_leases
    from dotmac.identity.authorizer import user_states
    from dotmac.identity.keys import keyring
    from dotmac.management.entitlements import api_calls
    from dotmac.management.flags import cached_flags
    from dotmac.management.repository import cached_tenants

    cached_tenants.forget()
    cached_flags.forget()
    api_calls.reset()
    keyring.forget()
    user_states.forget()
    api_leases.reset()


_BOTOCORE_FILES: dict[str, Any] = {}


@pytest.fixture
def shared_botocore_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse botocore's JSON service models once per process instead of once per session.

    Every test builds fresh boto3 sessions (bootstrap, per-test client reset), and each new
    session re-parses the same large read-only JSON files: ~1.3 s per test. The data is
    identical for every session, so one parse is shared (test speed only).
    """
    from botocore.loaders import JSONFileLoader

    original = JSONFileLoader.load_file

    def load_file(self: Any, file_path: str) -> Any:
        if file_path not in _BOTOCORE_FILES:
            _BOTOCORE_FILES[file_path] = original(self, file_path)
        return _BOTOCORE_FILES[file_path]

    monkeypatch.setattr(JSONFileLoader, "load_file", load_file)


@pytest.fixture
def platform(
    shared_botocore_models: None, moto_cloud: MotoCloud, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Platform]:
    """Seeded stack + gateway over every HTTP app and the probe app.

    The login limit (5/min per IP; every local request comes from 127.0.0.1) and the API
    limit are raised so tests can sign in freely; `strict_limits` restores the real ones.
    On teardown, every successful mutation the test sent must have left an audit record
    with its request id (DESIGN §5: every mutation writes an audit record).
    """
    from devcloud import registry, seed
    from devcloud.gateway import Gateway
    from dotmac.core import ratelimit
    from dotmac.core.model import bind_table, ensure_bound
    from infra.resources import STACK

    bind_table(moto_cloud.created.table)
    ensure_bound()
    reset_identity_caches()
    monkeypatch.setattr(ratelimit, "LOGIN_PER_IP", ratelimit.Limit("login-ip", 10_000, 60))
    monkeypatch.setattr(ratelimit, "API_PER_USER", ratelimit.Limit("api-user", 100_000, 60))
    seed.run()
    # Build the process-wide logger before any request: `get_logger` is an lru_cache, so
    # parallel first requests each build a Powertools Logger for the same service, which
    # resets the shared formatter under the others (AttributeError -> 500) in this process.
    from dotmac.core.observability import get_logger

    get_logger()
    apps = {app: registry.chalice_app(app) for app in STACK.http_apps}
    apps["probe"] = build_probe_app()
    stack = Platform(moto_cloud, Gateway(apps), apps)
    try:
        yield stack
        missing = stack.unaudited_mutations()
        assert not missing, f"successful mutations without an audit record: {missing}"
    finally:
        reset_identity_caches()


@pytest.fixture
def strict_limits(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """The production login and API limits (5/min per IP, 100/min per user)."""
    from dotmac.core import ratelimit

    monkeypatch.setattr(ratelimit, "LOGIN_PER_IP", ratelimit.Limit("login-ip", 5, 60))
    monkeypatch.setattr(ratelimit, "API_PER_USER", ratelimit.Limit("api-user", 100, 60))
    return platform


@pytest.fixture
def globex(platform: Platform) -> Platform:
    """A second tenant, `globex`, with one admin user."""
    platform.add_tenant(
        GLOBEX,
        apps=frozenset({"isp", "crm"}),
        users=((GLOBEX_USER, GLOBEX_PASSWORD, ("tenant_admin",)),),
    )
    return platform


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads far more often, so an unguarded read-check-write race would show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode_part(part: dict[str, Any]) -> str:
    return b64url(json.dumps(part, separators=(",", ":")).encode())


def kms_sign(header: dict[str, Any], claims: dict[str, Any], key_id: str) -> str:
    """A JWS signed in KMS by `key_id` exactly as the issuer signs (ES256, raw r||s)."""
    from dotmac.core import aws
    from dotmac.identity.tokens import _raw_signature

    signing_input = f"{encode_part(header)}.{encode_part(claims)}"
    der = aws.client("kms").sign(
        KeyId=key_id,
        Message=signing_input.encode(),
        MessageType="RAW",
        SigningAlgorithm="ECDSA_SHA_256",
    )["Signature"]
    return f"{signing_input}.{b64url(_raw_signature(der))}"


def new_kms_signing_key() -> str:
    """A fresh ES256 key in KMS that the key registry does not know."""
    from dotmac.core import aws

    return str(
        aws.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
            "KeyMetadata"
        ]["KeyId"]
    )


def split_token(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(header, claims, signature) of a compact JWS, unverified."""
    header, claims, signature = token.split(".")

    def part(text: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))

    return part(header), part(claims), signature


def decode_unverified(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


__all__ = [
    "ABC",
    "GLOBEX",
    "GLOBEX_PASSWORD",
    "GLOBEX_USER",
    "JANE",
    "JOHN",
    "MIKE",
    "OPERATOR",
    "PROBES",
    "SARAH",
    "TOM",
    "Answer",
    "Platform",
    "b64url",
    "decode_unverified",
    "eager_thread_switching",
    "encode_part",
    "globex",
    "kms_sign",
    "new_kms_signing_key",
    "platform",
    "reset_identity_caches",
    "shared_botocore_models",
    "split_token",
    "strict_limits",
]
