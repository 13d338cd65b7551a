"""`interval_seconds`: the local scheduler's reading of EventBridge `rate(...)` expressions."""

from __future__ import annotations

import pytest

from devcloud.scheduler import interval_seconds, scheduled_event


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(12 hours)", 43200),
        ("rate(1 day)", 86400),
        ("rate(7 days)", 604800),
    ],
)
def test_valid_rate_expressions(expression: str, seconds: int) -> None:
    assert interval_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 minutes)",  # 1 takes the singular
        "rate(1 hours)",
        "rate(1 days)",
        "rate(5 minute)",  # more than 1 takes the plural
        "rate(2 hour)",
        "rate(2 day)",
        "rate(0 minutes)",
        "rate(0 minute)",
    ],
)
def test_singular_plural_and_zero_rules(expression: str) -> None:
    with pytest.raises(ValueError, match="bad rate expression"):
        interval_seconds(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 12 * * ? *)",
        "cron(0/5 * * * ? *)",
        "",
        "rate()",
        "rate(5)",
        "rate(minutes)",
        "rate(-5 minutes)",
        "rate(1.5 hours)",
        "rate(5 seconds)",
        "rate(5 weeks)",
        "rate(5 Minutes)",
        "rate(5  minutes)",
        "rate(5 minutes) ",
        " rate(5 minutes)",
        "rate(5 minutes)\n",
        "RATE(5 minutes)",
        "rate 5 minutes",
    ],
)
def test_unsupported_expressions_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="unsupported schedule expression"):
        interval_seconds(expression)


@pytest.mark.parametrize("expression", ["rate(\u0665 minutes)", "rate(\uff15 minutes)"])
def test_non_ascii_digits_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        interval_seconds(expression)


def test_scheduled_event_shape() -> None:
    event = scheduled_event("arn:aws:events:us-east-1:000000000000:rule/r", "us-east-1")
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == ["arn:aws:events:us-east-1:000000000000:rule/r"]
    assert event["region"] == "us-east-1"
    assert event["detail"] == {}
    assert event["time"].endswith("Z")
    assert event["id"] != scheduled_event("arn:x", "us-east-1")["id"]
