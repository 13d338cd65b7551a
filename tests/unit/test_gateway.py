"""The local API gateway: routing across apps, the route's authorizer, request ids.

`Gateway.handle` is driven in-process. Only `TestGatewayServerLoopback` opens sockets
(a server on 127.0.0.1, port 0) to check parallel serving and draining.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devcloud import gateway as gateway_module
from devcloud.gateway import Gateway, GatewayServer, RouteConflictError
from dotmac.core.api import Api, Call, ConcurrentChalice
from tests.fakes import token_authorizer

TOKENS: dict[str, dict[str, str]] = {
    "reader": {"tid": "acme", "sub": "u1", "roles": "r", "perms": "isp:items:read", "apps": "isp"},
}


AUTHORIZER = token_authorizer(TOKENS)


def build_apps() -> dict[str, Any]:
    isp = Api("isp", authorizer=AUTHORIZER, limiter=lambda ctx, kind, mutation: None)
    crm = Api("crm")

    @isp.route("/items/{item_id}", permission="isp:items:read")
    def get_item(call: Call, item_id: str) -> dict[str, Any]:
        ctx = call.ctx
        return {
            "app": "isp",
            "item_id": item_id,
            "tenant": ctx.tenant_id,
            "user": ctx.user_id,
            "perms": sorted(ctx.permissions),
            "request_id": call.request_id,
            "query": call.query,
        }

    @crm.route(
        "/leads/{lead_id}/notes/{note_id}",
        methods=["GET", "POST"],
        public=True,
        changes_state=False,
    )
    def lead_note(call: Call, lead_id: str, note_id: str) -> dict[str, Any]:
        body = json.loads(call.request.raw_body or b"null")
        return {"app": "crm", "lead_id": lead_id, "note_id": note_id, "body": body}

    @crm.route("/leads/static/notes/{note_id}", public=True)
    def static_note(call: Call, note_id: str) -> dict[str, Any]:
        return {"app": "crm", "static": True, "note_id": note_id}

    return {"isp": isp.app, "crm": crm.app}


@pytest.fixture(scope="module")
def gateway() -> Gateway:
    return Gateway(build_apps())


def _json(body: bytes) -> Any:
    return json.loads(body)


def _assert_envelope(body: bytes, code: str) -> dict[str, Any]:
    payload = _json(body)
    assert set(payload) == {"error"}
    error = payload["error"]
    assert set(error) == {"code", "message", "details", "request_id"}
    assert error["code"] == code
    assert error["details"] == []
    assert error["message"]
    return error


class TestDispatch:
    def test_each_path_reaches_its_app_with_path_params(self, gateway: Gateway) -> None:
        status, _, body = gateway.handle(
            "GET", "/api/v1/isp/items/i-7?expand=a", {"Authorization": "reader"}, None
        )
        assert status == 200
        assert _json(body)["app"] == "isp"
        assert _json(body)["item_id"] == "i-7"
        assert _json(body)["query"] == {"expand": "a"}

        status, _, body = gateway.handle("GET", "/api/v1/crm/leads/l-1/notes/n-2", {}, None)
        assert status == 200
        assert _json(body) == {"app": "crm", "lead_id": "l-1", "note_id": "n-2", "body": None}

    def test_concrete_segment_wins_over_a_capture(self, gateway: Gateway) -> None:
        status, _, body = gateway.handle("GET", "/api/v1/crm/leads/static/notes/n-3", {}, None)
        assert status == 200
        assert _json(body) == {"app": "crm", "static": True, "note_id": "n-3"}

    def test_post_body_reaches_the_view(self, gateway: Gateway) -> None:
        status, headers, body = gateway.handle(
            "POST",
            "/api/v1/crm/leads/l-1/notes/n-2",
            {"Content-Type": "application/json"},
            b'{"text": "hello"}',
        )
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        assert _json(body)["body"] == {"text": "hello"}

    @pytest.mark.parametrize("app", ["isp", "crm"])
    def test_every_apps_health_is_served(self, gateway: Gateway, app: str) -> None:
        status, _, body = gateway.handle("GET", f"/api/v1/{app}/health/live", {}, None)
        assert (status, _json(body)) == (200, {"status": "ok"})

    def test_route_count_is_the_union(self) -> None:
        apps = build_apps()
        expected = sum(len(methods) for a in apps.values() for methods in a.routes.values())
        assert Gateway(apps).route_count() == expected

    @pytest.mark.parametrize(
        "path", ["/nope", "/api/v1/isp/items", "/api/v1/erp/items/1", "/api/v1/isp/items/1/x?q=1"]
    )
    def test_unknown_path_is_404_envelope(self, gateway: Gateway, path: str) -> None:
        status, headers, body = gateway.handle("GET", path, {}, None)
        assert status == 404
        assert headers["Content-Type"] == "application/json"
        error = _assert_envelope(body, "NOT_FOUND")
        assert error["message"] == f"no route for {path.split('?', maxsplit=1)[0]}"
        uuid.UUID(error["request_id"])

    def test_wrong_method_is_405_envelope_with_allow(self, gateway: Gateway) -> None:
        status, headers, body = gateway.handle("DELETE", "/api/v1/crm/leads/l/notes/n", {}, None)
        assert status == 405
        assert headers["Allow"] == "GET, POST"
        _assert_envelope(body, "METHOD_NOT_ALLOWED")

    def test_wrong_method_on_a_protected_route_is_405_before_auth(self, gateway: Gateway) -> None:
        status, headers, body = gateway.handle("POST", "/api/v1/isp/items/1", {}, None)
        assert status == 405
        assert headers["Allow"] == "GET"
        _assert_envelope(body, "METHOD_NOT_ALLOWED")


class TestRouteConflicts:
    def test_same_path_and_method_in_two_apps_is_refused(self) -> None:
        first, second = ConcurrentChalice("first"), ConcurrentChalice("second")
        first.route("/shared")(lambda: {})
        second.route("/shared", methods=["GET", "PUT"])(lambda: {})
        with pytest.raises(RouteConflictError, match=r"GET /shared .*first.*second"):
            Gateway({"first": first, "second": second})

    def test_two_apps_with_the_same_base_conflict_on_health(self) -> None:
        with pytest.raises(RouteConflictError):
            Gateway({"a": Api("isp").app, "b": Api("isp").app})

    def test_same_path_different_methods_in_two_apps(self) -> None:
        reader, writer = ConcurrentChalice("reader"), ConcurrentChalice("writer")

        @reader.route("/shared", methods=["GET"])
        def read() -> dict[str, str]:
            return {"app": "reader"}

        @writer.route("/shared", methods=["POST"])
        def write() -> dict[str, str]:
            return {"app": "writer"}

        gateway = Gateway({"reader": reader, "writer": writer})
        assert gateway.handle("POST", "/shared", {}, None)[0] == 200
        status, _, body = gateway.handle("GET", "/shared", {}, None)
        assert (status, _json(body)) == (200, {"app": "reader"})


class TestAuthorizer:
    def test_missing_token_is_401_envelope(self, gateway: Gateway) -> None:
        status, _, body = gateway.handle("GET", "/api/v1/isp/items/1", {}, None)
        assert status == 401
        _assert_envelope(body, "UNAUTHENTICATED")

    def test_denied_token_is_403_envelope(self, gateway: Gateway) -> None:
        status, _, body = gateway.handle(
            "GET", "/api/v1/isp/items/1", {"Authorization": "forged"}, None
        )
        assert status == 403
        _assert_envelope(body, "FORBIDDEN")

    def test_allowed_token_context_reaches_the_view(self, gateway: Gateway) -> None:
        status, _, body = gateway.handle(
            "GET", "/api/v1/isp/items/1", {"authorization": "reader"}, None
        )
        assert status == 200
        payload = _json(body)
        assert (payload["tenant"], payload["user"]) == ("acme", "u1")
        assert payload["perms"] == ["isp:items:read"]

    def test_an_authorizer_that_fails_is_a_503_envelope_with_retry_after(self) -> None:
        """API Gateway's AUTHORIZER_FAILURE (e.g. the authorizer could not read the table)."""
        from chalice import Chalice
        from chalice.app import AuthRequest

        def unreachable(request: AuthRequest) -> Any:
            raise ConnectionError("the table did not answer")

        api = Api("isp", authorizer=Chalice("authorizers").authorizer()(unreachable))

        @api.route("/items", permission="isp:items:read")
        def items(call: Call) -> list[str]:
            raise AssertionError("the app is not reached")

        status, headers, body = Gateway({"isp": api.app}).handle(
            "GET", "/api/v1/isp/items", {"Authorization": "reader"}, None
        )
        assert (status, headers["Retry-After"]) == (503, "1")
        assert (
            _assert_envelope(body, "SERVICE_UNAVAILABLE")["request_id"] == headers["X-Request-Id"]
        )

    def test_public_routes_of_an_app_without_authorizer_need_no_token(
        self, gateway: Gateway
    ) -> None:
        assert gateway.handle("GET", "/api/v1/crm/leads/l/notes/n", {}, None)[0] == 200


class TestRequestId:
    FIXED = uuid.UUID("12345678-1234-5678-1234-567812345678")

    @pytest.fixture
    def fixed_request_id(self, monkeypatch: pytest.MonkeyPatch) -> str:
        # Only the gateway's own `uuid` is replaced: the app must use the id it is given.
        fake = types.SimpleNamespace(uuid4=lambda: self.FIXED)
        monkeypatch.setattr(gateway_module, "uuid", fake)
        return str(self.FIXED)

    def test_request_id_propagates_to_the_app_and_response(
        self, gateway: Gateway, fixed_request_id: str
    ) -> None:
        status, headers, body = gateway.handle(
            "GET", "/api/v1/isp/items/1", {"Authorization": "reader"}, None
        )
        assert status == 200
        assert headers["X-Request-Id"] == fixed_request_id
        assert _json(body)["request_id"] == fixed_request_id

    def test_request_id_in_app_errors(self, gateway: Gateway, fixed_request_id: str) -> None:
        status, headers, body = gateway.handle(
            "POST", "/api/v1/crm/leads/l/notes/n", {"Content-Type": "text/plain"}, b"x"
        )
        assert status == 415
        assert headers["X-Request-Id"] == fixed_request_id
        assert _json(body)["error"]["request_id"] == fixed_request_id

    def test_request_id_in_gateway_errors(self, gateway: Gateway, fixed_request_id: str) -> None:
        _, _, body = gateway.handle("GET", "/nope", {}, None)
        assert _json(body)["error"]["request_id"] == fixed_request_id

    def test_each_request_gets_a_new_id(self, gateway: Gateway) -> None:
        ids = {
            gateway.handle("GET", "/api/v1/crm/health/live", {}, None)[1]["X-Request-Id"]
            for _ in range(3)
        }
        assert len(ids) == 3


# --------------------------------------------------------------------------------------
# Loopback sockets from here on.


class _Gate:
    """Views that block, so tests can hold requests in flight."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=5)
        self.entered = threading.Event()
        self.release = threading.Event()


def _server_apps(gate: _Gate) -> dict[str, Any]:
    api = Api("slow")

    @api.route("/together", public=True)
    def together(call: Call) -> dict[str, Any]:
        gate.barrier.wait()  # raises BrokenBarrierError (-> 500) unless all are in flight
        return {"ok": True}

    @api.route("/hold", public=True)
    def hold(call: Call) -> dict[str, Any]:
        gate.entered.set()
        if not gate.release.wait(timeout=10):
            raise RuntimeError("never released")
        return {"released": True}

    return {"slow": api.app}


def _get(port: int, path: str, out: list[Any]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        out.append((response.status, dict(response.getheaders()), response.read()))
    finally:
        conn.close()


class TestGatewayServerLoopback:
    """Opens a real (loopback) listening socket: GatewayServer on 127.0.0.1, port 0."""

    @pytest.fixture
    def gate(self) -> Iterator[_Gate]:
        gate = _Gate(4)
        yield gate
        gate.release.set()
        gate.barrier.abort()

    @pytest.fixture
    def server(self, gate: _Gate) -> Iterator[GatewayServer]:
        server = GatewayServer("127.0.0.1", 0, Gateway(_server_apps(gate)))
        server.start()
        yield server
        gate.release.set()
        if not server.draining:
            server.drain(timeout=5)

    def test_serves_a_request(self, server: GatewayServer) -> None:
        out: list[Any] = []
        _get(server.port, "/api/v1/slow/health/live", out)
        status, headers, body = out[0]
        assert status == 200
        assert _json(body) == {"status": "ok"}
        assert int(headers["Content-Length"]) == len(body)
        uuid.UUID(headers["X-Request-Id"])

    def test_any_other_method_is_a_405_in_the_envelope(self, server: GatewayServer) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        try:
            for method in ("TRACE", "PROPFIND"):  # the stdlib answered these 501, in HTML
                conn.request(method, "/api/v1/slow/health/live")
                response = conn.getresponse()
                body = response.read()
                assert response.status == 405, method
                error = _assert_envelope(body, "METHOD_NOT_ALLOWED")
                assert error["request_id"] == response.getheader("X-Request-Id")
        finally:
            conn.close()

    def test_connections_send_without_nagle_delay(
        self, server: GatewayServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Headers and body leave in two writes; with Nagle on, a keep-alive client's delayed
        ACK held every response back ~40 ms."""
        nodelay: list[int] = []
        setup = gateway_module._Handler.setup

        def watched(handler: Any) -> None:
            setup(handler)
            nodelay.append(handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        monkeypatch.setattr(gateway_module._Handler, "setup", watched)
        out: list[Any] = []
        _get(server.port, "/api/v1/slow/health/live", out)
        assert out[0][0] == 200
        assert len(nodelay) == 1 and nodelay[0] != 0

    def test_requests_are_served_in_parallel(self, server: GatewayServer) -> None:
        out: list[Any] = []
        threads = [
            threading.Thread(target=_get, args=(server.port, "/api/v1/slow/together", out))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert sorted(status for status, _, _ in out) == [200, 200, 200, 200]

    def test_drain_waits_for_in_flight_then_refuses_connections(
        self, server: GatewayServer, gate: _Gate
    ) -> None:
        out: list[Any] = []
        client = threading.Thread(target=_get, args=(server.port, "/api/v1/slow/hold", out))
        client.start()
        assert gate.entered.wait(timeout=5)

        left: list[int] = []
        drainer = threading.Thread(target=lambda: left.append(server.drain(timeout=15)))
        drainer.start()
        drainer.join(timeout=0.5)
        assert drainer.is_alive(), "drain returned while a request was still in flight"
        assert out == []

        gate.release.set()
        drainer.join(timeout=15)
        client.join(timeout=15)
        assert left == [0]
        status, headers, body = out[0]
        assert (status, _json(body)) == (200, {"released": True})
        assert headers.get("Connection") == "close"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()

    def test_drain_timeout_reports_requests_left(self, server: GatewayServer, gate: _Gate) -> None:
        out: list[Any] = []
        client = threading.Thread(target=_get, args=(server.port, "/api/v1/slow/hold", out))
        client.start()
        assert gate.entered.wait(timeout=5)
        assert server.drain(timeout=0.1) == 1
        gate.release.set()
        client.join(timeout=15)
        assert out[0][0] == 200

    def test_idle_keep_alive_connection_is_refused_new_work_after_drain(
        self, server: GatewayServer
    ) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        try:
            conn.request("GET", "/api/v1/slow/health/live")
            first = conn.getresponse()
            first.read()
            assert first.status == 200
            assert server.drain(timeout=5) == 0  # an idle connection is not in flight
            conn.request("GET", "/api/v1/slow/health/live")
            second = conn.getresponse()
            body = second.read()
            assert second.status == 503
            assert second.getheader("Connection") == "close"
            assert _json(body)["error"]["code"] == "SERVICE_UNAVAILABLE"
        finally:
            conn.close()
