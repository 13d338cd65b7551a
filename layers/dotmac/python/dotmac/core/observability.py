"""Powertools Logger, Metrics and Tracer, each built once and lazily.

Tracing imports the X-Ray SDK (~0.3 s), so it is off unless `DOTMAC_TRACING=true`.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

SERVICE = "dotmac"
NAMESPACE = "DotMac"


_logger_lock = threading.Lock()


@lru_cache(maxsize=1)
def get_logger() -> Logger:
    """The structured JSON logger (service `dotmac`); built once even under threads."""
    from aws_lambda_powertools import Logger

    with _logger_lock:  # lru_cache may run this twice at once; Logger setup is not re-entrant
        return _build_logger(Logger)


_built: list[Any] = []


def _build_logger(logger_class: Any) -> Any:
    if not _built:
        _built.append(logger_class(service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE)))
    return _built[0]


@lru_cache(maxsize=1)
def get_metrics() -> Metrics:
    """The EMF metrics emitter (namespace `DotMac`)."""
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=NAMESPACE, service=SERVICE)


def tracing_enabled() -> bool:
    return os.environ.get("DOTMAC_TRACING", "false").lower() == "true"


@lru_cache(maxsize=1)
def get_tracer() -> Any:
    """The X-Ray tracer, or None when tracing is off."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


def http_middleware(event: Any, get_response: Any) -> Any:
    """Chalice 'http' middleware: per-request log keys, metrics flush, optional tracing.

    Log keys are thread-local so concurrent requests in the local gateway never mix them.
    """
    logger = get_logger()
    context = getattr(event, "context", None) or {}
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        request_id=context.get("requestId"), path=getattr(event, "path", None)
    )
    tracer = get_tracer()
    try:
        if tracer is None:
            return get_response(event)
        with tracer.provider.in_subsegment(f"## {getattr(event, 'path', 'request')}"):
            return get_response(event)
    finally:
        metrics = get_metrics()
        if metrics.metric_set:
            metrics.flush_metrics()
        logger.thread_safe_clear_keys()
