"""Shared test setup: fake AWS credentials, no real endpoints, fresh settings per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.integration.race_fixtures import (  # noqa: F401 - a hook: the anomaly tallies
    anomalies_summary,
    pytest_runtest_logreport,
)

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SECURITY_TOKEN="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    DOTMAC_STAGE="test",
    POWERTOOLS_METRICS_NAMESPACE="DotMacTest",
    # argon2id at a test-sized cost; the production profile is exercised by the e2e stack.
    DOTMAC_FAST_PASSWORD_HASHING="true",
)
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    from dotmac.core.aws import reset_clients
    from dotmac.core.queues import reset_queue_urls
    from dotmac.core.ratelimit import api_leases
    from dotmac.core.settings import reset_settings
    from dotmac.management.entitlements import api_calls
    from dotmac.management.flags import cached_flags
    from dotmac.management.repository import cached_tenants

    def reset() -> None:
        reset_settings()
        reset_clients()
        reset_queue_urls()
        api_leases.reset()
        api_calls.reset()
        cached_flags.forget()
        cached_tenants.forget()

    reset()
    yield
    reset()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After the run: the concurrency and fault tests' anomalies, then each test's `summary`
    property (`record_property("summary", ...)`, the fuzz table). Here, in the root conftest,
    because the xdist controller loads no other and worker output is not shown."""
    anomalies_summary(terminalreporter)
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "summary":
                    terminalreporter.write_line(f"\n{report.nodeid}:\n{value}")
