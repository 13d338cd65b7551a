"""JWT signing keys: asymmetric (ES256) keys that live in KMS and never leave it.

The registry of keys is a platform partition (`SIGNING_KEY#jwt`): one item per KMS key with
its public JWK. The newest key signs; older keys keep verifying until `retire_at` (after
rotation, long enough for every token they signed to expire). Verifiers cache the public
keys per container and re-read the registry only when they meet an unknown `kid`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from pynamodb.attributes import NumberAttribute, UnicodeAttribute

from dotmac.core import aws
from dotmac.core.model import TableItem, ensure_bound
from dotmac.core.tenancy import platform_key

REGISTRY_PK = platform_key("SIGNING_KEY", "jwt")
ALGORITHM = "ES256"
KMS_KEY_SPEC = "ECC_NIST_P256"
KMS_SIGNING_ALGORITHM = "ECDSA_SHA_256"
REFRESH_MIN_SECONDS = 30.0


class SigningKeyItem(TableItem):
    """One signing key's public half and lifetime."""

    entity: ClassVar[str] = "signing_key"

    kid = UnicodeAttribute()
    public_jwk = UnicodeAttribute()
    created = NumberAttribute()
    retire_at = NumberAttribute(null=True)


@dataclass(frozen=True)
class PublicKey:
    """A verification key: its id, JWK and the cryptography object PyJWT verifies with."""

    kid: str
    jwk: dict[str, Any]
    key: Any
    created: float
    retire_at: float | None

    def usable(self, now: float) -> bool:
        return self.retire_at is None or now < self.retire_at


def _load(item: SigningKeyItem) -> PublicKey:
    from jwt.algorithms import ECAlgorithm

    jwk = json.loads(item.public_jwk)
    return PublicKey(item.kid, jwk, ECAlgorithm.from_jwk(jwk), item.created, item.retire_at)


def rotate(*, overlap_seconds: float) -> str:
    """Create a new KMS signing key and make it current; older keys retire after the overlap.

    Returns the new key id. `overlap_seconds` must cover the access-token lifetime.
    """
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    from jwt.algorithms import ECAlgorithm

    ensure_bound()
    kms = aws.client("kms")
    key_id = kms.create_key(
        KeySpec=KMS_KEY_SPEC, KeyUsage="SIGN_VERIFY", Description="DotMac JWT signing key"
    )["KeyMetadata"]["KeyId"]
    public: Any = load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    jwk = json.loads(ECAlgorithm.to_jwk(public))
    jwk.update(kid=key_id, alg=ALGORITHM, use="sig")
    now = time.time()
    for existing in SigningKeyItem.query(REGISTRY_PK):
        if existing.retire_at is None:
            existing.update(actions=[SigningKeyItem.retire_at.set(now + overlap_seconds)])
    SigningKeyItem(
        REGISTRY_PK,
        f"KEY#{datetime.fromtimestamp(now, UTC).isoformat()}#{key_id}",
        kid=key_id,
        public_jwk=json.dumps(jwk),
        created=now,
    ).save()
    keyring.forget()
    return str(key_id)


class KeyRing:
    """Per-container cache of the public keys (one Query on a cold start or an unknown kid)."""

    def __init__(self) -> None:
        self._keys: dict[str, PublicKey] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        ensure_bound()
        keys = {item.kid: _load(item) for item in SigningKeyItem.query(REGISTRY_PK)}
        with self._lock:
            self._keys, self._loaded_at = keys, time.monotonic()

    def get(self, kid: str) -> PublicKey | None:
        """The usable key `kid`, re-reading the registry at most every 30 s when it is unknown."""
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > REFRESH_MIN_SECONDS:
            self._refresh()
            key = self._keys.get(kid)
        return key if key is not None and key.usable(time.time()) else None

    def current(self) -> PublicKey:
        """The newest usable key (the one that signs); the registry is re-read every 30 s so a
        rotation made elsewhere is picked up."""
        if not self._keys or time.monotonic() - self._loaded_at > REFRESH_MIN_SECONDS:
            self._refresh()
        now = time.time()
        usable = [k for k in self._keys.values() if k.usable(now) and k.retire_at is None]
        if not usable:
            self._refresh()
            usable = [k for k in self._keys.values() if k.usable(now) and k.retire_at is None]
        if not usable:
            raise RuntimeError("no signing key: run the key rotation once (bootstrap does)")
        return max(usable, key=lambda k: k.created)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set of every key that still verifies (re-read at most every 30 s)."""
        if time.monotonic() - self._loaded_at > REFRESH_MIN_SECONDS:
            self._refresh()
        now = time.time()
        return {"keys": [k.jwk for k in self._keys.values() if k.usable(now)]}

    def forget(self) -> None:
        with self._lock:
            self._keys, self._loaded_at = {}, float("-inf")


keyring = KeyRing()
