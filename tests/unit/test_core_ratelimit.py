"""Rate limit keys, windows and error mapping; nothing here talks to DynamoDB."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from dotmac.core.errors import RateLimitedError
from dotmac.core.model import check_partition_key
from dotmac.core.ratelimit import (
    API_PER_USER,
    BULK_PER_TENANT,
    EXPIRY_MARGIN_SECONDS,
    LOGIN_PER_IP,
    SEARCH_PER_TENANT,
    SIGNUP_PER_IP,
    Limit,
    RateWindow,
    Window,
    hit,
    partition_key,
    subject_key,
)


def test_the_limits_match_the_design() -> None:
    figures = {
        limit.name: (limit.max_requests, limit.window_seconds)
        for limit in (LOGIN_PER_IP, API_PER_USER, SEARCH_PER_TENANT, BULK_PER_TENANT, SIGNUP_PER_IP)
    }
    assert figures == {
        "login-ip": (5, 60),
        "api-user": (100, 60),
        "search-tenant": (30, 60),
        "bulk-tenant": (10, 3600),
        "signup-ip": (5, 3600),
    }


@pytest.mark.parametrize(
    ("name", "max_requests", "window"),
    [("", 5, 60), ("a#b", 5, 60), ("a b", 5, 60), ("ok", 0, 60), ("ok", 5, 0)],
)
def test_a_malformed_limit_is_refused(name: str, max_requests: int, window: int) -> None:
    with pytest.raises(ValueError):
        Limit(name, max_requests, window)


class TestSubjectKey:
    @pytest.mark.parametrize(
        "subject",
        ["203.0.113.7", "2001:db8::1", "user-01HX", "acme", "jane.doe@example.com", "a_b"],
    )
    def test_plain_subjects_are_kept(self, subject: str) -> None:
        assert subject_key(subject) == subject

    @pytest.mark.parametrize(
        "subject",
        [
            "a#b",
            "#",
            "fe80::1%eth0",
            "Jane Doe",
            "jané@example.com",
            "x+tag@example.com",
            "x" * 129,
        ],
    )
    def test_other_subjects_are_hashed(self, subject: str) -> None:
        expected = "sha256=" + hashlib.sha256(subject.encode()).hexdigest()
        assert subject_key(subject) == expected
        assert "#" not in subject_key(subject)

    def test_a_plain_subject_cannot_pose_as_a_hashed_one(self) -> None:
        hashed = subject_key("a#b")
        assert subject_key(hashed) != hashed  # `=` is not plain, so it is hashed again

    def test_an_empty_subject_is_refused(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            subject_key("")


def test_partition_keys_live_in_the_platform_rate_space() -> None:
    assert partition_key(LOGIN_PER_IP, "203.0.113.7") == "RATE#login-ip#203.0.113.7"
    key = partition_key(LOGIN_PER_IP, "evil#T#acme")
    assert key.count("#") == 2 and key.startswith("RATE#login-ip#sha256=")
    check_partition_key(key)
    assert partition_key(API_PER_USER, "u1") != partition_key(LOGIN_PER_IP, "u1")


class TestWindow:
    def test_windows_align_to_their_length(self) -> None:
        assert Window.at(LOGIN_PER_IP, 1_700_000_010.5) == Window(1_699_999_980, 1_700_000_040)
        assert Window.at(LOGIN_PER_IP, 1_700_000_040) == Window(1_700_000_040, 1_700_000_100)
        assert Window.at(LOGIN_PER_IP, 1_700_000_039.999) == Window(1_699_999_980, 1_700_000_040)
        assert Window.at(BULK_PER_TENANT, 1_700_000_010) == Window(1_699_999_200, 1_700_002_800)

    def test_sort_key_and_expiry(self) -> None:
        window = Window.at(LOGIN_PER_IP, 1_700_000_010)
        assert window.sort_key == "W#1699999980"
        assert window.expires_at == 1_700_000_040 + EXPIRY_MARGIN_SECONDS
        assert window.expires_at > window.end

    @pytest.mark.parametrize(
        ("now", "expected"),
        [
            (1_699_999_980.0, 60),  # first instant of the window: the whole window
            (1_700_000_010.5, 30),  # 29.5 s left: round up, never invite an early retry
            (1_700_000_039.2, 1),
            (1_700_000_039.999, 1),  # at least 1
        ],
    )
    def test_retry_after_is_whole_seconds_to_the_window_end(
        self, now: float, expected: int
    ) -> None:
        assert Window.at(LOGIN_PER_IP, now).retry_after(now) == expected

    def test_retry_after_is_never_below_one(self) -> None:
        assert Window(0, 60).retry_after(60.0) == 1
        assert Window(0, 60).retry_after(75.0) == 1


def _update_error(code: str) -> UpdateError:
    cause = ClientError({"Error": {"Code": code, "Message": "x"}}, "UpdateItem")
    return UpdateError("Failed to update item", cause)


class TestHitErrors:
    """`hit`'s error mapping, with RateWindow.update replaced (no I/O)."""

    def test_a_failed_condition_becomes_429_with_retry_after(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(self: RateWindow, **_: Any) -> None:
            raise _update_error("ConditionalCheckFailedException")

        monkeypatch.setattr(RateWindow, "update", refuse)
        with pytest.raises(RateLimitedError) as caught:
            hit(LOGIN_PER_IP, "203.0.113.7", now=1_700_000_010.5)
        error = caught.value
        assert (error.status, error.code, error.retry_after) == (429, "RATE_LIMITED", 30)
        assert error.headers == {"Retry-After": "30"}
        assert "login-ip" in error.message

    def test_other_dynamodb_errors_propagate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def throttle(self: RateWindow, **_: Any) -> None:
            raise _update_error("ProvisionedThroughputExceededException")

        monkeypatch.setattr(RateWindow, "update", throttle)
        with pytest.raises(UpdateError) as caught:
            hit(LOGIN_PER_IP, "203.0.113.7", now=0)
        assert caught.value.cause_response_code == "ProvisionedThroughputExceededException"

    @pytest.mark.parametrize("cost", [0, -1, 6])
    def test_a_cost_outside_the_limit_is_refused_before_io(
        self, cost: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def unexpected(self: RateWindow, **_: Any) -> None:
            raise AssertionError("no I/O expected")

        monkeypatch.setattr(RateWindow, "update", unexpected)
        with pytest.raises(ValueError, match="cost"):
            hit(LOGIN_PER_IP, "203.0.113.7", now=0, cost=cost)
