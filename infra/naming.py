"""Physical names and identifiers derived from the logical ones, shared by both renderers."""

from __future__ import annotations


def physical(stage: str, logical: str) -> str:
    """`dotmac-<stage>-<logical>`: the name a resource gets in the emulator and in AWS."""
    return f"dotmac-{stage}-{logical}"


def logical_id(*parts: str) -> str:
    """A CloudFormation logical id: `notifications-worker` -> `NotificationsWorker`."""
    return "".join(
        word.capitalize() for part in parts for word in part.replace("_", "-").split("-")
    )


def function_arn_key(function_name: str) -> str:
    """The `${...}` placeholder a state machine definition uses for a function's ARN."""
    return f"{logical_id(function_name)}Arn"
