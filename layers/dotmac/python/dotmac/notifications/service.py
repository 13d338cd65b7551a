"""Delivering notifications.

The local and default channel is an outbox in S3 (`tenants/<tid>/outbox/<id>.json`): the
object key is the notification id, so a redelivered message overwrites, never duplicates.
A mail or SMS provider plugs in behind `deliver` without changing the queue contract.
"""

from __future__ import annotations

import json
from typing import Any

from dotmac.core import aws
from dotmac.core.settings import get_settings
from dotmac.notifications.schemas import Notification


def outbox_key(tenant_id: str, notification_id: str) -> str:
    """Where a delivered notification is kept (inside the tenant's S3 prefix)."""
    return f"tenants/{tenant_id}/outbox/{notification_id}.json"


def deliver(body: dict[str, Any]) -> None:
    """Validate one queued notification and put it in the tenant's outbox (idempotent)."""
    notification = Notification.model_validate(body)
    aws.client("s3").put_object(
        Bucket=get_settings().bucket,
        Key=outbox_key(notification.tenant_id, notification.id),
        Body=json.dumps(notification.model_dump(mode="json")).encode(),
        ContentType="application/json",
    )
