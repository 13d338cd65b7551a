"""Request bodies of the billing API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RunRequest(BaseModel):
    """Start a billing run for one month."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    period: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
