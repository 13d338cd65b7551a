"""The notification job as it travels on the queue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Notification(BaseModel):
    """One message to one recipient, rendered from a template by the channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    channel: Literal["email", "sms", "webhook"]
    recipient: str = Field(min_length=1, max_length=320)
    template: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    data: dict[str, Any] = Field(default_factory=dict)
