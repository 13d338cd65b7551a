"""Start the real local stack (`python -m devcloud`) on free ports and talk HTTP to it."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90


def free_port() -> int:
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
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.api + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, dict(error.headers), error.read())

    def boto3(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def log(self) -> str:
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
    raise RuntimeError(f"local stack not ready in {START_TIMEOUT}s:\n{stack.log()}")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    api_port, emulator_port = free_port(), free_port()
    log_path = tmp_path_factory.mktemp("devcloud") / "devcloud.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOTMAC_"))},
        "DOTMAC_API_PORT": str(api_port),
        "DOTMAC_EMULATOR_PORT": str(emulator_port),
        "DOTMAC_STAGE": "e2e",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devcloud"],
            cwd=REPO,
            env=env,
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
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    # Graceful shutdown is part of the contract: SIGTERM drains and exits 0.
    assert process.returncode == 0, f"exit code {process.returncode}:\n{stack.log()[-3000:]}"
    assert "stopped (0 requests cut off)" in stack.log()
