"""Leased allowances: few DynamoDB writes, never more hits than the limit allows."""

from __future__ import annotations

import pytest

from dotmac.core import ratelimit
from dotmac.core.errors import RateLimitedError
from dotmac.core.ratelimit import AllowanceLeases, Limit

LIMIT = Limit("api-test", 25, 60)


class FakeCounter:
    """The shared DynamoDB counter, as `hit` sees it: atomic reserve-or-refuse."""

    def __init__(self) -> None:
        self.hits: dict[tuple[str, int], int] = {}
        self.calls: list[int] = []

    def hit(self, limit: Limit, subject: str, *, now: float | None = None, cost: int = 1) -> int:
        self.calls.append(cost)
        key = (subject, int((now or 0) // limit.window_seconds))
        if self.hits.get(key, 0) + cost > limit.max_requests:
            raise RateLimitedError("over", retry_after=1)
        self.hits[key] = self.hits.get(key, 0) + cost
        return limit.max_requests - self.hits[key]


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> FakeCounter:
    fake = FakeCounter()
    monkeypatch.setattr(ratelimit, "hit", fake.hit)
    return fake


def _spend_all(leases: AllowanceLeases, attempts: int, now: float = 120.0) -> int:
    accepted = 0
    for _ in range(attempts):
        try:
            leases.spend(LIMIT, "u1", now=now)
        except RateLimitedError:
            continue
        accepted += 1
    return accepted


def test_one_container_gets_exactly_the_limit_with_few_writes(counter: FakeCounter) -> None:
    assert _spend_all(AllowanceLeases(lease=10), 40) == LIMIT.max_requests
    # 10 + 10, then 10 no longer fits: 5 single hits, then each refusal tries 10 and 1.
    assert counter.calls[:3] == [10, 10, 10]
    assert counter.calls.count(1) == 5 + (40 - 25)


def test_several_containers_together_never_exceed_the_limit(counter: FakeCounter) -> None:
    containers = [AllowanceLeases(lease=10) for _ in range(3)]
    accepted = sum(_spend_all(c, 9) for c in containers)  # each leaves hits unspent
    accepted += sum(_spend_all(c, 20) for c in containers)
    assert accepted <= LIMIT.max_requests
    assert sum(counter.hits.values()) <= LIMIT.max_requests


def test_a_new_window_starts_with_a_new_lease(counter: FakeCounter) -> None:
    leases = AllowanceLeases(lease=10)
    assert _spend_all(leases, 30, now=120.0) == 25
    assert _spend_all(leases, 5, now=180.0) == 5
