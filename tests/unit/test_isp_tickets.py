"""The pure ticket rules: SLA deadlines per priority (24/7 clock), the SLA status at a time
(boundaries; monotone in time), breaches, the running timers and the state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.core.errors import ConflictError
from dotmac.isp.tickets import (
    ACTIONS,
    AT_RISK,
    BREACHED,
    CLOSED,
    FIRST_RESPONSE,
    IN_PROGRESS,
    OK,
    OPEN,
    PRIORITIES,
    RESOLUTION,
    RESOLVED,
    SLA_STATUSES,
    STATUSES,
    Clock,
    at_risk_from,
    breaches,
    deadlines,
    next_status,
    running,
    sla_status,
)

T0 = datetime(2026, 3, 27, 22, 50, tzinfo=UTC)  # a Friday night: the clock is 24/7
US = timedelta(microseconds=1)

# --- deadlines -------------------------------------------------------------------------------

RULES = {  # business-rules.md, ISP: first response / resolution
    "critical": (timedelta(minutes=15), timedelta(hours=4)),
    "urgent": (timedelta(hours=1), timedelta(hours=8)),
    "high": (timedelta(hours=4), timedelta(hours=24)),
    "normal": (timedelta(hours=24), timedelta(days=3)),
    "low": (timedelta(days=2), timedelta(days=7)),
}


@pytest.mark.parametrize("priority", PRIORITIES)
def test_deadlines_per_priority_on_a_24_7_clock(priority: str) -> None:
    first, resolution = RULES[priority]
    assert deadlines(T0, priority) == {FIRST_RESPONSE: T0 + first, RESOLUTION: T0 + resolution}


def test_examples_across_a_weekend_and_midnight() -> None:
    assert deadlines(T0, "critical")[FIRST_RESPONSE] == datetime(2026, 3, 27, 23, 5, tzinfo=UTC)
    assert deadlines(T0, "critical")[RESOLUTION] == datetime(2026, 3, 28, 2, 50, tzinfo=UTC)
    assert deadlines(T0, "low")[RESOLUTION] == datetime(2026, 4, 3, 22, 50, tzinfo=UTC)
    assert set(PRIORITIES) == set(RULES)


# --- the SLA status --------------------------------------------------------------------------


@pytest.mark.parametrize("priority", PRIORITIES)
def test_status_boundaries_of_the_first_response_timer(priority: str) -> None:
    clock = Clock(T0, priority)
    window = RULES[priority][0]
    due = T0 + window
    risk = due - window / 5  # 20% of the window left
    assert at_risk_from(T0, due) == risk
    assert sla_status(clock, T0) == OK
    assert sla_status(clock, risk) == OK  # exactly 20% left: not yet at risk
    assert sla_status(clock, risk + US) == AT_RISK
    assert sla_status(clock, due) == AT_RISK  # on the deadline: not breached
    assert sla_status(clock, due + US) == BREACHED
    assert breaches(clock, due + US) == {FIRST_RESPONSE}


def test_the_first_response_stops_its_timer_and_the_resolution_timer_runs_on() -> None:
    due = deadlines(T0, "critical")
    on_time = Clock(T0, "critical", responded_at=T0 + timedelta(minutes=10))
    assert running(on_time) == {RESOLUTION: due[RESOLUTION]}
    assert sla_status(on_time, T0 + timedelta(hours=1)) == OK
    assert sla_status(on_time, T0 + timedelta(hours=3, minutes=13)) == AT_RISK  # < 48 min left
    assert sla_status(on_time, due[RESOLUTION] + US) == BREACHED
    assert breaches(on_time, due[RESOLUTION] + US) == {RESOLUTION}

    late = Clock(T0, "critical", responded_at=due[FIRST_RESPONSE] + US)
    assert breaches(late, T0 + timedelta(minutes=20)) == {FIRST_RESPONSE}  # stays breached
    resolved = Clock(
        T0, "critical", responded_at=T0 + US, resolved_at=due[RESOLUTION] - timedelta(minutes=1)
    )
    assert running(resolved) == {}
    assert sla_status(resolved, T0 + timedelta(days=30)) == OK  # met, whatever happens later


def test_a_recorded_breach_stays_breached_and_stops_its_timer() -> None:
    clock = Clock(T0, "low", recorded=frozenset({FIRST_RESPONSE}))
    assert sla_status(clock, T0) == BREACHED
    assert running(clock) == {RESOLUTION: deadlines(T0, "low")[RESOLUTION]}


times = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 2, 1), timezones=st.just(UTC)
)
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10))
maybe_offset = st.none() | offsets
clocks = st.builds(
    lambda created, priority, responded, resolved, recorded: Clock(
        created,
        priority,
        None if responded is None else created + responded,
        None if resolved is None else created + resolved,
        recorded,
    ),
    times,
    st.sampled_from(PRIORITIES),
    maybe_offset,
    maybe_offset,
    st.frozensets(st.sampled_from((FIRST_RESPONSE, RESOLUTION))),
)


@given(clocks, offsets, offsets)
def test_the_status_is_monotone_in_time(clock: Clock, first: timedelta, later: timedelta) -> None:
    """For one ticket state, a later moment is never in a better SLA status."""
    t1 = clock.created_at + first
    t2 = t1 + later
    rank = SLA_STATUSES.index
    assert rank(sla_status(clock, t1)) <= rank(sla_status(clock, t2))
    assert breaches(clock, t1) <= breaches(clock, t2)


@given(clocks, offsets)
def test_breached_exactly_when_a_deadline_passed_before_its_event(
    clock: Clock, offset: timedelta
) -> None:
    at = clock.created_at + offset
    due = deadlines(clock.created_at, clock.priority)
    expected = set(clock.recorded)
    expected |= {k for k in due if (clock.event(k) or at) > due[k]}
    assert breaches(clock, at) == expected
    assert (sla_status(clock, at) == BREACHED) == bool(expected)


# --- the state machine -----------------------------------------------------------------------

ALLOWED = {
    (OPEN, "respond"): IN_PROGRESS,
    (IN_PROGRESS, "respond"): IN_PROGRESS,  # a comment
    (OPEN, "resolve"): RESOLVED,
    (IN_PROGRESS, "resolve"): RESOLVED,
    (RESOLVED, "close"): CLOSED,
    (RESOLVED, "reopen"): IN_PROGRESS,
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_the_state_machine(status: str, action: str) -> None:
    if (status, action) in ALLOWED:
        assert next_status(status, action) == ALLOWED[status, action]
    else:
        with pytest.raises(ConflictError) as refused:
            next_status(status, action)
        assert refused.value.code == "INVALID_STATE"


def test_closed_is_terminal() -> None:
    assert all(CLOSED not in sources for sources, _ in ACTIONS.values())
