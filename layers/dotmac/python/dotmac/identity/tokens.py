"""Access tokens (ES256 JWTs signed in KMS) and refresh tokens (opaque, rotating).

Access tokens live 15 minutes and carry `sub`, `tid`, `roles`, `perms`; PyJWT verifies them
against the key ring, pinned to ES256, our issuer and audience. Refresh tokens are
`<tenant>.<family>.<secret>`: only the secret's SHA-256 is stored, per session family.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from dotmac.core import aws
from dotmac.core.errors import AuthenticationError
from dotmac.identity.keys import ALGORITHM, KMS_SIGNING_ALGORITHM, keyring

ACCESS_TOKEN_SECONDS = 15 * 60
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
AUDIENCE = "dotmac-api"
LEEWAY_SECONDS = 5


def issuer() -> str:
    from dotmac.core.settings import get_settings

    return f"https://auth.dotmac/{get_settings().stage}"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _raw_signature(der: bytes) -> bytes:
    """KMS returns DER (r, s); JWS ES256 wants r || s, 32 bytes each."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says, once verified."""

    subject: str
    tenant_id: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    restriction: str | None
    expires_at: int
    token_id: str
    customer_id: str | None = None  # the ISP customer record a portal user is linked to


def issue_access_token(
    *,
    subject: str,
    tenant_id: str,
    roles: list[str],
    permissions: list[str],
    restriction: str | None = None,
    customer_id: str | None = None,
    now: float | None = None,
) -> tuple[str, int]:
    """Sign a new access token in KMS; returns (token, expires_at)."""
    issued = int(now if now is not None else time.time())
    key = keyring.current()
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
    claims: dict[str, Any] = {
        "iss": issuer(),
        "aud": AUDIENCE,
        "sub": subject,
        "tid": tenant_id,
        "roles": sorted(roles),
        "perms": sorted(permissions),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ACCESS_TOKEN_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    if restriction:
        claims["restriction"] = restriction
    if customer_id:
        claims["cust"] = customer_id
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    ).encode()
    der = aws.client("kms").sign(
        KeyId=key.kid,
        Message=signing_input,
        MessageType="RAW",
        SigningAlgorithm=KMS_SIGNING_ALGORITHM,
    )["Signature"]
    return f"{signing_input.decode()}.{_b64url(_raw_signature(der))}", claims["exp"]


def verify_access_token(token: str) -> AccessClaims:
    """Verify signature, algorithm, kid, issuer, audience and lifetime (AuthenticationError).

    A token this container verified before is not parsed and checked again (API Gateway
    caches an authorizer's answer per token the same way): the same bytes carry the same
    signature. Its lifetime and signing key are re-checked on every call.
    """
    claims, kid = _verified(token, issuer())
    if time.time() > claims.expires_at + LEEWAY_SECONDS:
        raise AuthenticationError("invalid token: ExpiredSignatureError")
    if keyring.get(kid) is None:
        raise AuthenticationError("unknown signing key")
    return claims


@functools.lru_cache(maxsize=4096)  # refusals raise, so only valid tokens are remembered
def _verified(token: str, expected_issuer: str) -> tuple[AccessClaims, str]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise AuthenticationError("unexpected token algorithm")
    key = keyring.get(str(header.get("kid", "")))
    if key is None:
        raise AuthenticationError("unknown signing key")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=expected_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "iss", "aud", "tid", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"invalid token: {type(exc).__name__}") from exc
    verified = AccessClaims(
        subject=str(claims["sub"]),
        tenant_id=str(claims["tid"]),
        roles=tuple(claims.get("roles") or ()),
        permissions=tuple(claims.get("perms") or ()),
        restriction=claims.get("restriction"),
        customer_id=claims.get("cust"),
        expires_at=int(claims["exp"]),
        token_id=str(claims["jti"]),
    )
    return verified, key.kid


@dataclass(frozen=True)
class RefreshToken:
    """A parsed refresh token."""

    tenant_id: str
    family: str
    secret: str

    def __str__(self) -> str:
        return f"{self.tenant_id}.{self.family}.{self.secret}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()


def new_refresh_token(tenant_id: str, family: str | None = None) -> RefreshToken:
    """A fresh secret for a new (or rotating) session family."""
    return RefreshToken(tenant_id, family or uuid.uuid4().hex, secrets.token_urlsafe(32))


def parse_refresh_token(raw: str) -> RefreshToken:
    """Split `<tenant>.<family>.<secret>`; AuthenticationError if it is not one."""
    parts = raw.split(".")
    if len(parts) != 3 or not all(parts) or len(parts[1]) != 32:
        raise AuthenticationError("invalid refresh token")
    return RefreshToken(*parts)
