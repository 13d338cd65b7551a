"""The HTTP app factory: one Chalice app per domain, routes that declare a permission,
request ids, structured logs and the single place where errors become HTTP responses.

A view receives a `Call` (the verified `TenantContext`, the request, body parsing) plus its
path parameters, and returns a body dict (200) or a `Reply`.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from chalice import Chalice, ChaliceViewError, Response
from chalice.app import Request

from dotmac.core import audit, envelope, health
from dotmac.core.errors import (
    AuthenticationError,
    ConflictError,
    DependencyUnavailableError,
    DotmacError,
    FieldError,
    ForbiddenError,
    ValidationError,
)
from dotmac.core.observability import get_logger, http_middleware
from dotmac.core.permissions import CORE_APPS, PUBLIC, allowed, app_of
from dotmac.core.tenancy import TenantContext

if TYPE_CHECKING:
    from pydantic import BaseModel

API_PREFIX = "/api/v1"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
REQUEST_ID_HEADER = "X-Request-Id"
# AWS error codes of a backing service that is overloaded or failing (503, retry later).
BUSY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalServerError",
    }
)
ModelT = TypeVar("ModelT", bound="BaseModel")


@dataclass
class Reply:
    """A view's answer when it is not a plain 200 JSON body."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteSpec:
    """What a route declares: where it lives, which permission it needs, whether a
    SUSPENDED tenant's users still reach it and whether it answers in the envelope."""

    app: str
    path: str
    method: str
    permission: str
    summary: str
    while_suspended: bool
    enveloped: bool = True  # its 2xx bodies are DESIGN §8's success envelope


IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass
class Call:
    """One request as a view sees it."""

    request: Request
    request_id: str
    context: TenantContext | None

    @property
    def ctx(self) -> TenantContext:
        """The verified caller; only public routes have none."""
        if self.context is None:
            raise AuthenticationError("authentication required")
        return self.context

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params or {})

    @property
    def source_ip(self) -> str:
        """The client's address as the gateway saw it."""
        identity = (self.request.context or {}).get("identity") or {}
        return str(identity.get("sourceIp") or "unknown")

    @overload
    def idempotency_key(self, *, required: Literal[True]) -> str: ...

    @overload
    def idempotency_key(self, *, required: Literal[False]) -> str | None: ...

    def idempotency_key(self, *, required: bool) -> str | None:
        """The `Idempotency-Key` header: 1-255 visible ASCII characters (400 otherwise, or
        when `required` and missing)."""
        key = self.request.headers.get("idempotency-key")
        if key is None and not required:
            return None
        if key is None or not IDEMPOTENCY_KEY.fullmatch(key):
            raise ValidationError(
                "an Idempotency-Key header is required" if key is None else "bad Idempotency-Key",
                details=[FieldError("Idempotency-Key", "1-255 visible ASCII characters")],
            )
        return key

    def body(self, model: type[ModelT]) -> ModelT:
        """Parse and validate the JSON body; any problem is a 400 with field details."""
        from pydantic import ValidationError as PydanticValidationError

        raw = self.request.raw_body or b"{}"
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValidationError("request body is not valid JSON") from exc
        try:
            return model.model_validate(data)
        except PydanticValidationError as exc:
            raise ValidationError(
                "request body is invalid",
                details=[
                    FieldError(".".join(str(p) for p in err["loc"]), err["msg"])
                    for err in exc.errors(include_url=False)
                ],
            ) from exc


def _context_from_authorizer(request: Request, request_id: str) -> TenantContext | None:
    """The TenantContext the authorizer put in the request context (verified claims only)."""
    claims = (request.context or {}).get("authorizer") or {}
    if not claims.get("tid") or not claims.get("sub"):
        return None

    def split(value: Any) -> frozenset[str]:
        return frozenset(v for v in str(value or "").split(",") if v)

    return TenantContext(
        tenant_id=claims["tid"],
        user_id=claims["sub"],
        roles=split(claims.get("roles")),
        permissions=split(claims.get("perms")),
        apps=split(claims.get("apps")),
        tenant_status=str(claims.get("tenant_status") or "ACTIVE"),
        request_id=request_id,
        customer_id=claims.get("customer") or None,
    )


def _json_response(body: Any, status: int, headers: dict[str, str]) -> Response:
    if status == 204:
        return Response(body="", status_code=204, headers={**headers})
    return Response(
        body=json.dumps(body, default=str),
        status_code=status,
        headers={"Content-Type": JSON, **headers},
    )


def error_response(exc: DotmacError, request_id: str) -> Response:
    """The one place a domain error becomes an HTTP response."""
    return _json_response(
        envelope.error(exc, request_id),
        exc.status,
        {REQUEST_ID_HEADER: request_id, **exc.headers},
    )


def as_domain_error(exc: Exception) -> DotmacError:
    """What an exception means to a client (unknown ones are internal errors)."""
    if isinstance(exc, DotmacError):
        return exc
    if isinstance(exc, ChaliceViewError):
        # Chalice's own request errors (bad JSON body, bad content type) are client errors.
        return ValidationError(str(exc) or type(exc).__name__)
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )
    from pynamodb.exceptions import PynamoDBException

    from dotmac.core.unit_of_work import cancelled_by_another_transaction

    if cancelled_by_another_transaction(exc):  # a route that does not retry its transaction
        return ConflictError("a concurrent change to the same records won; try again")
    if isinstance(exc, PynamoDBException) and isinstance(exc.cause, Exception):
        return as_domain_error(exc.cause)  # PynamoDB wraps botocore's error (GetError, ...)
    unreachable = isinstance(exc, EndpointConnectionError | ConnectionError | ReadTimeoutError)
    if unreachable or (
        isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in BUSY_CODES
    ):
        return DependencyUnavailableError("a backing service is unavailable")
    return DotmacError("an internal error occurred")


def count_against_limits(ctx: TenantContext, tenant_limit: str | None, mutation: bool) -> None:
    """Count the call against the caller's limit (leased, see `AllowanceLeases`), the
    tenant's search/bulk limit and its plan's hourly API quota; over a rate limit this
    raises RateLimitedError (429), over the quota after its grace period a mutation gets
    403 PLAN_LIMIT_EXCEEDED."""
    from dotmac.core import ratelimit

    ratelimit.api_leases.spend(ratelimit.API_PER_USER, f"{ctx.tenant_id}:{ctx.user_id}")
    if not ctx.is_platform:
        from dotmac.management.entitlements import api_calls

        api_calls.count(ctx, mutation=mutation)
    if tenant_limit == "search":
        ratelimit.hit(ratelimit.SEARCH_PER_TENANT, ctx.tenant_id)
    elif tenant_limit == "bulk":
        ratelimit.hit(ratelimit.BULK_PER_TENANT, ctx.tenant_id)


def platform_authorizer(auth_request: Any) -> Any:
    """The platform's one authorizer (`dotmac.identity.authorizer`), imported on first use."""
    from dotmac.identity.authorizer import authorize

    return authorize(auth_request)


class ConcurrentChalice(Chalice):
    """A Chalice app whose `current_request`/`lambda_context` are per thread.

    Chalice keeps them on the app object, which is fine in Lambda (one request per
    container at a time) but races when the local gateway serves requests concurrently.
    """

    def __init__(self, app_name: str) -> None:
        self._per_thread = threading.local()
        super().__init__(app_name=app_name)

    @property
    def current_request(self) -> Request | None:
        return getattr(self._per_thread, "request", None)

    @current_request.setter
    def current_request(self, value: Request | None) -> None:
        self._per_thread.request = value

    @property
    def lambda_context(self) -> Any:
        return getattr(self._per_thread, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._per_thread.context = value


class Api:
    """A domain's HTTP app: a Chalice app plus the routes' declared permissions."""

    def __init__(
        self,
        name: str,
        *,
        authorizer: Any = None,
        limiter: Callable[[TenantContext, str | None, bool], None] | None = None,
    ) -> None:
        self.name = name
        self.limiter = limiter or count_against_limits
        self.app = ConcurrentChalice(f"dotmac-{name}")
        self.app.api.binary_types = ["application/pdf", "application/octet-stream"]
        self.authorizer = authorizer or self.app.authorizer(name="dotmac")(platform_authorizer)
        self.specs: list[RouteSpec] = []
        self._document: dict[str, Any] | None = None
        self.app.register_middleware(http_middleware, "http")
        self.app.register_middleware(self._chalice_errors_to_envelope, "http")
        self.add_health_routes(self.base)
        self.route(
            "/openapi.json", public=True, enveloped=False, summary="This app's OpenAPI document"
        )(self._openapi)
        health.mark_started()

    @property
    def base(self) -> str:
        """Where this app's own routes live: `/api/v1/<app>`."""
        return f"{API_PREFIX}/{self.name}"

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        permission: str | None = None,
        public: bool = False,
        summary: str = "",
        absolute: bool = False,
        tenant_limit: str | None = None,
        changes_state: bool | None = None,
        while_suspended: bool = False,
        enveloped: bool = True,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a view under `base + path` (or `path` itself when `absolute`).

        Exactly one of `permission` ("app:resource:action") and `public=True` is required.
        Authenticated calls count against the caller's API rate limit; `tenant_limit`
        ("search" or "bulk") adds the tenant-wide limit of that kind. A route that
        `changes_state` (default: any POST/PUT/PATCH/DELETE) must write an audit record.
        A SUSPENDED tenant's users only reach routes marked `while_suspended` (settling
        their bills); everything else answers 403 TENANT_SUSPENDED. A route whose 2xx body
        is not the success envelope (probes, documents) says `enveloped=False`.
        """
        if tenant_limit not in (None, "search", "bulk"):
            raise ValueError(f"route {path}: tenant_limit must be 'search' or 'bulk'")
        if public == (permission is not None):
            raise ValueError(f"route {path}: declare either a permission or public=True")
        if permission is not None:
            app_of(permission)  # validates the shape
        full_path = path if absolute else self.base + path
        method_list = [m.upper() for m in methods]
        mutation = (
            any(m in MUTATING_METHODS for m in method_list)
            if changes_state is None
            else changes_state
        )

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            wrapped = self._wrap(
                view,
                permission,
                audited=mutation,
                tenant_limit=tenant_limit,
                while_suspended=while_suspended,
            )
            self.app.route(
                full_path,
                methods=method_list,
                authorizer=None if permission is None else self.authorizer,
                content_types=[JSON],
                name=f"{view.__name__}_{'_'.join(method_list).lower()}",
            )(wrapped)
            for method in method_list:
                self.specs.append(
                    RouteSpec(
                        self.name,
                        full_path,
                        method,
                        permission or PUBLIC,
                        summary,
                        while_suspended,
                        enveloped,
                    )
                )
            self._document = None
            return view

        return decorate

    def _wrap(
        self,
        view: Callable[..., Any],
        permission: str | None,
        *,
        audited: bool,
        tenant_limit: str | None,
        while_suspended: bool,
    ) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(**path_params: str) -> Response:
            request = self.app.current_request
            assert request is not None
            request_id = (request.context or {}).get("requestId") or str(uuid.uuid4())
            logger = get_logger()
            audit.start_request()
            try:
                ctx = _context_from_authorizer(request, request_id)
                if permission is not None:
                    ctx = self._authorize(ctx, permission, while_suspended)
                    logger.thread_safe_append_keys(tenant_id=ctx.tenant_id, user_id=ctx.user_id)
                    self.limiter(ctx, tenant_limit, audited)
                result = view(Call(request, request_id, ctx), **path_params)
                reply = result if isinstance(result, Reply) else Reply(result)
                if audited and reply.status < 400 and not audit.recorded():
                    raise RuntimeError(f"{view.__name__} changed state without an audit record")
            except Exception as exc:
                error = as_domain_error(exc)
                if error.status >= 500:
                    logger.exception("request failed", error_code=error.code)
                return error_response(error, request_id)
            return _json_response(
                reply.body, reply.status, {REQUEST_ID_HEADER: request_id, **reply.headers}
            )

        return handle

    def _authorize(
        self, ctx: TenantContext | None, permission: str, while_suspended: bool
    ) -> TenantContext:
        if ctx is None:
            raise AuthenticationError("authentication required")
        usable = ("ACTIVE", "SUSPENDED") if while_suspended else ("ACTIVE",)
        if ctx.tenant_status not in usable and not ctx.is_platform:
            raise ForbiddenError("this tenant is suspended", code="TENANT_SUSPENDED")
        app = app_of(permission)
        if app not in CORE_APPS and not ctx.is_platform and app not in ctx.apps:
            raise ForbiddenError(f"tenant is not subscribed to {app}", code="APP_NOT_SUBSCRIBED")
        if not allowed(ctx.permissions, permission):
            raise ForbiddenError(f"missing permission {permission}")
        return ctx

    @staticmethod
    def _chalice_errors_to_envelope(event: Request, get_response: Callable[..., Any]) -> Any:
        """Chalice answers 405/415/... itself; rewrite those bodies into the error envelope."""
        response = get_response(event)
        body = response.body
        if response.status_code >= 400 and isinstance(body, dict) and "Code" in body:
            request_id = (event.context or {}).get("requestId") or str(uuid.uuid4())
            codes = {405: "METHOD_NOT_ALLOWED", 415: "UNSUPPORTED_MEDIA_TYPE", 404: "NOT_FOUND"}
            error = DotmacError(str(body.get("Message", "")), code=codes.get(response.status_code))
            error.status = response.status_code
            if error.status >= 500:
                error.code, error.message = "INTERNAL_ERROR", "an internal error occurred"
            return _json_response(
                envelope.error(error, request_id),
                error.status,
                {**response.headers, REQUEST_ID_HEADER: request_id},
            )
        return response

    def add_health_routes(self, prefix: str) -> None:
        """Serve the three probes under `prefix` (`/api/v1/<app>`, or "" for the platform's)."""
        for name, probe, summary in (
            ("live", live, "Liveness"),
            ("ready", ready, "Readiness"),
            ("startup", startup, "Startup"),
        ):
            path = f"{prefix}/health/{name}"
            self.route(path, public=True, absolute=True, enveloped=False, summary=summary)(probe)

    def _openapi(self, call: Call) -> dict[str, Any]:
        if self._document is None:  # built once: it reads every view's source
            from dotmac.core.openapi import document

            self._document = document(self)
        return self._document


def live(call: Call) -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


def startup(call: Call) -> Reply:
    """Initialisation has finished."""
    if not health.started():
        return Reply({"status": "starting"}, status=503)
    return Reply({"status": "ok"})


def ready(call: Call) -> Reply:
    """Every dependency answers; 503 naming the ones that did not."""
    checks = health.readiness()
    failed = [c.name for c in checks if not c.ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {
            c.name: {
                "status": "ok" if c.ok else "error",
                "detail": c.detail,
                "ms": round(c.millis, 1),
            }
            for c in checks
        },
        "failed": failed,
    }
    return Reply(body, status=503 if failed else 200)
