"""Rate limits against the emulated table: counts, windows, call counts and a thread race."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from dotmac.core.errors import RateLimitedError
from dotmac.core.model import bind_table, ensure_bound
from dotmac.core.ratelimit import (
    API_PER_USER,
    EXPIRY_MARGIN_SECONDS,
    LOGIN_PER_IP,
    Limit,
    RateWindow,
    Window,
    hit,
    partition_key,
)
from tests.integration.conftest import MotoCloud

# 29.5 s before the end of the login window [1_699_999_980, 1_700_000_040).
NOW = 1_700_000_010.5
IP = "203.0.113.7"


@pytest.fixture
def ddb_calls(moto_cloud: MotoCloud) -> Iterator[list[str]]:
    """Every DynamoDB operation the rate limiter sends, counted with botocore's event hooks."""
    bind_table(moto_cloud.created.table)
    ensure_bound()
    assert RateWindow.Meta.table_name == moto_cloud.created.table  # settings name the same table
    calls: list[str] = []
    client = RateWindow._get_connection().connection.client
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    yield calls


def _stored(limit: Limit, subject: str, now: float) -> RateWindow:
    return RateWindow.get(partition_key(limit, subject), Window.at(limit, now).sort_key)


def test_max_requests_are_accepted_then_429(ddb_calls: list[str]) -> None:
    assert [hit(LOGIN_PER_IP, IP, now=NOW + i) for i in range(5)] == [4, 3, 2, 1, 0]
    with pytest.raises(RateLimitedError) as caught:
        hit(LOGIN_PER_IP, IP, now=NOW + 5)  # 24.5 s before the window ends
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (429, "RATE_LIMITED", 25)
    assert error.headers == {"Retry-After": "25"}
    with pytest.raises(RateLimitedError):
        hit(LOGIN_PER_IP, IP, now=NOW)
    assert _stored(LOGIN_PER_IP, IP, NOW).hits == 5  # refused hits are not counted


def test_a_new_window_starts_fresh(ddb_calls: list[str]) -> None:
    for _ in range(5):
        hit(LOGIN_PER_IP, IP, now=NOW)
    with pytest.raises(RateLimitedError):
        hit(LOGIN_PER_IP, IP, now=NOW + 29)  # last second of the window
    assert hit(LOGIN_PER_IP, IP, now=NOW + 29.5) == 4  # first instant of the next window
    assert _stored(LOGIN_PER_IP, IP, NOW).hits == 5
    assert _stored(LOGIN_PER_IP, IP, NOW + 29.5).hits == 1


def test_subjects_and_limits_are_independent(ddb_calls: list[str]) -> None:
    for _ in range(5):
        hit(LOGIN_PER_IP, IP, now=NOW)
    with pytest.raises(RateLimitedError):
        hit(LOGIN_PER_IP, IP, now=NOW)
    assert hit(LOGIN_PER_IP, "203.0.113.8", now=NOW) == 4
    assert hit(LOGIN_PER_IP, "2001:db8::1", now=NOW) == 4
    assert hit(LOGIN_PER_IP, "fe80::1%eth0", now=NOW) == 4  # hashed subject
    assert hit(API_PER_USER, IP, now=NOW) == 99


def test_cost_counts_several_hits_at_once(ddb_calls: list[str]) -> None:
    bulk = Limit("test-cost", 10, 60)
    assert hit(bulk, "acme", now=NOW, cost=4) == 6
    assert hit(bulk, "acme", now=NOW, cost=4) == 2
    with pytest.raises(RateLimitedError):
        hit(bulk, "acme", now=NOW, cost=4)
    assert hit(bulk, "acme", now=NOW, cost=2) == 0


def test_one_dynamodb_call_per_hit_accepted_or_refused(ddb_calls: list[str]) -> None:
    ddb_calls.clear()
    hit(LOGIN_PER_IP, IP, now=NOW)
    assert ddb_calls == ["UpdateItem"]
    for _ in range(4):
        hit(LOGIN_PER_IP, IP, now=NOW)
    ddb_calls.clear()
    with pytest.raises(RateLimitedError):
        hit(LOGIN_PER_IP, IP, now=NOW)
    assert ddb_calls == ["UpdateItem"]


def test_windows_carry_their_expiry_and_entity(ddb_calls: list[str]) -> None:
    hit(LOGIN_PER_IP, "x#y", now=NOW)
    item = _stored(LOGIN_PER_IP, "x#y", NOW)
    assert item.PK.startswith("RATE#login-ip#sha256=") and item.SK == "W#1699999980"
    assert item.expires_at == 1_700_000_040 + EXPIRY_MARGIN_SECONDS
    assert item.kind == "rate_window"


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    """Switch threads far more often, so an unguarded read-check-write race would show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("eager_thread_switching")
def test_parallel_hits_never_overshoot(ddb_calls: list[str]) -> None:
    limit = Limit("test-race", 50, 60)
    remaining: list[int] = []
    refused: list[RateLimitedError] = []
    threads_used: set[int] = set()

    def attempt(_: int) -> None:
        threads_used.add(threading.get_ident())
        try:
            remaining.append(hit(limit, "acme", now=NOW))
        except RateLimitedError as error:
            refused.append(error)

    ddb_calls.clear()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(attempt, range(200)))

    assert len(threads_used) > 1
    assert (len(remaining), len(refused)) == (50, 150)
    assert sorted(remaining) == list(range(50))  # each accepted hit saw its own count
    assert {error.retry_after for error in refused} == {30}
    assert ddb_calls == ["UpdateItem"] * 200
    assert _stored(limit, "acme", NOW).hits == 50
