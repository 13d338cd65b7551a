"""Helpers for the concurrency and fault tests: threads that start together and a tally of
the anomalies each test looked for (duplicates, gaps, overshoot, lost updates, items half
written by a failed request), summed per
test class and printed as one line per class at the end of the run (by `tests/conftest.py`).

Import the fixture into a test module with
`from tests.integration.race_fixtures import *  # noqa: F403`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import pytest

THREADS = 8
T = TypeVar("T")


PROPERTY = "anomalies"  # the user property that carries a test's tally to the summary


@dataclass
class Anomalies:
    """What tests looked for; every count must stay 0."""

    duplicates: int = 0
    gaps: int = 0
    overshoot: int = 0
    lost_updates: int = 0
    half_written: int = 0
    checks: int = 0

    def check(self, **found: int) -> None:
        """Add one invariant check's findings, then fail on any."""
        self.checks += 1
        self.add(found)
        assert not any(found.values()), found

    def add(self, counts: dict[str, int]) -> None:
        for name, count in counts.items():
            setattr(self, name, getattr(self, name) + count)

    def line(self, owner: str) -> str:
        counts = " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"{owner}: {counts}"


@pytest.fixture
def anomalies(request: pytest.FixtureRequest) -> Iterator[Anomalies]:
    """This test's tally; it is added to its class's summary line."""
    found = Anomalies()
    yield found
    request.node.user_properties.append((PROPERTY, asdict(found)))


_totals: dict[str, Anomalies] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add each test's tally to its class's (reports of xdist workers included)."""
    if report.when != "teardown":
        return
    for name, counts in report.user_properties:
        if name == PROPERTY:
            owner = report.nodeid.split("[", 1)[0].rsplit("::", 1)[0]
            _totals.setdefault(owner, Anomalies()).add(counts)


def anomalies_summary(terminalreporter: Any) -> None:
    """One line per test class: the anomalies its tests found."""
    if _totals:
        terminalreporter.section("anomalies (every count must be 0)")
        for owner, total in sorted(_totals.items()):
            terminalreporter.write_line(total.line(owner))


def in_parallel(tasks: Sequence[Callable[[], T]], workers: int = THREADS) -> list[T]:
    """Run `tasks` on `workers` threads that start together; results in task order."""
    start = threading.Barrier(min(workers, len(tasks)), timeout=30)
    local = threading.local()
    threads: set[int] = set()

    def run(task: Callable[[], T]) -> T:
        if not getattr(local, "started", False):
            local.started = True
            start.wait()
        threads.add(threading.get_ident())
        return task()

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(run, tasks))
    assert len(threads) == min(workers, len(tasks))
    return results


def duplicates(values: Sequence[Any]) -> int:
    return len(values) - len(set(values))


def sequence_gaps(numbers: Sequence[str], prefix: str, year: int, count: int) -> int:
    """How many of `<prefix>-<year>-000001` .. `count` are missing from `numbers`, plus how
    many of `numbers` are outside that range."""
    expected = {f"{prefix}-{year}-{n:06d}" for n in range(1, count + 1)}
    return len(expected - set(numbers)) + len(set(numbers) - expected)


__all__ = ["THREADS", "Anomalies", "anomalies", "duplicates", "in_parallel", "sequence_gaps"]
