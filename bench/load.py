"""`make load`: a minute of load on the local platform over HTTP, as ABC Corp's people use it.

Starts `python -m devcloud` (seeded: ABC Corp and its ISP demo) on free ports, as the e2e
tests do (`devcloud.launcher`), with two settings for this run only, through its environment:
DOTMAC_API_LIMIT_PER_USER=100000 (DESIGN §5's 100 requests a minute per user would refuse
most of this load: all the locust users of one kind share one demo identity; logins stay
limited, each demo user signs in once) and DOTMAC_ACCESS_LOG=false. Then runs locust headless
against its gateway with the users and the mix of reads and writes of bench/locustfile.py,
and prints p50/p95/p99 latency, throughput and error rate overall, per group and per
endpoint, against the goal: p95 < 200 ms and no errors. The table is saved as
bench/results/load-latest.json; the exit code is 1 when the goal is missed.

Knobs: LOAD_SECONDS (60), LOAD_USERS (20), LOAD_SPAWN_RATE (10 users a second) and
LOAD_WAIT (a user's think time between actions, "0.5,2" seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import run as bench

from devcloud.launcher import launched

GOAL_P95_MS = 200
COLUMNS = [
    ["name", "requests", ""],
    ["requests", "count", ""],
    ["rps", "req/s", ".1f"],
    ["p50_ms", "p50 ms", ""],
    ["p95_ms", "p95 ms", ""],
    ["p99_ms", "p99 ms", ""],
    ["error_rate", "errors", ".2%"],
]


def _locust(host: str, results: Path, seconds: int, users: int, rate: int) -> Path:
    """Run locust headless, its statistics to `results`; its own output's file."""
    command = [
        str(Path(sys.executable).with_name("locust")),
        "--locustfile",
        str(bench.REPO / "bench" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--host",
        host,
        "--users",
        str(users),
        "--spawn-rate",
        str(rate),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
    ]
    environment = {**os.environ, "LOAD_RESULTS": str(results)}
    log = results.with_suffix(".log")
    with log.open("wb") as out:
        subprocess.run(command, env=environment, stdout=out, stderr=subprocess.STDOUT, check=False)
    return log


def sections(result: dict[str, Any], settings: str) -> list[bench.Section]:
    """The load table: overall and per group with the goal's verdict, then per endpoint."""
    total = result["total"]

    def judged(row: dict[str, Any]) -> dict[str, Any]:
        met = row["p95_ms"] < GOAL_P95_MS and row["failures"] == 0
        return {**row, "verdict": "ok" if met else "OVER"}

    return [
        {
            "title": (
                f"Load: {total['requests']} requests in {result['seconds']:.0f} s ({settings})"
            ),
            "bar": f"p95 < {GOAL_P95_MS} ms, no errors",
            "columns": [*COLUMNS, ["verdict", "", ""]],
            "rows": [judged(total), *(judged(group) for group in result["groups"])],
        },
        {
            "title": "Load per endpoint",
            "bar": f"p95 < {GOAL_P95_MS} ms, no errors",
            "columns": [*COLUMNS, ["verdict", "", ""]],
            "rows": [judged(row) for row in result["endpoints"]],
        },
    ]


def main() -> int:
    seconds = int(os.environ.get("LOAD_SECONDS", "60"))
    users = int(os.environ.get("LOAD_USERS", "20"))
    rate = int(os.environ.get("LOAD_SPAWN_RATE", "10"))
    wait = os.environ.get("LOAD_WAIT", "0.5,2")
    with tempfile.TemporaryDirectory() as folder:
        log, results = Path(folder) / "devcloud.log", Path(folder) / "locust.json"
        print(f"load: starting the local platform (log: {log}) ...", flush=True)
        started = time.perf_counter()
        with launched(
            log, "load", DOTMAC_API_LIMIT_PER_USER="100000", DOTMAC_ACCESS_LOG="false"
        ) as stack:
            print(f"load: up in {time.perf_counter() - started:.0f}s at {stack.api}", flush=True)
            print(f"load: {users} users for {seconds}s ...", flush=True)
            locust_log = _locust(stack.api, results, seconds, users, rate)
        if not results.exists():
            print(f"load: locust failed:\n{locust_log.read_text()[-5000:]}")
            print(f"load: the platform's log:\n{stack.log()[-5000:]}")
            return 1
        result = json.loads(results.read_text())
    settings = f"{users} users, think time {wait.replace(',', '-')} s, spawn {rate}/s"
    table = sections(result, settings)
    bench.print_sections(table)
    for error in result["errors"]:
        print(f"  error x{error['occurrences']}: {error['name']}: {error['error']}")
    out = bench.REPO / "bench" / "results" / "load-latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs",
        "settings": {"seconds": seconds, "users": users, "spawn_rate": rate, "wait_s": wait},
        "table": table,
        "errors": result["errors"],
    }
    out.write_text(json.dumps(saved, indent=2))
    print(f"\nsaved {out.relative_to(bench.REPO)}")
    return 0 if table[0]["rows"][0]["verdict"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
