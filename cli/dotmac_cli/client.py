"""HTTP client for the DotMac API: one login, envelope-aware requests, typed errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from dotmac_cli import __version__

Json = dict[str, Any]

PLATFORM_TENANT = "platform"
LOGIN_PATH = "/api/v1/auth/login"
CONNECT_RETRIES = 3
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def default_transport() -> httpx.BaseTransport:
    """Retry connections that fail to open (never a request the server may have seen)."""
    return httpx.HTTPTransport(retries=CONNECT_RETRIES)


# Every ApiClient gets its transport from here; tests point it at an httpx.MockTransport.
transport_factory: Callable[[], httpx.BaseTransport] = default_transport


class ApiError(Exception):
    """A 4xx/5xx answer, carrying the API's error envelope."""

    def __init__(self, status: int, envelope: Json) -> None:
        error = envelope["error"]
        self.status = status
        self.envelope = envelope
        self.code = str(error.get("code") or f"HTTP_{status}")
        self.message = str(error.get("message") or "")
        self.details: list[Json] = [d for d in error.get("details") or [] if isinstance(d, dict)]
        self.request_id: str | None = error.get("request_id")
        super().__init__(f"{status} {self.code}: {self.message}")

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """Read the error envelope, or build one when the body is not one (e.g. a proxy's page)."""
        body = _json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            message = body.get("message") if isinstance(body, dict) else None
            error = {
                "code": f"HTTP_{response.status_code}",
                "message": str(message or response.text[:200] or response.reason_phrase),
                "details": [],
            }
        if not error.get("request_id"):
            error["request_id"] = response.headers.get("x-request-id")
        return cls(response.status_code, {"error": error})


@dataclass(frozen=True)
class Answer:
    """A successful answer: status, parsed body (the success envelope) and headers."""

    status: int
    body: Json
    headers: httpx.Headers

    @property
    def data(self) -> Json:
        data = self.body.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def attributes(self) -> Json:
        attributes = self.data.get("attributes")
        return attributes if isinstance(attributes, dict) else {}


class ApiClient:
    """Talks to one DotMac endpoint as one platform operator; logs in on first use."""

    def __init__(
        self,
        endpoint: str,
        email: str,
        password: str,
        *,
        tenant: str = PLATFORM_TENANT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._credentials = {"tenant": tenant, "email": email, "password": password}
        self._token: str | None = None
        self._http = httpx.Client(
            base_url=self.endpoint,
            timeout=TIMEOUT,
            transport=transport or transport_factory(),
            headers={"Accept": "application/json", "User-Agent": f"dotmac-cli/{__version__}"},
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def login(self) -> None:
        """Exchange the operator's credentials for an access token."""
        answer = self._send("POST", LOGIN_PATH, json=self._credentials)
        token = answer.attributes.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(
                answer.status,
                {"error": {"code": "BAD_LOGIN_ANSWER", "message": "login returned no token"}},
            )
        self._token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: Mapping[str, str | int | None] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send an authenticated request; raise ApiError on any 4xx/5xx."""
        if self._token is None:
            self.login()
        auth = {"Authorization": f"Bearer {self._token}", **(headers or {})}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self._send(method, path, json=json, params=query, headers=auth)

    def get(self, path: str, **params: str | int | None) -> Answer:
        """GET a resource or a page of a collection."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Json, *, headers: Mapping[str, str] | None = None) -> Answer:
        """POST a JSON body."""
        return self.request("POST", path, json=json, headers=headers)

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        response = self._http.request(method, path, json=json, params=params, headers=headers)
        if response.is_error:
            raise ApiError.from_response(response)
        body = _json_or_none(response)
        body = body if isinstance(body, dict) else {}
        return Answer(response.status_code, body, response.headers)


def _json_or_none(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
