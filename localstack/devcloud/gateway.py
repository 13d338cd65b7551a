"""The local API gateway: one HTTP server in front of every domain app.

It does what the production REST API does: match the path against the union of all apps'
routes, run the route's authorizer (Chalice's local authorizer runner, i.e. the real
authorizer function), build the proxy event and invoke the app. Requests are served on
threads; on shutdown it stops accepting and waits for in-flight requests (bounded).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from chalice.local import (
    ForbiddenError,
    LambdaContext,
    LambdaEventConverter,
    LocalGatewayAuthorizer,
    LocalGatewayException,
    MatchResult,
    RouteMatcher,
)

from dotmac.core.observability import get_logger
from infra.resources import GATEWAY_RESPONSES

MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit


_Answer = tuple[int, dict[str, str], bytes]


class _Refused(Exception):
    """The gateway answers itself, as API Gateway does with the response of this type."""

    def __init__(self, kind: str) -> None:
        self.answer = GATEWAY_RESPONSES[kind]
        super().__init__(self.answer.message)


class _RouteMatcher(RouteMatcher):
    """Chalice's route matching (concrete segments before captures, in sorted order) with
    the routes split once and grouped by segment count: Chalice splits every route again on
    every request, a tenth of a millisecond over two hundred routes."""

    def __init__(self, route_urls: list[str]) -> None:
        super().__init__(route_urls)
        self._by_length: dict[int, list[tuple[str, list[str]]]] = {}
        for route in self.route_urls:
            parts = route.split("/")
            self._by_length.setdefault(len(parts), []).append((route, parts))

    def match_route(self, url: str) -> MatchResult:
        parsed = urlparse(url)
        path = parsed.path
        if path != "/" and path.endswith("/"):  # as API Gateway does
            path = path[:-1]
        parts = path.split("/")
        for route, route_parts in self._by_length.get(len(parts), ()):
            captured: dict[str, str] = {}
            for given, wanted in zip(parts, route_parts, strict=True):
                if wanted.startswith("{") and wanted.endswith("}"):
                    captured[wanted[1:-1]] = given
                elif given != wanted:
                    break
            else:
                return MatchResult(route, captured, parse_qs(parsed.query, keep_blank_values=True))
        raise ValueError(f"No matching route found for: {url}")


class RouteConflictError(Exception):
    """Two apps declare the same path and method."""


def _error_body(code: str, message: str, request_id: str) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "details": [], "request_id": request_id}}
    ).encode()


class _MountedApp:
    def __init__(self, name: str, app: Any) -> None:
        self.name = name
        self.app = app
        self.converter = LambdaEventConverter(_RouteMatcher(list(app.routes)), app.api.binary_types)
        self.authorizer = LocalGatewayAuthorizer(app)


class Gateway:
    """Dispatches (method, path) to the app that owns the matching route."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self._apps = {name: _MountedApp(name, app) for name, app in apps.items()}
        # path pattern -> method -> app; two apps may share a path with different methods.
        self._owners: dict[str, dict[str, _MountedApp]] = {}
        for mounted in self._apps.values():
            for path, methods in mounted.app.routes.items():
                owners = self._owners.setdefault(path, {})
                for method in methods:
                    if method in owners:
                        raise RouteConflictError(
                            f"{method} {path} is declared by {owners[method].name} "
                            f"and {mounted.name}"
                        )
                    owners[method] = mounted
        self._matcher = _RouteMatcher(list(self._owners))

    def route_count(self) -> int:
        return sum(len(methods) for methods in self._owners.values())

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> _Answer:
        """Serve one request; returns (status, headers, body)."""
        request_id = str(uuid.uuid4())

        def refuse(status: int, code: str, message: str, **extra: str) -> _Answer:
            headers = {"Content-Type": "application/json", "X-Request-Id": request_id, **extra}
            return status, headers, _error_body(code, message, request_id)

        try:
            route = self._matcher.match_route(path).route
        except ValueError:
            return refuse(404, "NOT_FOUND", f"no route for {path.split('?', maxsplit=1)[0]}")
        owners = self._owners[route]
        mounted = owners.get(method) or (
            owners.get("GET") if method in ("HEAD", "OPTIONS") else None
        )
        if mounted is None:
            allow = ", ".join(sorted(owners))
            return refuse(405, "METHOD_NOT_ALLOWED", f"{method} is not allowed here", Allow=allow)
        event = mounted.converter.create_lambda_event(method, path, dict(headers), body)
        event["requestContext"]["requestId"] = request_id
        event["requestContext"]["stage"] = "api"
        context = LambdaContext(function_name=f"{mounted.name}-api", memory_size=512)
        try:
            event, context = self._authorize(mounted, path, event, context)
        except _Refused as refused:
            answer = refused.answer
            assert answer.status is not None  # the authorizer's answers all have one
            extra = {} if answer.retry_after is None else {"Retry-After": str(answer.retry_after)}
            return refuse(answer.status, answer.code, answer.message, **extra)
        return self._to_http(mounted.app(event, context))

    @staticmethod
    def _authorize(mounted: _MountedApp, path: str, event: Any, context: Any) -> tuple[Any, Any]:
        """Run the route's authorizer as API Gateway does (401 / 403 / 503 / allow)."""
        try:
            return mounted.authorizer.authorize(path, event, context)
        except ForbiddenError as exc:
            raise _Refused("ACCESS_DENIED") from exc
        except LocalGatewayException as exc:
            if exc.CODE == 401:  # no token
                raise _Refused("UNAUTHORIZED") from exc
            raise _Refused("AUTHORIZER_CONFIGURATION_ERROR") from exc  # a malformed answer
        except Exception as exc:
            # API Gateway's contract: a TOKEN authorizer that fails with "Unauthorized" is a 401;
            # any other error is its AUTHORIZER_CONFIGURATION_ERROR.
            if str(exc) == "Unauthorized":
                raise _Refused("UNAUTHORIZED") from exc
            get_logger().exception("authorizer failed", path=path)
            raise _Refused("AUTHORIZER_CONFIGURATION_ERROR") from exc

    @staticmethod
    def _to_http(response: dict[str, Any]) -> _Answer:
        import base64

        headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(v) for v in values)
        raw = response.get("body") or b""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = raw.encode() if isinstance(raw, str) else raw
        return int(response["statusCode"]), headers, body


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle on, a keep-alive client's delayed ACK
    # holds the body back ~40 ms on every response.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        server = self.server
        if not server.enter():
            self._send(
                503,
                {"Content-Type": "application/json", "Connection": "close"},
                _error_body("SERVICE_UNAVAILABLE", "shutting down", ""),
            )
            return
        started = time.perf_counter()
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                too_large = GATEWAY_RESPONSES["REQUEST_TOO_LARGE"]
                self._send(
                    413,
                    {"Content-Type": "application/json"},
                    _error_body(too_large.code, too_large.message, ""),
                )
                return
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items()}
            try:
                status, out_headers, out = server.gateway.handle(
                    self.command, self.path, headers, body
                )
            except Exception:
                get_logger().exception("gateway failure", path=self.path)
                status, out_headers, out = (
                    500,
                    {"Content-Type": "application/json"},
                    _error_body("INTERNAL_ERROR", "an internal error occurred", ""),
                )
            self._send(status, out_headers, out)
            if server.access_log:
                millis = (time.perf_counter() - started) * 1000
                print(f"{self.command} {self.path} {status} {millis:.1f}ms", flush=True)  # noqa: T201
        finally:
            server.leave()

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def __getattr__(self, name: str) -> Any:
        # The stdlib serves method X with `do_X`: every method is the gateway's to answer (an
        # unknown one, such as TRACE, gets its 405 envelope instead of the stdlib's 501 page).
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's per-request stderr lines (the gateway logs its own)."""


class GatewayServer(ThreadingHTTPServer):
    """A threaded HTTP server that can drain: stop accepting, then wait for in-flight work."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog (5) overflows when many clients connect at once, and a
    # dropped SYN is retried only after 1 s.
    request_queue_size = 128

    def __init__(self, host: str, port: int, gateway: Gateway, *, access_log: bool = False):
        super().__init__((host, port), _Handler)
        self.gateway = gateway
        self.access_log = access_log
        self.draining = False
        self._in_flight = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def enter(self) -> bool:
        with self._cond:
            if self.draining:
                return False
            self._in_flight += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def drain(self, timeout: float = 30.0) -> int:
        """Stop accepting, wait up to `timeout` s for in-flight requests; returns those left."""
        with self._cond:
            self.draining = True
        self.shutdown()  # stops the accept loop; handler threads keep running
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            left = self._in_flight
        self.server_close()
        return left
