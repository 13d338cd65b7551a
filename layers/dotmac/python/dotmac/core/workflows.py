"""Starting Step Functions executions by the state machine's logical name."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from dotmac.core import aws
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
