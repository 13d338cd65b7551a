"""API fuzzing on the real local stack with CI's small budget (`make fuzz` runs a larger one):
schemathesis over every app's OpenAPI document, no 5xx, every answer as documented, every 4xx
in the error envelope (tests/fuzz/harness.py says how)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devcloud.launcher import launched
from tests.fuzz import harness

pytestmark = pytest.mark.e2e

# Per operation, after schemathesis' coverage cases; the same cases every run: ~35 s of calls.
EXAMPLES = 2


def test_every_operation_of_every_app_survives_fuzzing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    with launched(tmp_path / "devcloud.log", "fuzz", **harness.ENV) as stack:
        report = harness.fuzz(stack, EXAMPLES, deterministic=True)
    record_property("summary", str(report))  # printed at the end of `make test`
    assert report.clean, report
    # Every operation was called, and every app's logic was reached, not only its refusals.
    assert [t.app for t in report.tallies if len(t.called) != t.operations] == [], report
    assert [t.app for t in report.tallies if not t.classes["2xx"]] == [], report
