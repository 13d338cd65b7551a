"""Start the real local stack (`python -m devcloud`) on free ports and talk HTTP to it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devcloud.launcher import LocalStack, launched


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    log_path = tmp_path_factory.mktemp("devcloud") / "devcloud.log"
    with launched(log_path, stage="e2e") as stack:
        yield stack
    # Graceful shutdown is part of the contract: SIGTERM drains and exits 0.
    returncode = stack.process.returncode
    assert returncode == 0, f"exit code {returncode}:\n{stack.log()[-3000:]}"
    assert "stopped (0 requests cut off)" in stack.log()
