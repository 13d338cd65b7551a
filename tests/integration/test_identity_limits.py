"""Rate limits, refresh rotation and lockout under parallel load, through the real gateway."""

from __future__ import annotations

import math
import threading
import time
import types
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.identity_fixtures import *  # noqa: F403
from tests.integration.identity_fixtures import JOHN, SARAH, TOM, Answer, Platform


@pytest.fixture
def frozen_limits(monkeypatch: pytest.MonkeyPatch) -> float:
    """Freeze the rate limiter's clock (only its own): no window boundary mid-test."""
    from dotmac.core import ratelimit

    now = time.time()
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: now))
    return now


def in_parallel(n: int, task: Callable[[int], Answer], workers: int = 16) -> list[Answer]:
    threads: set[int] = set()

    def run(i: int) -> Answer:
        threads.add(threading.get_ident())
        return task(i)

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(run, range(n)))
    assert len(threads) > 1
    return answers


def retry_after(window: int, now: float) -> int:
    return max(1, math.ceil((now // window + 1) * window - now))


def add_users(count: int) -> list[str]:
    """`count` extra ABC Corp users (demo password), so parallel logins are by distinct users."""
    from devcloud.seed import DEMO_PASSWORD
    from dotmac.core.tenancy import TenantContext
    from dotmac.identity import service
    from dotmac.identity.schemas import UserCreate

    ctx = TenantContext("abc-corp", "test-setup", request_id="test-setup")
    emails = [f"load{i}@abc-corp.example" for i in range(count)]
    for email in emails:
        service.create_user(ctx, UserCreate(email=email, name=email), password=DEMO_PASSWORD)
    return emails


@pytest.mark.usefixtures("eager_thread_switching")
def test_parallel_logins_from_one_ip_get_exactly_five_answers(
    strict_limits: Platform, frozen_limits: float
) -> None:
    platform = strict_limits
    emails = add_users(12)
    answers = in_parallel(12, lambda i: platform.login(emails[i]))
    statuses = Counter(a.status for a in answers)
    assert sum(n for status, n in statuses.items() if status != 429) == 5, statuses
    assert statuses == {200: 5, 429: 7}, statuses
    limited = [a for a in answers if a.status == 429]
    assert {a.error_code for a in limited} == {"RATE_LIMITED"}
    assert {a.header("Retry-After") for a in limited} == {str(retry_after(60, frozen_limits))}
    # Every accepted login opened its own session.
    families = {a.attributes["refresh_token"].split(".")[1] for a in answers if a.status == 200}
    assert len(families) == 5
    # Wrong passwords count too: the limit is per IP, not per success.
    assert platform.login(SARAH, password="Wrong-password-1").status == 429


@pytest.mark.usefixtures("eager_thread_switching")
def test_parallel_api_calls_by_one_user_get_exactly_one_hundred_answers(
    strict_limits: Platform, frozen_limits: float
) -> None:
    platform = strict_limits
    john = platform.token(JOHN)
    sarah = platform.token(SARAH)
    answers = in_parallel(150, lambda _: platform.call("GET", "/api/v1/auth/me", john))
    statuses = Counter(a.status for a in answers)
    assert statuses == {200: 100, 429: 50}, statuses
    limited = [a for a in answers if a.status == 429]
    assert {a.error_code for a in limited} == {"RATE_LIMITED"}
    assert {a.header("Retry-After") for a in limited} == {str(retry_after(60, frozen_limits))}
    assert platform.call("GET", "/api/v1/users", john).status == 429  # any route, same user
    assert platform.call("GET", "/api/v1/auth/me", sarah).status == 200  # per user

    from dotmac.core.ratelimit import API_PER_USER, RateWindow, Window, partition_key

    stored = RateWindow.get(
        partition_key(API_PER_USER, f"abc-corp:{platform.user_id(JOHN)}"),
        Window.at(API_PER_USER, frozen_limits).sort_key,
    )
    assert stored.hits == 100


@pytest.mark.usefixtures("eager_thread_switching")
def test_a_refresh_token_raced_in_parallel_rotates_once_then_the_family_dies(
    platform: Platform,
) -> None:
    session = platform.session(TOM)
    body = {"refresh_token": session["refresh_token"]}
    answers = in_parallel(8, lambda _: platform.call("POST", "/api/v1/auth/refresh", body=body))
    winners = [a for a in answers if a.status == 200]
    assert len(winners) == 1, Counter(a.status for a in answers)
    assert Counter(a.status for a in answers)[401] == 7
    # The losers presented a spent token: the winner's new token is revoked with the family.
    again = platform.call(
        "POST",
        "/api/v1/auth/refresh",
        body={"refresh_token": winners[0].attributes["refresh_token"]},
    )
    assert again.status == 401


@pytest.fixture
def lockstep(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make `n` concurrent logins all read the user before any of them writes it back:
    each waits at a barrier right after its password check (a deterministic race)."""
    from dotmac.identity import passwords

    def arm(n: int) -> None:
        barrier = threading.Barrier(n, timeout=10)
        verify = passwords.verify_password

        def verify_then_wait(password_hash: str, password: str) -> bool:
            ok = verify(password_hash, password)
            barrier.wait()
            return ok

        monkeypatch.setattr(passwords, "verify_password", verify_then_wait)

    return arm


def test_concurrent_logins_of_one_user_all_succeed(
    platform: Platform, lockstep: Callable[[int], None]
) -> None:
    lockstep(4)
    answers = in_parallel(4, lambda _: platform.login(JOHN), workers=4)
    assert Counter(a.status for a in answers) == {200: 4}


def test_five_concurrent_failures_lock_the_account(
    platform: Platform, lockstep: Callable[[int], None]
) -> None:
    lockstep(5)
    answers = in_parallel(5, lambda _: platform.login(TOM, password="Wrong-password-1"), workers=5)
    assert Counter(a.status for a in answers) == {401: 5}
    locked = platform.login(TOM)
    assert (locked.status, locked.error_code) == (403, "ACCOUNT_LOCKED")
