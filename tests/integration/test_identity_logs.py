"""No secret ever reaches a log: passwords, tokens and TOTP secrets stay out of every output."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pyotp
import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import JOHN, TOM, Platform, encode_part, split_token

WRONG_PASSWORD = "Wrong-but-close-2026"
NEW_PASSWORD = "Fresh-passw0rd-for-ann"


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """The service logger's own output (its JSON formatter) at DEBUG, while the test runs.

    Powertools binds its handler to the stdout of the moment it was built, which may not be
    the one `capsys` swaps in, so the formatted lines are also copied into a buffer here.
    """
    from dotmac.core.observability import get_logger

    service_logger = get_logger()
    logger = logging.getLogger(service_logger.name)  # the stdlib logger it wraps
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(service_logger.registered_formatter)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)


def test_no_password_token_or_totp_secret_is_ever_logged(
    platform: Platform,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    every_log_line: io.StringIO,
) -> None:
    from devcloud.seed import DEMO_PASSWORD

    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [DEMO_PASSWORD, WRONG_PASSWORD, NEW_PASSWORD]

    def keep(session: dict[str, str]) -> dict[str, str]:
        secrets.extend([session["access_token"], session["refresh_token"]])
        secrets.append(session["access_token"].rsplit(".", 1)[1])  # the signature alone
        secrets.append(session["refresh_token"].rsplit(".", 1)[1])  # the refresh secret alone
        return session

    # Sign-ins: good, bad, locked out (every path that can log).
    john = keep(platform.session(JOHN))
    for _ in range(5):
        assert platform.login(TOM, password=WRONG_PASSWORD).status == 401
    assert platform.login(TOM).status == 403
    assert platform.login("ghost@abc-corp.example", password=WRONG_PASSWORD).status == 401

    # Refresh, and a refresh replay that revokes the family.
    rotated = platform.call(
        "POST", "/api/v1/auth/refresh", body={"refresh_token": john["refresh_token"]}
    )
    keep(rotated.attributes)
    replay = platform.call(
        "POST", "/api/v1/auth/refresh", body={"refresh_token": john["refresh_token"]}
    )
    assert replay.status == 401

    # Refused tokens: the authorizer logs why, never what.
    header, claims, signature = split_token(john["access_token"])
    tampered = f"{encode_part(header)}.{encode_part({**claims, 'tid': 'x'})}.{signature}"
    secrets.append(tampered)
    assert platform.call("GET", "/api/v1/auth/me", tampered).status == 401

    # An invitation with its temporary password, then the password change.
    token = platform.token(JOHN)
    created = platform.call(
        "POST", "/api/v1/users", token, {"email": "ann@abc-corp.example", "name": "Ann"}
    )
    temporary = created.attributes["temporary_password"]
    secrets.append(temporary)
    ann = keep(platform.session("ann@abc-corp.example", password=temporary))
    too_short = platform.call(
        "POST",
        "/api/v1/auth/password",
        ann["access_token"],
        {"current_password": temporary, "new_password": "Short-1"},
    )
    assert too_short.status == 400
    secrets.append("Short-1")
    changed = platform.call(
        "POST",
        "/api/v1/auth/password",
        ann["access_token"],
        {"current_password": temporary, "new_password": NEW_PASSWORD},
    )
    assert changed.status == 204

    # MFA: the secret, enrolment and a sign-in with a code.
    ann = keep(platform.session("ann@abc-corp.example", password=NEW_PASSWORD))
    enrolment = platform.call("POST", "/api/v1/auth/mfa/enroll", ann["access_token"])
    secret = enrolment.attributes["secret"]
    secrets.append(secret)
    verified = platform.call(
        "POST", "/api/v1/auth/mfa/verify", ann["access_token"], {"code": pyotp.TOTP(secret).now()}
    )
    assert verified.status == 200
    code = pyotp.TOTP(secret).at(int(time.time()) + 30)
    keep(platform.session("ann@abc-corp.example", password=NEW_PASSWORD, mfa_code=code))

    captured = capsys.readouterr()
    records = "\n".join(
        f"{record.getMessage()} {record.__dict__!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    outputs = {
        "stdout": captured.out,
        "stderr": captured.err,
        "log text": caplog.text,
        "log records": records,
        "service log lines": every_log_line.getvalue(),
    }
    # The logs were really captured (the "token refused" line at least).
    assert "token refused" in outputs["service log lines"]
    assert "token refused" in outputs["log records"] or "token refused" in captured.out
    leaks = [
        (where, secret[:12] + "...")
        for where, text in outputs.items()
        for secret in set(secrets)
        if secret and secret in text
    ]
    assert leaks == []
