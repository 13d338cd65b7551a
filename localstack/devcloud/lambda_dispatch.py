"""Run moto's Lambda invocations in-process, on the real handler functions.

Stock moto runs a Lambda function in Docker. The local cloud has no Docker, so this module
replaces `LambdaFunction._invoke_lambda` — the one method every path goes through (boto3
`invoke`, Step Functions tasks, S3 notifications, EventBridge targets) — with a call to the
registered Python handler. It is pinned to the moto version it was written against;
`tests/integration/test_lambda_dispatch.py` fails loudly if moto's internals move.
"""

from __future__ import annotations

import json
import threading
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import moto
from moto.awslambda.models import LambdaFunction

SUPPORTED_MOTO = "5.2.5"
PATCHED_METHOD = "_invoke_lambda"

Handler = Callable[[Any, Any], Any]

_handlers: dict[str, Handler] = {}
_lock = threading.Lock()
_original: Any = None


class LambdaContext:
    """The subset of Lambda's context object handlers and Powertools read."""

    def __init__(self, function: LambdaFunction) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = int(function.memory_size or 128)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = "local"
        self._timeout_ms = int(function.timeout or 30) * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self._timeout_ms


def register(function_name: str, handler: Handler) -> None:
    """Route invocations of the emulator's function `function_name` to `handler`."""
    with _lock:
        _handlers[function_name] = handler


def registered() -> dict[str, Handler]:
    with _lock:
        return dict(_handlers)


def _invoke_in_process(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    """moto's contract: return (payload as text, errored?, log text)."""
    handler = _handlers.get(self.function_name)
    if handler is None:
        message = f"no in-process handler for {self.function_name}"
        return json.dumps({"errorMessage": message, "errorType": "HandlerNotFound"}), True, message
    if isinstance(event, str | bytes):
        event = json.loads(event or "{}")
    try:
        result = handler(event if event is not None else {}, LambdaContext(self))
    except Exception as exc:
        # Lambda reports an unhandled error as a payload with errorType/errorMessage.
        error: dict[str, object] = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "stackTrace": traceback.format_exc().splitlines(),
        }
        return json.dumps(error), True, traceback.format_exc()
    return json.dumps(result), False, ""


def check_moto_version() -> None:
    """Refuse to patch a moto whose internals this module was not written against."""
    if moto.__version__ != SUPPORTED_MOTO:
        raise RuntimeError(
            f"devcloud.lambda_dispatch supports moto {SUPPORTED_MOTO}, found {moto.__version__}: "
            "re-check LambdaFunction._invoke_lambda and update SUPPORTED_MOTO"
        )
    if not callable(getattr(LambdaFunction, PATCHED_METHOD, None)):
        raise RuntimeError(f"moto.awslambda.models.LambdaFunction.{PATCHED_METHOD} is gone")


def install() -> None:
    """Patch moto (idempotent)."""
    global _original
    check_moto_version()
    if _original is None:
        _original = getattr(LambdaFunction, PATCHED_METHOD)
        setattr(LambdaFunction, PATCHED_METHOD, _invoke_in_process)


def uninstall() -> None:
    """Restore moto's own method."""
    global _original
    if _original is not None:
        setattr(LambdaFunction, PATCHED_METHOD, _original)
        _original = None
