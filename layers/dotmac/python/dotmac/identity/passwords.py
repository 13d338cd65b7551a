"""Password hashing (argon2id), the password policy, temporary passwords and TOTP codes."""

from __future__ import annotations

import os
import secrets
import string
from functools import lru_cache
from typing import TYPE_CHECKING

from dotmac.core.errors import FieldError, ValidationError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 12
MAX_LENGTH = 256
TOTP_ISSUER = "DotMac"


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    """argon2id with the library's RFC 9106 low-memory profile (or a cheap one for tests)."""
    from argon2 import PasswordHasher, Type
    from argon2.profiles import RFC_9106_LOW_MEMORY

    if os.environ.get("DOTMAC_FAST_PASSWORD_HASHING") == "true":
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    return PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; never raises for a wrong password."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verified against when the user does not exist, so both paths cost the same time.
_DUMMY: list[str] = []


def burn_time(password: str) -> None:
    """Spend a verification's worth of time (the unknown-user path of a login)."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    verify_password(_DUMMY[0], password)


def check_policy(password: str, *, field: str = "password") -> None:
    """12 to 256 characters with a letter and a digit or symbol; ValidationError otherwise."""
    problems = []
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        problems.append(f"must be {MIN_LENGTH} to {MAX_LENGTH} characters")
    if not any(c.isalpha() for c in password):
        problems.append("must contain a letter")
    if not any(not c.isalpha() for c in password):
        problems.append("must contain a digit or a symbol")
    if problems:
        raise ValidationError(
            "password does not meet the policy", details=[FieldError(field, p) for p in problems]
        )


def temporary_password() -> str:
    """A random password that meets the policy (the user must change it at first login)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(16)) + "-1a"
        try:
            check_policy(candidate)
        except ValidationError:
            continue
        return candidate


def new_totp_secret() -> str:
    import pyotp

    return str(pyotp.random_base32())


def totp_uri(secret: str, email: str, tenant_id: str) -> str:
    import pyotp

    return str(
        pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=f"{TOTP_ISSUER} ({tenant_id})")
    )


def totp_step(secret: str, code: str, *, now: float, after_step: int | None) -> int | None:
    """The time step `code` is valid for (±1 step of drift), if later than `after_step`."""
    import pyotp

    totp = pyotp.TOTP(secret)
    current = int(now) // totp.interval
    for step in (current, current - 1, current + 1):
        if after_step is not None and step <= after_step:
            continue
        if secrets.compare_digest(totp.at(step * totp.interval), code.strip()):
            return step
    return None
