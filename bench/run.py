"""`make bench`: print ratios measured in this run and save them under bench/results/.

Cold start: for each function, the import time of its `app.py` in a fresh interpreter,
as a ratio to `python -c "import boto3"` measured the same way, in the same run
(DESIGN §10 bar: <= 1.5x). Each figure is the median of several fresh interpreters.
First request: the same fresh interpreter also serves one request (health/live for HTTP
apps) so the cost that lazy imports move out of the import is visible too.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(REPO / "bench"),
    str(REPO),
    str(REPO / "layers/dotmac/python"),
    str(REPO / "localstack"),
]

from infra.resources import FUNCTIONS_DIR, STACK  # noqa: E402

RUNS = 7
BAR = 1.5

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


def cold_start() -> list[dict[str, object]]:
    baseline, _ = _median(_BASELINE)
    rows: list[dict[str, object]] = [
        {"function": "import boto3 (baseline)", "import_ms": baseline * 1000, "ratio": 1.0}
    ]
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
                "first_request_ms": first * 1000,
                "meets_bar": imported / baseline <= BAR,
            }
        )
    return rows


def main() -> int:
    import billing
    import identity
    import isp
    import provisioning

    started = time.perf_counter()
    rows = cold_start()
    print(
        f"\nCold start: app.py import in a fresh interpreter vs `import boto3` "
        f"(median of {RUNS}; bar <= {BAR}x)"
    )
    print(f"{'function':32} {'import ms':>10} {'ratio':>7} {'1st request ms':>15}")
    for row in rows:
        first = row.get("first_request_ms")
        print(
            f"{row['function']:32} {row['import_ms']:10.1f} {row['ratio']:6.2f}x "
            f"{'' if first is None else format(first, '15.1f')}"
        )
    worst = max(float(r["ratio"]) for r in rows[1:])  # type: ignore[arg-type]
    print(f"worst ratio {worst:.2f}x -> {'OK' if worst <= BAR else 'OVER THE BAR'}")
    identity_result = identity.run()
    identity.report(identity_result)
    isp_result = isp.run()
    isp.report(isp_result)
    provisioning_result = provisioning.run()
    provisioning.report(provisioning_result)
    billing_result = billing.run()
    billing.report(billing_result)
    out = REPO / "bench" / "results" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "measured_at": time.time(),
        "python": sys.version.split()[0],
        "cold_start": {"bar": BAR, "rows": rows},
        "identity": identity_result,
        "isp": isp_result,
        "provisioning": provisioning_result,
        "billing": billing_result,
    }
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(REPO)} ({time.perf_counter() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
