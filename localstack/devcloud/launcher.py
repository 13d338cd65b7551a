"""`python -m devcloud` as a child process on free ports, for clients that talk HTTP to the
real local platform: the e2e tests and the load test (`make load`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
STOP_TIMEOUT = 40.0  # the launcher drains for up to 30 s


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalStack:
    """The running platform: its URLs and a tiny HTTP client."""

    api: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """One HTTP request to the API; error statuses are answers too."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own loopback API
            self.api + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def boto3(self, service: str) -> Any:
        """A boto3 client of the emulator."""
        import boto3

        session: Any = boto3.session.Session()  # any service name: not one the stubs list
        return session.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - the emulator's dummy credentials
        )

    def log(self) -> str:
        """Everything the platform printed so far."""
        return self.log_path.read_text(errors="replace")


def _wait_ready(stack: LocalStack) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"local stack exited early:\n{stack.log()}")
        try:
            if stack.request("GET", "/health/ready").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"local stack not ready in {START_TIMEOUT:.0f}s:\n{stack.log()}")


@contextmanager
def launched(log_path: Path, stage: str, **env: str) -> Iterator[LocalStack]:
    """Start the seeded platform on free ports with the `DOTMAC_*` settings in `env` (none
    inherited), its output in `log_path`; yield once `/health/ready` answers 200. On exit,
    SIGTERM (it drains and exits 0), killed if it has not stopped within STOP_TIMEOUT."""
    api_port, emulator_port = free_port(), free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOTMAC_"))},
        "DOTMAC_API_PORT": str(api_port),
        "DOTMAC_EMULATOR_PORT": str(emulator_port),
        "DOTMAC_STAGE": stage,
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devcloud"],
            cwd=REPO,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = LocalStack(
        f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{emulator_port}", process, log_path
    )
    try:
        _wait_ready(stack)
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
