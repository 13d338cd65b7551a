"""Request bodies of the management API, and the subdomain rules."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from dotmac.core.errors import FieldError, ValidationError

SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
RESERVED_SUBDOMAINS = frozenset(
    {"api", "www", "admin", "app", "mail", "support", "help", "platform", "static", "status"}
)


def subdomain_problem(value: str) -> str | None:
    """Why `value` cannot be a subdomain (business-rules.md), or None if it can."""
    if not 3 <= len(value) <= 63:
        return "must be 3 to 63 characters"
    if not SUBDOMAIN.fullmatch(value):
        return "lowercase letters, digits and inner hyphens only"
    if value in RESERVED_SUBDOMAINS:
        return "is reserved"
    return None


def check_subdomain(value: str) -> str:
    """`value` if it is a valid subdomain, else a 400 naming the field."""
    problem = subdomain_problem(value)
    if problem:
        raise ValidationError("invalid subdomain", details=[FieldError("subdomain", problem)])
    return value


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TenantRequest(Body):
    """What an operator asks for when provisioning a tenant."""

    name: str = Field(min_length=2, max_length=120)
    subdomain: str = Field(min_length=1, max_length=63)
    plan: str = Field(min_length=1, max_length=40)
    apps: list[str] = Field(default_factory=list, max_length=8)
    admin_email: EmailStr
    admin_name: str = Field(min_length=1, max_length=120)
    partner_id: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    mfa_required: bool = False

    @field_validator("subdomain")
    @classmethod
    def valid_subdomain(cls, value: str) -> str:
        problem = subdomain_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("admin_email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class SignupRequest(TenantRequest):
    """Self-service sign-up: the same, plus the admin's chosen password."""

    password: str = Field(min_length=1, max_length=256)


class StatusChange(Body):
    reason: str = Field(default="", max_length=500)


class PlanChange(Body):
    plan: str = Field(min_length=1, max_length=40)


class SubscriptionRequest(Body):
    app: str = Field(min_length=1, max_length=40)
