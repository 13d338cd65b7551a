"""The pure field-work rules: the best-technician score (business-rules.md, ISP), haversine
distance, the work-order state machine and the checklist rule."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.core.errors import ConflictError
from dotmac.isp.work_orders import (
    ACTIONS,
    ASSIGNED,
    CANCELLED,
    COMPLETED,
    IN_PROGRESS,
    NEW,
    REQUIRED_SKILLS,
    STATUSES,
    WEIGHTS,
    Candidate,
    best,
    completion_rate,
    eligible,
    haversine_km,
    next_status,
    score,
    unchecked,
)

LAGOS = (6.5244, 3.3792)
SKILLS = sorted({s for needed in REQUIRED_SKILLS.values() for s in needed} | {"welding"})

lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
candidates = st.builds(
    Candidate,
    user_id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    skills=st.frozensets(st.sampled_from(SKILLS)),
    available=st.booleans(),
    lat=lats,
    lon=lons,
    rating=st.floats(min_value=0, max_value=5),
    open_orders=st.integers(min_value=0, max_value=50),
    assigned_total=st.integers(min_value=0, max_value=1000),
    completed=st.integers(min_value=0, max_value=1000),
).filter(lambda c: c.completed <= c.assigned_total)
required_sets = st.sampled_from(list(REQUIRED_SKILLS.values()))


def tech(user_id: str = "a" * 16, **overrides: object) -> Candidate:
    fields: dict[str, object] = {
        "user_id": user_id,
        "skills": frozenset(SKILLS),
        "available": True,
        "lat": LAGOS[0],
        "lon": LAGOS[1],
        "rating": 4.0,
    }
    fields.update(overrides)
    return Candidate(**fields)  # type: ignore[arg-type]


# --- haversine -------------------------------------------------------------------------------


def test_haversine_known_distances() -> None:
    assert haversine_km(*LAGOS, *LAGOS) == 0
    # One degree of latitude is ~111.2 km anywhere; a quarter meridian ~10,008 km.
    assert haversine_km(0, 0, 1, 0) == pytest.approx(111.195, abs=0.01)
    assert haversine_km(0, 0, 90, 0) == pytest.approx(10_007.5, abs=1)
    # Lagos -> Abuja, ~ 525 km as the crow flies.
    assert haversine_km(*LAGOS, 9.0765, 7.3986) == pytest.approx(525, abs=10)
    # Across the antimeridian it is short, not half the world.
    assert haversine_km(0, 179.5, 0, -179.5) == pytest.approx(111.195, abs=0.01)


@given(lats, lons, lats, lons)
def test_haversine_is_symmetric_and_bounded(a: float, b: float, c: float, d: float) -> None:
    there = haversine_km(a, b, c, d)
    assert there == pytest.approx(haversine_km(c, d, a, b), abs=1e-6)
    assert 0 <= there <= math.pi * 6371.0088 + 1e-6


# --- the score -------------------------------------------------------------------------------


def test_score_parts_follow_the_rule() -> None:
    # 10 km away, 2 open orders, 8 of 10 completed, rated 4.5, holding both skills.
    here = tech(rating=4.5, open_orders=2, assigned_total=10, completed=8, lat=0.0, lon=0.0)
    km = haversine_km(0, 0, 0.0899322, 0)  # ~10 km north
    got = score(here, 0.0899322, 0, REQUIRED_SKILLS["installation"])
    assert got.distance_km == pytest.approx(km)
    assert got.parts["distance"] == pytest.approx(100 - 2 * km)
    assert got.parts["workload"] == 60
    assert got.parts["skill"] == 100
    assert got.parts["completion"] == 80
    assert got.parts["rating"] == 90
    expected = 0.3 * (100 - 2 * km) + 0.25 * 60 + 0.2 * 100 + 0.15 * 80 + 0.1 * 90
    assert got.total == pytest.approx(expected)
    assert sum(WEIGHTS.values()) == pytest.approx(1)
    view = got.view()
    assert view["technician_id"] == "a" * 16 and view["total"] == round(expected, 2)


def test_score_floors_and_edges() -> None:
    far = score(tech(lat=-LAGOS[0], lon=-LAGOS[1]), *LAGOS, frozenset())
    assert far.parts["distance"] == 0  # > 50 km: floor 0
    busy = score(tech(open_orders=9), *LAGOS, frozenset())
    assert busy.parts["workload"] == 0
    assert score(tech(), *LAGOS, frozenset()).parts["skill"] == 100  # nothing required
    half = score(
        tech(skills=frozenset({"fiber_splicing"})), *LAGOS, REQUIRED_SKILLS["installation"]
    )
    assert half.parts["skill"] == 50
    assert completion_rate(0, 0) == 100  # before the first assignment
    assert completion_rate(3, 4) == 75
    perfect = score(tech(rating=5.0), *LAGOS, frozenset())
    assert perfect.total == pytest.approx(100)


@given(candidates, lats, lons, required_sets)
def test_the_score_is_within_0_and_100(
    c: Candidate, lat: float, lon: float, req: frozenset[str]
) -> None:
    got = score(c, lat, lon, req)
    assert all(0 <= part <= 100 for part in got.parts.values())
    assert -1e-9 <= got.total <= 100 + 1e-9


@given(candidates, lats, lons, lats, lons, required_sets)
def test_closer_is_never_worse(
    c: Candidate, lat: float, lon: float, near_lat: float, near_lon: float, req: frozenset[str]
) -> None:
    """All else equal, a technician whose home is nearer the order never scores lower."""
    other = Candidate(**{**c.__dict__, "lat": near_lat, "lon": near_lon})
    if haversine_km(near_lat, near_lon, lat, lon) <= haversine_km(c.lat, c.lon, lat, lon):
        assert score(other, lat, lon, req).total >= score(c, lat, lon, req).total


@given(st.lists(candidates, max_size=8), lats, lons, required_sets)
def test_an_unskilled_or_unavailable_technician_is_never_chosen(
    pool: list[Candidate], lat: float, lon: float, req: frozenset[str]
) -> None:
    chosen = best(pool, lat, lon, req)
    fit = [c for c in pool if c.available and req <= c.skills]
    if not fit:
        assert chosen is None
        return
    assert chosen is not None
    winner = next(c for c in fit if c.user_id == chosen.user_id)
    assert eligible(winner, req)
    assert chosen.total == pytest.approx(max(score(c, lat, lon, req).total for c in fit))


def test_best_prefers_the_higher_score_then_fewer_orders_then_the_lower_id() -> None:
    required = REQUIRED_SKILLS["repair"]
    near = tech("b" * 16)
    far = tech("a" * 16, lat=LAGOS[0] + 0.1)  # ~11 km
    unavailable = tech("c" * 16, available=False, rating=5.0)
    unskilled = tech("d" * 16, skills=frozenset({"site_survey"}), rating=5.0)
    chosen = best([far, unavailable, unskilled, near], *LAGOS, required)
    assert chosen is not None and chosen.user_id == near.user_id
    assert best([unavailable, unskilled], *LAGOS, required) is None
    assert best([], *LAGOS, required) is None
    twin = tech("0" * 16)
    chosen = best([near, twin], *LAGOS, required)
    assert chosen is not None and chosen.user_id == twin.user_id  # equal: the lower id


# --- the state machine and the checklist ------------------------------------------------------

EDGES = {
    (NEW, "assign"): ASSIGNED,
    (ASSIGNED, "assign"): ASSIGNED,  # a reassignment
    (ASSIGNED, "check_in"): IN_PROGRESS,
    (IN_PROGRESS, "check_out"): IN_PROGRESS,
    (IN_PROGRESS, "complete"): COMPLETED,
    (NEW, "cancel"): CANCELLED,
    (ASSIGNED, "cancel"): CANCELLED,
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_state_machine(status: str, action: str) -> None:
    if (status, action) in EDGES:
        assert next_status(status, action) == EDGES[(status, action)]
    else:
        with pytest.raises(ConflictError) as raised:
            next_status(status, action)
        assert raised.value.code == "INVALID_STATE"


def test_terminal_states_have_no_way_out() -> None:
    for terminal in (COMPLETED, CANCELLED):
        assert not any(terminal in sources for sources, _ in ACTIONS.values())


def test_every_required_checklist_item_must_be_checked() -> None:
    required = ["fibre spliced", "router configured", "speed tested"]
    assert unchecked(required, dict.fromkeys(required, True)) == []
    assert unchecked(required, {"fibre spliced": True, "speed tested": False}) == [
        "router configured",
        "speed tested",
    ]
    assert unchecked(required, {}) == required
    assert unchecked([], {}) == []


def test_every_type_requires_known_skills() -> None:
    assert REQUIRED_SKILLS["installation"] == {"fiber_splicing", "router_config"}
    assert all(REQUIRED_SKILLS.values())
