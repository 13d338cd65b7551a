"""Distributed fixed-window rate limits: one atomic DynamoDB UpdateItem per request.

Every Lambda instance counts into the same item (`RATE#<limit>#<subject>`, `W#<window start>`),
so a limit holds across the fleet. The conditional `ADD` never lets a window overshoot, and
DynamoDB TTL removes windows shortly after they end.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import ClassVar

from pynamodb.attributes import NumberAttribute
from pynamodb.exceptions import UpdateError

from dotmac.core.errors import RateLimitedError
from dotmac.core.model import TableItem, ensure_bound
from dotmac.core.tenancy import platform_key

# A window's item outlives its end by this much before TTL may delete it.
EXPIRY_MARGIN_SECONDS = 60
# Subjects made only of these characters (IPs, ids, plain emails) are stored as they are.
PLAIN_SUBJECT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
# Prefix of a hashed subject; `=` is outside PLAIN_SUBJECT, so a plain subject cannot collide.
HASHED_SUBJECT_PREFIX = "sha256="
CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"


@dataclass(frozen=True)
class Limit:
    """At most `max_requests` hits per subject in each fixed window of `window_seconds`."""

    name: str
    max_requests: int
    window_seconds: int

    def __post_init__(self) -> None:
        if not PLAIN_SUBJECT.fullmatch(self.name):
            raise ValueError(f"invalid rate limit name: {self.name!r}")
        if self.max_requests < 1 or self.window_seconds < 1:
            raise ValueError(f"rate limit {self.name} needs a positive maximum and window")


LOGIN_PER_IP = Limit("login-ip", 5, 60)
API_PER_USER = Limit("api-user", 100, 60)
SEARCH_PER_TENANT = Limit("search-tenant", 30, 60)
BULK_PER_TENANT = Limit("bulk-tenant", 10, 3600)
SIGNUP_PER_IP = Limit("signup-ip", 5, 3600)


@dataclass(frozen=True)
class Window:
    """One fixed window `[start, end)` in epoch seconds, aligned to the limit's length."""

    start: int
    end: int

    @classmethod
    def at(cls, limit: Limit, now: float) -> Window:
        """The window of `limit` that contains the instant `now`."""
        start = int(now // limit.window_seconds) * limit.window_seconds
        return cls(start, start + limit.window_seconds)

    @property
    def sort_key(self) -> str:
        """`W#<start>`: the window's sort key."""
        return f"W#{self.start}"

    @property
    def expires_at(self) -> int:
        """The TTL epoch of the window's item."""
        return self.end + EXPIRY_MARGIN_SECONDS

    def retry_after(self, now: float) -> int:
        """Whole seconds from `now` until the window ends, at least 1."""
        return max(1, math.ceil(self.end - now))


def subject_key(subject: str) -> str:
    """`subject` as a key part: itself when plain, else a sha256 digest (never contains `#`)."""
    if not subject:
        raise ValueError("a rate limit subject must not be empty")
    if PLAIN_SUBJECT.fullmatch(subject):
        return subject
    return HASHED_SUBJECT_PREFIX + hashlib.sha256(subject.encode()).hexdigest()


def partition_key(limit: Limit, subject: str) -> str:
    """`RATE#<limit name>#<subject key>`: one partition per limit and subject."""
    return platform_key("RATE", limit.name, subject_key(subject))


class RateWindow(TableItem):
    """The hit counter of one subject in one window of one limit."""

    entity: ClassVar[str] = "rate_window"

    hits = NumberAttribute()


def hit(limit: Limit, subject: str, *, now: float | None = None, cost: int = 1) -> int:
    """Count `cost` hits of `subject` against `limit` and return the allowance left.

    Exactly one conditional UpdateItem, accepted or not; over the limit nothing is counted
    and `RateLimitedError` (429, `Retry-After` = seconds until the window ends) is raised.
    """
    if not 1 <= cost <= limit.max_requests:
        raise ValueError(f"cost {cost} outside 1..{limit.max_requests} for {limit.name}")
    instant = time.time() if now is None else now
    window = Window.at(limit, instant)
    item = RateWindow(partition_key(limit, subject), window.sort_key)
    ensure_bound()
    try:
        item.update(
            actions=[
                RateWindow.hits.add(cost),
                RateWindow.expires_at.set(window.expires_at),
                RateWindow.kind.set(RateWindow.entity),
            ],
            condition=(
                RateWindow.hits.does_not_exist() | (RateWindow.hits <= limit.max_requests - cost)
            ),
        )
    except UpdateError as error:
        if error.cause_response_code != CONDITIONAL_CHECK_FAILED:
            raise
        raise RateLimitedError(
            f"rate limit {limit.name} exceeded", retry_after=window.retry_after(instant)
        ) from error
    return limit.max_requests - int(item.hits)


class AllowanceLeases:
    """Spends a limit through leases: blocks of hits reserved with one atomic `hit` each.

    A container reserves `lease` hits at once and spends them locally, so a busy user costs
    one DynamoDB write per `lease` requests instead of one per request. Every spent hit was
    reserved atomically, so all containers together never exceed the limit; hits a container
    leased but did not spend are lost for that window (it errs on the side of refusing).
    When a full lease no longer fits, it leases one hit at a time to use the exact remainder.
    """

    def __init__(self, lease: int = 10) -> None:
        self.lease = lease
        self._left: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def spend(self, limit: Limit, subject: str, *, now: float | None = None) -> None:
        """Spend one hit of `subject` against `limit`; RateLimitedError when none is left."""
        instant = time.time() if now is None else now
        key = (limit.name, subject, Window.at(limit, instant).start)
        with self._lock:
            if self._left.get(key, 0) > 0:
                self._left[key] -= 1
                return
            self._forget_old_windows(key)
            size = min(self.lease, limit.max_requests)
            try:
                hit(limit, subject, now=instant, cost=size)
            except RateLimitedError:
                if size == 1:
                    raise
                size = 1
                hit(limit, subject, now=instant, cost=1)
            self._left[key] = size - 1

    def reset(self) -> None:
        """Drop every lease (tests switch emulators between cases)."""
        with self._lock:
            self._left.clear()

    def _forget_old_windows(self, current: tuple[str, str, int]) -> None:
        stale = [k for k in self._left if k[:2] == current[:2] and k[2] != current[2]]
        for key in stale:
            del self._left[key]


api_leases = AllowanceLeases()
