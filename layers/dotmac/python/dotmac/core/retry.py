"""Retrying a read-modify-write that lost an optimistic-concurrency race.

Import lazily (tenacity costs ~30 ms of import): only write paths that can lose a race
need it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

from dotmac.core.errors import StaleWriteError

T = TypeVar("T")
ATTEMPTS = 25
BACKOFF_BASE = 0.002  # seconds
BACKOFF_CAP = 0.5


def lost_race(exc: BaseException) -> bool:
    """True for a failed write condition or a transaction cancelled by another one (not for
    a domain rule's 409, which a retry would not change)."""
    from dotmac.core.unit_of_work import cancelled_by_another_transaction

    return isinstance(exc, StaleWriteError) or cancelled_by_another_transaction(exc)


def until_won(attempt: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run `attempt` (which reads, stages and commits) again after a jittered exponential
    back-off while it loses a race; the last loss is raised. `attempt` must re-read what it
    changes, and should first check whether its own earlier try already committed (its
    StaleWriteError looks the same as a lost race)."""
    retrying: Any = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lost_race),
        wait=tenacity.wait_random_exponential(multiplier=BACKOFF_BASE, max=BACKOFF_CAP),
        stop=tenacity.stop_after_attempt(attempts),
        reraise=True,
    )
    return retrying(attempt)
