"""Local EventBridge schedules: invoke scheduled functions with a `Scheduled Event`."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from devcloud.events import Schedule
from dotmac.core.observability import get_logger

_RATE = re.compile(r"^rate\(([0-9]+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def interval_seconds(expression: str) -> int:
    """Seconds between runs of a `rate(...)` expression."""
    match = _RATE.fullmatch(expression)
    if match is None:
        raise ValueError(f"unsupported schedule expression {expression!r} (use rate(N unit))")
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    if value < 1:
        raise ValueError(f"bad rate expression {expression!r}: the rate must be at least 1")
    if (value == 1) != (match.group(2) == unit):
        raise ValueError(f"bad rate expression {expression!r}: only 1 takes a singular unit")
    return value * _UNIT_SECONDS[unit]


def scheduled_event(rule_arn: str, region: str) -> dict[str, Any]:
    """The event EventBridge sends for a scheduled rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    """Runs every schedule on one thread; the first run comes one interval after start."""

    def __init__(self, session: Any, schedules: list[tuple[Schedule, str]]) -> None:
        self._lambda = session.client("lambda")
        self._region = session.region_name
        self._jobs = [(s, name, interval_seconds(s.expression)) for s, name in schedules]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self.runs: dict[str, int] = {name: 0 for _, name, _ in self._jobs}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def run_now(self, function_name: str) -> Any:
        """Invoke one scheduled function immediately (also used by tests)."""
        event = scheduled_event(
            f"arn:aws:events:{self._region}:000000000000:rule/{function_name}", self._region
        )
        response = self._lambda.invoke(FunctionName=function_name, Payload=json.dumps(event))
        self.runs[function_name] = self.runs.get(function_name, 0) + 1
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            get_logger().error("scheduled function failed", function=function_name, error=payload)
        return payload

    def _run(self) -> None:
        started = time.monotonic()
        due = {name: started + interval for _, name, interval in self._jobs}
        while not self._stop.is_set():
            now = time.monotonic()
            for _, name, interval in self._jobs:
                if now >= due[name]:
                    due[name] = now + interval
                    try:
                        self.run_now(name)
                    except Exception:
                        get_logger().exception("scheduler error", function=name)
            next_due = min(due.values(), default=now + 60)
            self._stop.wait(max(0.05, min(1.0, next_due - time.monotonic())))
