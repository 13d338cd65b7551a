"""Access-token attacks against the real authorizer, key rotation, and every guarded route."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import (
    ABC,
    JOHN,
    TOM,
    Platform,
    b64url,
    encode_part,
    kms_sign,
    new_kms_signing_key,
    split_token,
)

GUARDED = "/api/v1/auth/me"


def status_with(platform: Platform, token: str, path: str = GUARDED) -> int:
    return platform.call("GET", path, token).status


@pytest.fixture
def john(platform: Platform) -> str:
    return platform.token(JOHN)


def _current_kid() -> str:
    from dotmac.identity.keys import keyring

    return keyring.current().kid


# --- forged tokens ---------------------------------------------------------------------------


def test_a_token_re_signed_in_kms_with_valid_claims_is_accepted(
    platform: Platform, john: str
) -> None:
    """The control for the forgeries below: the forging helper itself makes good tokens."""
    header, claims, _ = split_token(john)
    claims["jti"] = "0" * 32
    assert status_with(platform, kms_sign(header, claims, _current_kid())) == 200


def test_alg_none_is_refused(platform: Platform, john: str) -> None:
    header, claims, _ = split_token(john)
    for alg in ("none", "None", "NONE"):
        unsigned = f"{encode_part({**header, 'alg': alg})}.{encode_part(claims)}."
        assert status_with(platform, unsigned) == 401, alg
    # alg none with the original (valid) signature left in place
    header_none = encode_part({**header, "alg": "none"})
    assert status_with(platform, f"{header_none}.{john.split('.', 1)[1]}") == 401


def test_hs256_signed_with_the_public_key_is_refused(platform: Platform, john: str) -> None:
    from cryptography.hazmat.primitives import serialization

    from dotmac.identity.keys import keyring

    header, claims, _ = split_token(john)
    public = keyring.get(header["kid"])
    assert public is not None
    pem = public.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwks = platform.call("GET", "/.well-known/jwks.json").json
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    secrets = [pem, pem.strip(), json.dumps(jwk).encode(), json.dumps(jwk, sort_keys=True).encode()]
    for secret in secrets:
        signing_input = f"{encode_part({**header, 'alg': 'HS256'})}.{encode_part(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert status_with(platform, f"{signing_input}.{b64url(mac)}") == 401


def test_a_tampered_payload_with_the_original_signature_is_refused(
    platform: Platform, globex: Platform, john: str
) -> None:
    tom = platform.token(TOM)
    header, claims, signature = split_token(tom)
    tampered = [
        {**claims, "perms": [*claims["perms"], "isp:*:*"]},
        {**claims, "tid": "globex"},
        {**claims, "sub": platform.user_id(JOHN)},
        {**claims, "exp": claims["exp"] + 3600},
    ]
    for changed in tampered:
        forged = f"{encode_part(header)}.{encode_part(changed)}.{signature}"
        assert status_with(platform, forged, "/api/v1/probe/isp/customers") == 401
    # The same signature with the original payload still passes (nothing else was broken).
    assert status_with(platform, tom, "/api/v1/probe/isp/work-orders") == 200
    # A truncated or re-encoded signature is no better.
    assert status_with(platform, tom[:-4] + "AAAA") == 401


def test_expired_and_not_yet_valid_tokens_are_refused(platform: Platform) -> None:
    from dotmac.identity import tokens

    def issued_at(now: float) -> str:
        token, _ = tokens.issue_access_token(
            subject=platform.user_id(JOHN),
            tenant_id=ABC,
            roles=["tenant_admin"],
            permissions=["identity:*:*"],
            now=now,
        )
        return token

    lifetime = tokens.ACCESS_TOKEN_SECONDS
    assert status_with(platform, issued_at(time.time() - lifetime + 60)) == 200  # control
    assert status_with(platform, issued_at(time.time() - lifetime - 30)) == 401
    assert status_with(platform, issued_at(time.time() - 24 * 3600)) == 401
    assert status_with(platform, issued_at(time.time() + 120)) == 401  # nbf in the future


def test_wrong_issuer_and_wrong_audience_are_refused(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.identity import tokens

    def issue() -> str:
        token, _ = tokens.issue_access_token(
            subject=platform.user_id(JOHN),
            tenant_id=ABC,
            roles=["tenant_admin"],
            permissions=["identity:*:*"],
        )
        return token

    with monkeypatch.context() as patched:
        patched.setattr(tokens, "issuer", lambda: "https://auth.dotmac/prod")  # another stage
        other_stage = issue()
    with monkeypatch.context() as patched:
        patched.setattr(tokens, "AUDIENCE", "dotmac-admin")
        other_audience = issue()
    assert split_token(other_stage)[1]["iss"] == "https://auth.dotmac/prod"
    assert split_token(other_audience)[1]["aud"] == "dotmac-admin"
    assert status_with(platform, other_stage) == 401
    assert status_with(platform, other_audience) == 401
    assert status_with(platform, issue()) == 200  # control


def test_missing_claims_are_refused(platform: Platform, john: str) -> None:
    header, claims, _ = split_token(john)
    for claim in ("tid", "sub", "exp", "jti", "iss", "aud"):
        partial = {k: v for k, v in claims.items() if k != claim}
        assert status_with(platform, kms_sign(header, partial, header["kid"])) == 401, claim


def test_unknown_kid_and_a_foreign_key_under_a_known_kid_are_refused(
    platform: Platform, john: str
) -> None:
    header, claims, _ = split_token(john)
    stranger = new_kms_signing_key()
    assert status_with(platform, kms_sign({**header, "kid": stranger}, claims, stranger)) == 401
    # Signed by the stranger but claiming the registered kid: the signature does not verify.
    assert status_with(platform, kms_sign(header, claims, stranger)) == 401
    no_kid = {k: v for k, v in header.items() if k != "kid"}
    assert status_with(platform, kms_sign(no_kid, claims, header["kid"])) == 401


def test_a_token_of_a_disabled_user_is_refused_at_once(platform: Platform, john: str) -> None:
    tom = platform.session(TOM)
    assert status_with(platform, tom["access_token"]) == 200  # warms the authorizer's cache
    tom_id = platform.user_id(TOM)
    answer = platform.call("POST", f"/api/v1/users/{tom_id}/disable", john)
    assert answer.status == 200, answer.json
    assert answer.attributes["status"] == "DISABLED"

    assert status_with(platform, tom["access_token"]) == 401
    assert status_with(platform, tom["access_token"], "/api/v1/probe/isp/work-orders") == 401
    assert platform.call("POST", "/api/v1/auth/refresh", body=tom).status in (400, 401)
    refreshed = platform.call(
        "POST", "/api/v1/auth/refresh", body={"refresh_token": tom["refresh_token"]}
    )
    assert refreshed.status == 401
    assert platform.login(TOM).status == 401
    # Nobody may disable themselves.
    john_id = platform.user_id(JOHN)
    assert platform.call("POST", f"/api/v1/users/{john_id}/disable", john).status == 400

    enabled = platform.call("PATCH", f"/api/v1/users/{tom_id}", john, {"status": "ACTIVE"})
    assert enabled.status == 200
    assert platform.login(TOM).status == 200


def test_a_token_of_a_deleted_user_is_refused_at_once(platform: Platform, john: str) -> None:
    tom = platform.token(TOM)
    probe = "/api/v1/probe/isp/work-orders"
    assert status_with(platform, tom, probe) == 200  # warms the authorizer's cache
    deleted = platform.call("DELETE", f"/api/v1/users/{platform.user_id(TOM)}", john)
    assert deleted.status == 204
    assert platform.login(TOM).status == 401
    assert status_with(platform, tom, probe) == 401


def test_a_suspended_tenant_can_only_settle_its_bills(platform: Platform, john: str) -> None:
    from dotmac.management import provisioning, service

    operator = provisioning.system_context("test")
    session = platform.session(TOM)
    assert status_with(platform, john, "/api/v1/users") == 200
    service.suspend(operator, ABC, "test")

    for token, path in ((john, "/api/v1/users"), (session["access_token"], GUARDED)):
        answer = platform.call("GET", path, token)
        assert (answer.status, answer.error_code) == (403, "TENANT_SUSPENDED"), path
    # Signing in still works, so the tenant can settle its bills; nothing else does.
    login = platform.login(JOHN)
    assert login.status == 200, login.json
    fresh = login.attributes["access_token"]
    refused = platform.call("GET", "/api/v1/auth/me", fresh)
    assert (refused.status, refused.error_code) == (403, "TENANT_SUSPENDED")
    assert platform.call("GET", "/api/v1/tenant/invoices", fresh).status == 200
    refresh = platform.call(
        "POST", "/api/v1/auth/refresh", body={"refresh_token": session["refresh_token"]}
    )
    assert refresh.status == 200, refresh.json
    # The platform itself keeps working.
    assert platform.login("operator@dotmac.example", tenant="platform").status == 200

    service.reactivate(operator, ABC)
    assert status_with(platform, john, "/api/v1/users") == 200


# --- key rotation ------------------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    platform: Platform,
) -> None:
    from dotmac.identity import keys, tokens

    old_token = platform.token(JOHN)
    old_kid = split_token(old_token)[0]["kid"]
    new_kid = keys.rotate(overlap_seconds=tokens.ACCESS_TOKEN_SECONDS + 60)
    assert new_kid != old_kid

    assert status_with(platform, old_token) == 200
    new_token = platform.token(JOHN)
    assert split_token(new_token)[0]["kid"] == new_kid
    assert status_with(platform, new_token) == 200
    jwks = platform.call("GET", "/.well-known/jwks.json")
    assert jwks.header("Cache-Control") == "public, max-age=300"
    listed = {key["kid"]: key for key in jwks.json["keys"]}
    assert set(listed) == {old_kid, new_kid}
    for key in listed.values():
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
        assert "d" not in key  # public halves only


def test_a_retired_key_stops_verifying(platform: Platform) -> None:
    from dotmac.identity import keys

    old_token = platform.token(JOHN)
    old_kid = split_token(old_token)[0]["kid"]
    assert status_with(platform, old_token) == 200  # verified once: this container knows it
    keys.rotate(overlap_seconds=0)  # retire the old key at once
    assert status_with(platform, old_token) == 401
    listed = {k["kid"] for k in platform.call("GET", "/.well-known/jwks.json").json["keys"]}
    assert old_kid not in listed
    assert status_with(platform, platform.token(JOHN)) == 200


def test_a_token_verified_before_is_refused_once_it_expires(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotmac.identity import tokens

    token = platform.token(JOHN)
    assert status_with(platform, token) == 200
    later = time.time() + tokens.ACCESS_TOKEN_SECONDS + tokens.LEEWAY_SECONDS + 1
    monkeypatch.setattr(tokens, "time", types.SimpleNamespace(time=lambda: later))
    assert status_with(platform, token) == 401


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """Wall and monotonic time of `dotmac.identity.keys` (only), movable by `.advance(s)`."""
    from dotmac.identity import keys

    real = types.SimpleNamespace(wall=time.time(), mono=time.monotonic())
    state = types.SimpleNamespace(offset=0.0)
    fake = types.SimpleNamespace(
        time=lambda: real.wall + state.offset + (time.monotonic() - real.mono),
        monotonic=lambda: time.monotonic() + state.offset,
    )
    monkeypatch.setattr(keys, "time", fake)

    def advance(seconds: float) -> None:
        state.offset += seconds

    yield types.SimpleNamespace(advance=advance)


def test_a_warm_signer_switches_to_a_key_rotated_elsewhere(
    platform: Platform, clock: types.SimpleNamespace
) -> None:
    from dotmac.identity import keys, tokens

    signer = keys.keyring
    platform.token(JOHN)  # this container has loaded the registry
    cached = (dict(signer._keys), signer._loaded_at)
    # Another process (an operator's script, a scheduled job) rotates the key...
    new_kid = keys.rotate(overlap_seconds=tokens.ACCESS_TOKEN_SECONDS + 60)
    # ...which this container does not see: its cache is as it was.
    signer._keys, signer._loaded_at = cached
    clock.advance(2 * 3600)  # hours later, the old key is long retired

    fresh = platform.token(JOHN)
    signed_with = split_token(fresh)[0]["kid"]
    keys.keyring.forget()  # a cold container verifies it
    assert status_with(platform, fresh) == 200
    assert signed_with == new_kid


# --- every guarded route ---------------------------------------------------------------------


def _routes(platform: Platform) -> list[tuple[str, str, str, Any]]:
    """(app, method, concrete path, route entry) for every route of every mounted app."""
    found = []
    for name, app in platform.apps.items():
        for path, methods in app.routes.items():
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            for method, entry in methods.items():
                found.append((name, method, concrete, entry))
    return found


BAD_AUTHORIZATION = (
    None,
    "Bearer",
    "Bearer ",
    "Bearer garbage",
    "Bearer a.b.c",
    "Basic am9objpwdw==",
    "garbage",
)


def _empty_body(method: str) -> dict[str, Any] | None:
    return None if method in ("GET", "DELETE") else {}


def test_every_guarded_route_of_every_app_refuses_a_missing_or_bad_token(
    platform: Platform,
) -> None:
    guarded = [(m, p) for _, m, p, entry in _routes(platform) if entry.authorizer is not None]
    assert len(guarded) >= 25, guarded  # identity has 19, the probes 9
    accepted = []
    for authorization in BAD_AUTHORIZATION:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in guarded:
            answer = platform.call(method, path, body=_empty_body(method), headers=headers)
            if answer.status != 401 or answer.error_code != "UNAUTHENTICATED":
                accepted.append((authorization, method, path, answer.status))
    assert accepted == []
    # Control: a valid token gets past the authorizer on every one of them.
    john = platform.token(JOHN)
    refused = []
    for method, path in guarded:
        answer = platform.call(method, path, john, _empty_body(method))
        if answer.status == 401:
            refused.append((method, path))
    assert refused == []
