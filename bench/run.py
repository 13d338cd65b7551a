"""`make bench`: run every bench, then print one table of what was measured in this run,
each row with its DESIGN §10 bar and verdict, and save that table (plus each bench's
details) as bench/results/<UTC timestamp>.json and bench/results/latest.json.

Sections: cold start per function (`cold_start.py`), warm overhead of representative
endpoints and DynamoDB calls per GET route (`api.py`, the authorizer's own calls from
`identity.py`), the provisioning latency curve (`provisioning.py`) and the billing throughput
curve (`billing.py`). Default sizes keep the whole run near 5 minutes on two cores;
BILLING_BENCH_SIZES=100,1000,10000 adds the 10,000-tenant billing run (~7 min more) and
BENCH_N=<rounds> changes the warm-overhead rounds (default 300).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(REPO / "bench"),
    str(REPO),
    str(REPO / "layers/dotmac/python"),
    str(REPO / "localstack"),
]

Section = dict[str, Any]  # title, bar, columns [[key, header, format]], rows


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def cold_start_section(result: dict[str, Any]) -> Section:
    bar = result["bar"]
    return {
        "title": (
            f"Cold start: app.py imported in a fresh interpreter vs `import boto3`"
            f" ({result['boto3_import_ms']:.0f} ms), median of {result['runs']}"
        ),
        "bar": f"<= {bar}x",
        "columns": [
            ["function", "function", ""],
            ["import_ms", "import ms", ".1f"],
            ["first_request_ms", "1st request ms", ".1f"],
            ["ratio", "ratio", ".2f"],
            ["verdict", "", ""],
        ],
        "rows": [{**r, "verdict": _verdict(r["ratio"] <= bar)} for r in result["rows"]],
    }


def api_sections(api: dict[str, Any], identity: dict[str, Any] | None = None) -> list[Section]:
    overhead = {
        "title": (
            "Warm overhead: the request through the gateway (authorizer, tenancy, limits,"
            " validation, envelope) vs the bare calls it makes, replayed;"
            f" median of {api['overhead'][0]['n']}"
        ),
        "bar": f"<= {api['overhead'][0]['bar']}x the bare calls",
        "columns": [
            ["route", "endpoint", ""],
            ["calls", "its calls", ""],
            ["full_ms", "full ms", ".2f"],
            ["bare_ms", "bare ms", ".2f"],
            ["ratio", "ratio", ".2f"],
            ["dynamodb_ms", "DynamoDB only ms", ".2f"],
            ["ratio_vs_dynamodb", "ratio to it", ".2f"],
            ["verdict", "", ""],
        ],
        "rows": [
            {
                **r,
                "calls": ", ".join(f"{k} x{v}" for k, v in r["calls"].items()),
                "verdict": _verdict(r["ratio"] <= r["bar"]),
            }
            for r in api["overhead"]
        ],
    }
    rows = []
    if identity is not None:
        rows.append(
            {
                "route": "(authorizer, every request, warm)",
                "calls": identity["aws_calls"],
                "goal": 0,
                "note": f"{identity['authorizer_us']:.0f} us per token verified",
                "verdict": _verdict(identity["aws_calls"] == 0),
            }
        )
    for r in api["rows"]:
        if "calls" not in r:
            rows.append({"route": r["route"], "note": r["status"], "verdict": "-"})
            continue
        other = ", ".join(f"{k} x{v}" for k, v in r["other"].items())
        items = "" if "items" not in r else f"{r['items']}{'+' if r['more'] else ''} items"
        rows.append(
            {
                "route": r["route"],
                "calls": r["calls"],
                "goal": api["goal_calls"],
                "note": "; ".join(part for part in (items, other, r.get("why", "")) if part),
                "verdict": _verdict(r["calls"] <= api["goal_calls"]),
            }
        )
    calls = {
        "title": (
            "DynamoDB calls per GET route (warm, counted with botocore event hooks; the"
            " authorizer's and the API meters' calls apart)"
        ),
        "bar": f"{api['goal_calls']} per get or list page",
        "columns": [
            ["route", "route", ""],
            ["calls", "calls", ""],
            ["goal", "goal", ""],
            ["note", "page, other services / why not measured", ""],
            ["verdict", "", ""],
        ],
        "rows": rows,
    }
    return [overhead, calls]


def provisioning_section(result: dict[str, Any]) -> Section:
    goal, first = result["goal_s"], result["rows"][0]["mean_s"]
    return {
        "title": (
            "Provisioning latency curve: request -> workflow SUCCEEDED, tenants one after"
            f" another (N=100: last 10 / first 10 = {result['flatness']:.2f}x)"
        ),
        "bar": f"< {goal} s per tenant, flat",
        "columns": [
            ["tenants", "tenants", ""],
            ["mean_s", "mean s", ".3f"],
            ["p50_s", "p50 s", ".3f"],
            ["max_s", "max s", ".3f"],
            ["total_s", "total s", ".1f"],
            ["vs_first", "mean vs N=1", ".2f"],
            ["verdict", "", ""],
        ],
        "rows": [
            {**r, "vs_first": r["mean_s"] / first, "verdict": _verdict(r["mean_s"] < goal)}
            for r in result["rows"]
        ],
    }


def billing_section(result: dict[str, Any]) -> Section:
    bar = result["linearity_bar"]
    return {
        "title": (
            f"Billing throughput curve: a run for {result['period']} (start_run + queue drained"
            " by the real invoice-worker) vs minimal I/O (its items and objects written bare)"
        ),
        "bar": f"linear: ms/tenant within {bar}x of the first size (ratio: information)",
        "columns": [
            ["tenants", "tenants", ""],
            ["run_s", "run s", ".2f"],
            ["tenants_per_s", "tenants/s", ".1f"],
            ["per_tenant_ms", "ms/tenant", ".2f"],
            ["baseline_s", "minimal I/O s", ".2f"],
            ["ratio", "ratio", ".2f"],
            ["ratio_without_render", "ratio w/o PDF", ".2f"],
            ["linearity", "ms/tenant vs first", ".2f"],
            ["verdict", "", ""],
        ],
        "rows": [
            {
                **r,
                "tenants_per_s": r["tenants"] / r["run_s"],
                "verdict": _verdict(r["linearity"] <= bar),
            }
            for r in result["rows"]
        ],
    }


def print_sections(sections: list[Section]) -> None:
    """Print the sections as one table: per section a title, its bar, a header and rows."""
    for section in sections:
        columns = section["columns"]
        cells = [
            ["" if row.get(key) is None else format(row[key], fmt) for key, _, fmt in columns]
            for row in section["rows"]
        ]
        headers = [header for _, header, _ in columns]
        widths = [max(len(c) for c in column) for column in zip(headers, *cells, strict=False)]
        numeric = [
            any(isinstance(row.get(key), int | float) for row in section["rows"])
            for key, _, _ in columns
        ]

        def line(values: list[str], widths: list[int] = widths, right: list[bool] = numeric) -> str:
            return "  ".join(
                v.rjust(w) if r else v.ljust(w)
                for v, w, r in zip(values, widths, right, strict=True)
            ).rstrip()

        print(f"\n== {section['title']}\n   bar: {section['bar']}")
        print(line(headers))
        for row in cells:
            print(line(row))


def _timed(name: str, fn: Callable[[], Any]) -> Any:
    """`fn()`, its functions' log lines kept off the table (see `stack.quiet_stdout`)."""
    from stack import quiet_stdout

    print(f"bench: {name} ...", flush=True)
    started = time.perf_counter()
    with quiet_stdout():
        result = fn()
    print(f"bench: {name} done in {time.perf_counter() - started:.0f}s", flush=True)
    return result


def main() -> int:
    import api
    import billing
    import cold_start
    import identity
    import provisioning

    started = time.perf_counter()
    rounds = int(os.environ.get("BENCH_N", api.N))
    details = {
        "cold_start": _timed("cold start", cold_start.run),
        "identity": _timed("authorizer", identity.run),
        "api": _timed("API calls and warm overhead", lambda: api.run(rounds)),
        "provisioning": _timed("provisioning", provisioning.run),
        "billing": _timed("billing", billing.run),
    }
    sections = [
        cold_start_section(details["cold_start"]),
        *api_sections(details["api"], details["identity"]),
        provisioning_section(details["provisioning"]),
        billing_section(details["billing"]),
    ]
    print_sections(sections)
    now = datetime.now(UTC)
    results = {
        "measured_at": now.isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "seconds": round(time.perf_counter() - started),
        "table": sections,
        "details": details,
    }
    folder = REPO / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)
    name = f"{now:%Y%m%dT%H%M%SZ}.json"
    for file in (name, "latest.json"):
        (folder / file).write_text(text)
    print(f"\nsaved bench/results/{name} and latest.json ({results['seconds']}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
