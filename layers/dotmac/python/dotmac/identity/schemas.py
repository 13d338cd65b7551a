"""Request bodies of the identity API."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

ROLE_NAME = r"^[a-z][a-z0-9_]{2,39}$"
PERMISSION = r"^[a-z*][a-z_*]*:[a-z*][a-z_*]*:[a-z*][a-z_*]*$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginRequest(Body):
    tenant: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    email: EmailStr
    password: str = Field(min_length=1, max_length=256)
    mfa_code: str | None = Field(default=None, pattern=r"^[0-9]{6}$")

    @field_validator("email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class RefreshRequest(Body):
    refresh_token: str = Field(min_length=10, max_length=200)


class LogoutRequest(Body):
    refresh_token: str | None = Field(default=None, min_length=10, max_length=200)
    everywhere: bool = False


class PasswordChange(Body):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class MfaCode(Body):
    code: str = Field(pattern=r"^[0-9]{6}$")


class UserCreate(Body):
    email: EmailStr
    name: str = Field(min_length=1, max_length=120)
    roles: list[str] = Field(default_factory=list, max_length=20)
    customer_id: str | None = Field(default=None, max_length=64)

    @field_validator("email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()


class UserUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    status: str | None = Field(default=None, pattern=r"^(ACTIVE|DISABLED)$")
    customer_id: str | None = Field(default=None, min_length=1, max_length=64)  # portal link


class RolesAssignment(Body):
    roles: list[str] = Field(max_length=20)


def _permissions(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for permission in value:
        if not re.fullmatch(PERMISSION, permission):
            raise ValueError(f"{permission!r} is not app:resource:action")
    return sorted(set(value))


class RoleCreate(Body):
    name: str = Field(pattern=ROLE_NAME)
    description: str = Field(default="", max_length=200)
    permissions: list[str] = Field(min_length=1, max_length=100)

    _valid = field_validator("permissions")(_permissions)


class RoleUpdate(Body):
    description: str | None = Field(default=None, max_length=200)
    permissions: list[str] | None = Field(default=None, min_length=1, max_length=100)

    _valid = field_validator("permissions")(_permissions)
