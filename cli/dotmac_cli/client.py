"""HTTP client for the DotMac API: one login, envelope-aware requests, typed errors."""

from __future__ import annotations

import json as jsonlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from dotmac_cli import __version__

Json = dict[str, Any]

PLATFORM_TENANT = "platform"
LOGIN_PATH = "/api/v1/auth/login"
REFRESH_PATH = "/api/v1/auth/refresh"
# Access tokens with less than this left are refreshed before use.
TOKEN_MARGIN_SECONDS = 30
CONNECT_RETRIES = 3
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def default_transport() -> httpx.BaseTransport:
    """Retry connections that fail to open (never a request the server may have seen)."""
    return httpx.HTTPTransport(retries=CONNECT_RETRIES)


# Every ApiClient gets its transport from here; tests point it at an httpx.MockTransport.
transport_factory: Callable[[], httpx.BaseTransport] = default_transport


class SessionCache:
    """Sessions kept between invocations (like a browser's cookie jar), so each command does
    not sign in again: `DOTMAC_CLI_CACHE` names the file (`none` turns it off), default
    `~/.cache/dotmac/sessions.json`, readable by its owner only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @classmethod
    def from_environment(cls) -> SessionCache:
        """The cache the environment asks for."""
        configured = os.environ.get("DOTMAC_CLI_CACHE")
        if configured and configured.lower() == "none":
            return cls(None)
        default = Path.home() / ".cache" / "dotmac" / "sessions.json"
        return cls(Path(configured) if configured else default)

    def _load(self) -> dict[str, Json]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = jsonlib.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Json | None:
        """The stored session for `key`, if any."""
        found = self._load().get(key)
        return found if isinstance(found, dict) else None

    def put(self, key: str, session: Json | None) -> None:
        """Store (or, with None, forget) the session for `key`."""
        if self.path is None:
            return
        data = self._load()
        if session is None:
            data.pop(key, None)
        else:
            data[key] = session
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        self.path.write_text(jsonlib.dumps(data))


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
        cache: SessionCache | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._credentials = {"tenant": tenant, "email": email, "password": password}
        self._token: str | None = None
        self._cache = cache or SessionCache.from_environment()
        self._cache_key = f"{self.endpoint}|{tenant}|{email}"
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
        self._keep(self._send("POST", LOGIN_PATH, json=self._credentials))

    def _keep(self, answer: Answer) -> None:
        token = answer.attributes.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(
                answer.status,
                {"error": {"code": "BAD_LOGIN_ANSWER", "message": "login returned no token"}},
            )
        self._token = token
        expires_in = answer.attributes.get("expires_in")
        self._cache.put(
            self._cache_key,
            {
                "access_token": token,
                "expires_at": time.time() + (expires_in if isinstance(expires_in, int) else 0),
                "refresh_token": answer.attributes.get("refresh_token"),
            },
        )

    def _resume(self) -> None:
        """Use the cached session: its access token if fresh, else its refresh token, else
        sign in."""
        cached = self._cache.get(self._cache_key) or {}
        if float(cached.get("expires_at") or 0) - TOKEN_MARGIN_SECONDS > time.time():
            self._token = str(cached["access_token"])
            return
        refresh = cached.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            try:
                self._keep(self._send("POST", REFRESH_PATH, json={"refresh_token": refresh}))
                return
            except ApiError:
                self._cache.put(self._cache_key, None)
        self.login()

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
        resumed = self._token is None
        if resumed:
            self._resume()
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            auth = {"Authorization": f"Bearer {self._token}", **(headers or {})}
            return self._send(method, path, json=json, params=query, headers=auth)
        except ApiError as error:
            if error.status != 401 or not resumed:
                raise
        # A cached session the server no longer accepts: sign in once and try again.
        self._cache.put(self._cache_key, None)
        self.login()
        auth = {"Authorization": f"Bearer {self._token}", **(headers or {})}
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
