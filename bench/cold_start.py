"""Cold start bench: for each function, the import time of its `app.py` in a fresh
interpreter, as a ratio to `python -c "import boto3"` measured the same way, in the same run
(DESIGN §10 bar: <= 1.5x). Each figure is the median of several fresh interpreters.
First request: the same fresh interpreter also serves one request (health/live for HTTP
apps) so the cost that lazy imports move out of the import is visible too.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

RUNS = 7
BAR = 1.5
REPO = Path(__file__).resolve().parent.parent

_IMPORT = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app_under_test", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
imported = time.perf_counter() - start
first = 0.0
if {http}:
    from chalice.test import Client
    start = time.perf_counter()
    with Client(module.app) as client:
        assert client.http.get("/api/v1/{app}/health/live").status_code == 200
    first = time.perf_counter() - start
print(imported, first)
"""

_BASELINE = "import time; s = time.perf_counter(); import boto3; print(time.perf_counter() - s, 0)"


def _fresh(code: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    return float(out[0]), float(out[1])


def _median(code: str) -> tuple[float, float]:
    samples = [_fresh(code) for _ in range(RUNS)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def run() -> dict[str, Any]:
    from infra.resources import FUNCTIONS_DIR, STACK

    baseline, _ = _median(_BASELINE)
    rows: list[dict[str, Any]] = []
    for app in sorted({f.app for f in STACK.functions}):
        code = _IMPORT.format(
            path=str(FUNCTIONS_DIR / app / "app.py"), app=app, http=app in STACK.http_apps
        )
        imported, first = _median(code)
        rows.append(
            {
                "function": f"functions/{app}/app.py",
                "import_ms": imported * 1000,
                "ratio": imported / baseline,
                "first_request_ms": first * 1000 if app in STACK.http_apps else None,
            }
        )
    return {"runs": RUNS, "bar": BAR, "boto3_import_ms": baseline * 1000, "rows": rows}
