"""Field-level encryption for PII and secrets: KMS envelope encryption, tenant-bound.

Each value gets a fresh AES-256 data key from KMS (`GenerateDataKey` with the tenant id in the
encryption context), is sealed with AES-GCM, and is stored as one opaque string holding the
KMS-encrypted data key, the nonce and the ciphertext. Decrypting under another tenant's
context fails in KMS, so a value copied across tenants cannot be read there.
"""

from __future__ import annotations

import base64
import json
import os

from dotmac.core import aws
from dotmac.core.tenancy import validate_tenant_id

VERSION = "v1"


def _context(tenant_id: str) -> dict[str, str]:
    return {"tenant_id": validate_tenant_id(tenant_id)}


def encrypt(tenant_id: str, plaintext: str) -> str:
    """Seal `plaintext` for `tenant_id`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from dotmac.core.settings import get_settings

    data_key = aws.client("kms").generate_data_key(
        KeyId=get_settings().kms_alias, KeySpec="AES_256", EncryptionContext=_context(tenant_id)
    )
    nonce = os.urandom(12)
    sealed = AESGCM(data_key["Plaintext"]).encrypt(nonce, plaintext.encode(), tenant_id.encode())
    envelope = {
        "v": VERSION,
        "k": base64.b64encode(data_key["CiphertextBlob"]).decode(),
        "n": base64.b64encode(nonce).decode(),
        "c": base64.b64encode(sealed).decode(),
    }
    return base64.b64encode(json.dumps(envelope, separators=(",", ":")).encode()).decode()


def decrypt(tenant_id: str, sealed: str) -> str:
    """Open a value sealed by `encrypt` for the same tenant."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    envelope = json.loads(base64.b64decode(sealed))
    if envelope.get("v") != VERSION:
        raise ValueError("unknown envelope version")
    data_key = aws.client("kms").decrypt(
        CiphertextBlob=base64.b64decode(envelope["k"]), EncryptionContext=_context(tenant_id)
    )["Plaintext"]
    plaintext = AESGCM(data_key).decrypt(
        base64.b64decode(envelope["n"]), base64.b64decode(envelope["c"]), tenant_id.encode()
    )
    return plaintext.decode()
