"""Step Functions workflows: starting executions by the state machine's logical name, and
the error handling every workflow step shares."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from dotmac.core import aws
from dotmac.core.errors import DependencyUnavailableError, DotmacError
from dotmac.core.settings import get_settings

_account: list[str] = []
_lock = threading.Lock()


def account_id() -> str:
    """This deployment's account (`DOTMAC_ACCOUNT_ID`, else one STS call per container)."""
    configured = os.environ.get("DOTMAC_ACCOUNT_ID")
    if configured:
        return configured
    with _lock:
        if not _account:
            _account.append(str(aws.client("sts").get_caller_identity()["Account"]))
        return _account[0]


def state_machine_arn(logical: str) -> str:
    settings = get_settings()
    name = settings.physical_name(logical)
    return f"arn:aws:states:{settings.region}:{account_id()}:stateMachine:{name}"


def start(logical: str, name: str, payload: dict[str, Any]) -> str:
    """Start an execution called `name` (unique per machine, so a repeat starts nothing new)
    and return its ARN."""
    machine = state_machine_arn(logical)
    client = aws.client("stepfunctions")
    try:
        answer = client.start_execution(
            stateMachineArn=machine, name=name, input=json.dumps(payload, default=str)
        )
    except client.exceptions.ExecutionAlreadyExists:
        return machine.replace(":stateMachine:", ":execution:") + f":{name}"
    return str(answer["executionArn"])


# --- steps of a workflow ------------------------------------------------------------------


class TransientStepError(Exception):
    """A step failed for a reason worth retrying (the state machine's Retry matches the name)."""


class StepFailedError(Exception):
    """A step failed for good; the Catch compensates."""


def guarded(name: str, call: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
    """Run one step; transient problems become `TransientStepError`, the rest `StepFailedError`."""
    try:
        return call() or {}
    except (StepFailedError, TransientStepError):
        raise
    except DependencyUnavailableError as exc:
        raise TransientStepError(f"{name}: {exc.message}") from exc
    except DotmacError as exc:
        raise StepFailedError(f"{name}: {exc.message}") from exc
    except Exception as exc:
        from dotmac.core.api import as_domain_error

        if isinstance(as_domain_error(exc), DependencyUnavailableError):
            raise TransientStepError(f"{name}: {exc}") from exc
        raise


def error_text(event: dict[str, Any]) -> str:
    """The `Error: cause` of the failure a Catch put in the event's `error` (500 characters)."""
    error = event.get("error") or {}
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
        cause = str(parsed.get("errorMessage") or cause)
    except ValueError:
        pass
    return f"{error.get('Error', 'Error')}: {cause}"[:500]
