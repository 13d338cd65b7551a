"""boto3 clients, one per service per process, built lazily.

The endpoint comes from `AWS_ENDPOINT_URL` (boto3 honours it natively), so the same code
talks to moto, LocalStack or AWS without knowing which one answers.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def client(service: str) -> Any:
    """A shared, thread-safe boto3 client for `service` in the configured region."""
    found = _clients.get(service)
    if found is not None:
        return found
    with _lock:
        if service not in _clients:
            import boto3
            from botocore.config import Config

            from dotmac.core.settings import get_settings

            session: Any = boto3.session.Session()
            _clients[service] = session.client(
                service,
                region_name=get_settings().region,
                config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2),
            )
        return _clients[service]


def reset_clients() -> None:
    """Drop cached clients (tests switch endpoints between cases)."""
    with _lock:
        _clients.clear()
