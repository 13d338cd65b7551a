"""`make fuzz`: schemathesis over every app's OpenAPI document on a fresh local stack with a
larger budget than `make test`'s and new random cases each run (FUZZ_EXAMPLES per operation,
default 100); prints the per-app table and the first failures. Exit code 1 on any 5xx,
schema or envelope violation. The platform's log (tracebacks of any 5xx) stays in
build/fuzz/devcloud.log."""

from __future__ import annotations

import os
import sys

from devcloud.launcher import REPO, launched
from tests.fuzz import harness


def main() -> int:
    examples = int(os.environ.get("FUZZ_EXAMPLES", "100"))
    log = REPO / "build" / "fuzz" / "devcloud.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"fuzz: starting the local platform (log: {log.relative_to(REPO)}) ...", flush=True)
    with launched(log, "fuzz", **harness.ENV) as stack:
        print(f"fuzz: {examples} examples per operation against {stack.api} ...", flush=True)
        report = harness.fuzz(stack, examples)
    print(report)
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
