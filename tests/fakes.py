"""Test doubles shared by several test modules."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from chalice import AuthResponse, Chalice
from chalice.app import AuthRequest

from infra.resources import STACK, Function, Queue, QueueTrigger, Stack, StateMachine

NOTIFY_ASL = {
    "StartAt": "Notify",
    "States": {"Notify": {"Type": "Task", "Resource": "${NotificationsWorkerArn}", "End": True}},
}


def token_authorizer(tokens: dict[str, dict[str, str]]) -> Any:
    """A Chalice authorizer that maps an Authorization header value to fixed claims."""

    def authorize(request: AuthRequest) -> AuthResponse:
        claims = tokens.get(request.token)
        if claims is None:
            return AuthResponse(routes=[], principal_id="anonymous")
        return AuthResponse(routes=["*"], principal_id=claims["sub"], context=dict(claims))

    return Chalice("authorizers").authorizer()(authorize)


def extended_stack(definition_dir: Path) -> Stack:
    """STACK plus a second queue with its own worker and a state machine invoking a worker."""
    (definition_dir / "provisioning.asl.json").write_text(json.dumps(NOTIFY_ASL))
    return replace(
        STACK,
        queues=(*STACK.queues, Queue("billing", visibility_timeout=120, max_receive_count=5)),
        functions=(
            *STACK.functions,
            Function(
                name="billing-worker",
                app="workers",
                handler="deliver_notifications",
                timeout=60,
                memory=1024,
                queue_triggers=(QueueTrigger("billing", batch_size=5, max_batching_window=2),),
            ),
        ),
        state_machines=(
            StateMachine(
                name="provisioning",
                functions=("notifications-worker",),
                definition_dir=definition_dir,
            ),
        ),
    )
