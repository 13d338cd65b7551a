"""Feature flags without AWS: schemas, pure evaluation, bucketing, variants and the cache."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import Mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dotmac.core.tenancy import TenantContext
from dotmac.management import flags, repository
from dotmac.management.flags import (
    Flag,
    FlagCache,
    FlagCreate,
    FlagDecision,
    FlagStatus,
    FlagSubject,
    FlagUpdate,
    bucket,
    evaluate,
)
from dotmac.management.repository import Tenant, TenantCache, TenantStatus

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USERS = [f"user-{i}" for i in range(10_000)]


def make_flag(*rules: dict[str, Any], **fields: Any) -> Flag:
    return Flag.model_validate({"key": "new_ui", "rules": list(rules), **fields})


def subject(user: str | None = "u1", tenant: str = "acme", plan: str | None = "starter") -> Any:
    return FlagSubject(tenant_id=tenant, user_id=user, plan=plan)


def on(flag: Flag, subj: FlagSubject, now: datetime = NOW) -> bool:
    return evaluate(flag, subj, now).enabled


ALL_ON = {"strategy": "all", "value": True}


# --- each strategy ---------------------------------------------------------------------------


def test_all_strategy_is_on_or_off_for_everyone() -> None:
    assert on(make_flag(ALL_ON), subject())
    assert on(make_flag(ALL_ON), subject(user=None, plan=None))
    off = evaluate(make_flag({"strategy": "all", "value": False}), subject(), NOW)
    assert off == FlagDecision(False, None, "rule_failed:all")


def test_users_strategy_lets_in_listed_users_only() -> None:
    flag = make_flag({"strategy": "users", "user_ids": ["u1", "u2"]})
    assert on(flag, subject(user="u1")) and on(flag, subject(user="u2"))
    assert not on(flag, subject(user="u3"))
    assert not on(flag, subject(user=None, tenant="u1"))  # the tenant-id fallback is not a user


def test_tenants_strategy_lets_in_listed_tenants_only() -> None:
    flag = make_flag({"strategy": "tenants", "tenant_ids": ["acme", "abc-corp"]})
    assert on(flag, subject(tenant="abc-corp"))
    assert on(flag, subject(tenant="acme", user=None))
    assert not on(flag, subject(tenant="globex"))


def test_plans_strategy_lets_in_tenants_on_listed_plans_only() -> None:
    flag = make_flag({"strategy": "plans", "plans": ["professional", "enterprise"]})
    assert on(flag, subject(plan="enterprise"))
    assert not on(flag, subject(plan="starter"))
    assert not on(flag, subject(plan=None))


def test_percentage_strategy_at_the_edges() -> None:
    nobody = make_flag({"strategy": "percentage", "percent": 0})
    everybody = make_flag({"strategy": "percentage", "percent": 100})
    assert not any(on(nobody, subject(user=u)) for u in USERS[:500])
    assert all(on(everybody, subject(user=u)) for u in USERS[:500])


def test_percentage_bucket_is_the_documented_formula() -> None:
    expected = int(hashlib.sha256(b"new_ui:user-7").hexdigest(), 16) % 10000 / 100
    assert bucket("new_ui:user-7") == expected
    for percent in (expected, expected + 0.01):  # in exactly when bucket < percent
        flag = make_flag({"strategy": "percentage", "percent": percent})
        assert on(flag, subject(user="user-7")) is (expected < percent)


def test_percentage_buckets_the_user_and_falls_back_to_the_tenant() -> None:
    assert FlagSubject("acme", "u1").subject_id == "u1"
    assert FlagSubject("acme", None).subject_id == "acme"
    flag = make_flag({"strategy": "percentage", "percent": 50})
    tenants = [f"tenant-{i}" for i in range(200)]
    for tenant in tenants:  # without a user, the tenant id decides
        expected = bucket(f"new_ui:{tenant}") < 50
        assert on(flag, subject(user=None, tenant=tenant)) is expected


def test_thirty_percent_reaches_about_thirty_percent_of_users() -> None:
    flag = make_flag({"strategy": "percentage", "percent": 30})
    fraction = sum(on(flag, subject(user=u)) for u in USERS) / len(USERS)
    assert 0.27 <= fraction <= 0.33


def test_different_flags_pick_different_users() -> None:
    a = make_flag({"strategy": "percentage", "percent": 30})
    b = make_flag({"strategy": "percentage", "percent": 30}, key="other_flag")
    picked_a = {u for u in USERS[:2000] if on(a, subject(user=u))}
    picked_b = {u for u in USERS[:2000] if on(b, subject(user=u))}
    assert picked_a != picked_b


@given(
    key=st.from_regex(r"[a-z][a-z0-9_]{1,20}", fullmatch=True),
    user=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s != ""),
    tenant=st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}", fullmatch=True),
    percent=st.floats(min_value=0, max_value=100),
    offset=st.integers(min_value=-10_000, max_value=10_000),
)
def test_same_subject_same_flag_same_time_same_answer(
    key: str, user: str, tenant: str, percent: float, offset: int
) -> None:
    now = NOW + timedelta(minutes=offset)
    spec = {
        "key": key,
        "rules": [
            {"strategy": "percentage", "percent": percent},
            {"strategy": "gradual", "start": "2026-02-20T00:00:00Z", "end": "2026-03-10T00:00:00Z"},
        ],
        "variants": [{"name": "a", "percent": 25}, {"name": "b", "percent": 75}],
    }
    subj = FlagSubject(tenant, user, "starter")
    first = evaluate(Flag.model_validate(spec), subj, now)
    again = evaluate(Flag.model_validate(spec), FlagSubject(tenant, user, "starter"), now)
    assert first == again
    assert first.enabled is (first.variant is not None)


# --- gradual ---------------------------------------------------------------------------------


GRADUAL = {"strategy": "gradual", "start": "2026-03-01T00:00:00Z", "end": "2026-03-11T00:00:00Z"}


def fraction_on(flag: Flag, now: datetime, users: list[str] = USERS) -> float:
    return sum(on(flag, subject(user=u), now) for u in users) / len(users)


def test_gradual_ramps_linearly_from_nobody_to_everybody() -> None:
    flag = make_flag(GRADUAL)
    rule = flag.rules[0]
    assert isinstance(rule, flags.GradualRule)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert rule.percent_at(start - timedelta(days=1)) == 0
    assert rule.percent_at(start) == 0
    assert rule.percent_at(start + timedelta(days=3)) == pytest.approx(30)
    assert rule.percent_at(start + timedelta(days=10)) == 100
    assert rule.percent_at(start + timedelta(days=30)) == 100

    assert fraction_on(flag, start - timedelta(hours=1)) == 0  # before
    assert 0.27 <= fraction_on(flag, start + timedelta(days=3)) <= 0.33  # 30 % of the way
    assert 0.47 <= fraction_on(flag, start + timedelta(days=5)) <= 0.53  # halfway
    assert fraction_on(flag, start + timedelta(days=10, seconds=1)) == 1  # after


def test_gradual_never_takes_a_feature_back_from_a_user_as_it_ramps() -> None:
    flag = make_flag(GRADUAL)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    earlier = {u for u in USERS[:3000] if on(flag, subject(user=u), start + timedelta(days=2))}
    later = {u for u in USERS[:3000] if on(flag, subject(user=u), start + timedelta(days=6))}
    assert earlier < later


# --- all rules, status and expiry ----------------------------------------------------------------


def test_every_rule_must_pass() -> None:
    flag = make_flag(
        {"strategy": "tenants", "tenant_ids": ["acme"]},
        {"strategy": "plans", "plans": ["enterprise"]},
        {"strategy": "users", "user_ids": ["u1"]},
    )
    assert on(flag, subject(tenant="acme", plan="enterprise", user="u1"))
    assert not on(flag, subject(tenant="globex", plan="enterprise", user="u1"))
    assert not on(flag, subject(tenant="acme", plan="starter", user="u1"))
    decision = evaluate(flag, subject(tenant="acme", plan="enterprise", user="u2"), NOW)
    assert decision == FlagDecision(False, None, "rule_failed:users")


def test_an_inactive_flag_is_off_whatever_its_rules() -> None:
    flag = make_flag(ALL_ON, status="INACTIVE", variants=[{"name": "a", "percent": 100}])
    assert evaluate(flag, subject(), NOW) == FlagDecision(False, None, "inactive")


def test_a_flag_is_off_from_its_end() -> None:
    flag = make_flag(ALL_ON, ends_at="2026-03-01T12:00:00Z")
    assert on(flag, subject(), NOW - timedelta(seconds=1))
    assert evaluate(flag, subject(), NOW) == FlagDecision(False, None, "expired")
    assert not on(flag, subject(), NOW + timedelta(days=1))


def test_evaluation_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        evaluate(make_flag(ALL_ON), subject(), datetime(2026, 3, 1))


# --- variants ------------------------------------------------------------------------------------


def test_variant_shares_match_their_percents_and_never_change() -> None:
    arms = [{"name": "control", "percent": 50}, {"name": "blue", "percent": 30}]
    flag = make_flag(ALL_ON, variants=[*arms, {"name": "green", "percent": 20}])
    seen = Counter(evaluate(flag, subject(user=u), NOW).variant for u in USERS)
    assert set(seen) == {"control", "blue", "green"}
    for name, share in (("control", 0.5), ("blue", 0.3), ("green", 0.2)):
        assert abs(seen[name] / len(USERS) - share) <= 0.03, (name, seen)
    later = NOW + timedelta(days=40)
    assert all(
        evaluate(flag, subject(user=u), NOW).variant
        == evaluate(flag, subject(user=u), later).variant
        for u in USERS[:1000]
    )


def test_variant_choice_is_independent_of_the_rollout() -> None:
    flag = make_flag(
        {"strategy": "percentage", "percent": 50},
        variants=[{"name": "a", "percent": 50}, {"name": "b", "percent": 50}],
    )
    rolled_in = [u for u in USERS if on(flag, subject(user=u))]
    shares = Counter(evaluate(flag, subject(user=u), NOW).variant for u in rolled_in)
    # Were the variant bucketed like the rollout, everyone rolled in would land in "a".
    assert abs(shares["a"] / len(rolled_in) - 0.5) <= 0.03


def test_an_off_flag_or_a_flag_without_variants_has_no_variant() -> None:
    with_arms = make_flag(
        {"strategy": "users", "user_ids": ["u1"]}, variants=[{"name": "a", "percent": 100}]
    )
    assert evaluate(with_arms, subject(user="u1"), NOW) == FlagDecision(True, "a", "enabled")
    assert evaluate(with_arms, subject(user="u2"), NOW).variant is None
    assert evaluate(make_flag(ALL_ON), subject(), NOW) == FlagDecision(True, None, "enabled")


def test_hundredths_of_a_percent_add_up_exactly() -> None:
    flag = make_flag(
        ALL_ON,
        variants=[
            {"name": "a", "percent": 33.33},
            {"name": "b", "percent": 33.33},
            {"name": "c", "percent": 33.34},
        ],
    )
    assert {evaluate(flag, subject(user=u), NOW).variant for u in USERS[:600]} == {"a", "b", "c"}


@pytest.mark.parametrize(
    "variants",
    [
        [{"name": "a", "percent": 50}, {"name": "b", "percent": 40}],
        [{"name": "a", "percent": 50}, {"name": "b", "percent": 50.01}],
        [{"name": "a", "percent": 100}, {"name": "b", "percent": 0.001}],
        [{"name": "a", "percent": 50}, {"name": "a", "percent": 50}],
        [{"name": "a", "percent": 150}, {"name": "b", "percent": -50}],
        [{"name": "Not A Name", "percent": 100}],
        [],
    ],
)
def test_variants_that_do_not_sum_to_exactly_100_are_rejected(variants: list[Any]) -> None:
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "ab_test", "rules": [ALL_ON], "variants": variants})
    with pytest.raises(ValidationError):
        FlagUpdate.model_validate({"variants": variants})


# --- operator input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"strategy": "sometimes"},
        {"value": True},
        {"strategy": "all"},
        {"strategy": "all", "value": True, "extra": 1},
        {"strategy": "users", "user_ids": []},
        {"strategy": "users", "user_ids": "u1"},
        {"strategy": "tenants", "tenant_ids": ["Not_A_Tenant"]},
        {"strategy": "plans", "plans": ["platinum"]},
        {"strategy": "plans", "plans": []},
        {"strategy": "percentage", "percent": 100.5},
        {"strategy": "percentage", "percent": -1},
        {"strategy": "percentage", "percent": "nan"},
        {"strategy": "gradual", "start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"strategy": "gradual", "start": "2026-03-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"},
        {"strategy": "gradual", "start": "2026-03-01T00:00:00", "end": "2026-03-02T00:00:00"},
        {"strategy": "gradual", "start": "2026-03-01T00:00:00Z"},
    ],
)
def test_bad_rules_are_rejected(rule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "new_ui", "rules": [rule]})


@pytest.mark.parametrize("key", ["", "x", "New_ui", "1flag", "new-ui", "new ui", "a" * 64, "f#1"])
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": key, "rules": [ALL_ON]})


def test_a_create_needs_a_rule_and_a_known_status() -> None:
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "new_ui", "rules": []})
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "new_ui"})
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "new_ui", "rules": [ALL_ON], "status": "MAYBE"})
    with pytest.raises(ValidationError):
        FlagCreate.model_validate({"key": "new_ui", "rules": [ALL_ON], "ends_at": "2026-01-01"})


def test_a_create_normalises_input() -> None:
    created = FlagCreate.model_validate(
        {
            "key": "new_ui",
            "rules": [
                {"strategy": "users", "user_ids": ["u1", "u2", "u1"]},
                {"strategy": "plans", "plans": ["starter"]},
            ],
            "ends_at": "2026-04-01T02:00:00+02:00",
        }
    )
    assert created.status is FlagStatus.ACTIVE and created.variants is None
    assert created.ends_at == datetime(2026, 4, 1, tzinfo=UTC) and created.ends_at.tzinfo is UTC
    assert created.rules[0].model_dump() == {"strategy": "users", "user_ids": ["u1", "u2"]}


def test_an_update_is_partial_and_tells_a_clear_from_an_omission() -> None:
    assert FlagUpdate.model_validate({"ends_at": None}).model_fields_set == {"ends_at"}
    assert FlagUpdate.model_validate({"status": "INACTIVE", "version": 2}).version == 2
    bad_updates: list[dict[str, Any]] = [
        {},
        {"version": 3},
        {"rules": None},
        {"status": None},
        {"rules": []},
        {"x": 1},
    ]
    for bad in bad_updates:
        with pytest.raises(ValidationError):
            FlagUpdate.model_validate(bad)


# --- the cache and the app-facing calls -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_loads_once_per_ttl_and_forgets_on_demand() -> None:
    loads: list[int] = []
    clock = FakeClock()

    def loader() -> dict[str, Flag]:
        loads.append(1)
        return {"new_ui": make_flag(ALL_ON)}

    cache = FlagCache(loader=loader, clock=clock)
    assert cache.get("new_ui") is not None and cache.get("missing") is None
    clock.now += 59
    assert cache.get("new_ui") is not None
    assert len(loads) == 1
    clock.now += 1  # 60 s: stale
    cache.get("new_ui")
    assert len(loads) == 2
    cache.forget()
    cache.get("new_ui")
    assert len(loads) == 3


def test_the_cache_loads_once_for_many_threads() -> None:
    loads: list[int] = []
    gate = threading.Event()

    def slow_loader() -> dict[str, Flag]:
        loads.append(1)
        gate.wait(5)
        return {"new_ui": make_flag(ALL_ON)}

    cache = FlagCache(loader=slow_loader)
    results: list[Flag | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("new_ui"))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert len(loads) == 1 and len(results) == 8 and all(results)


def test_a_forget_during_a_load_is_not_undone_by_it() -> None:
    cache: FlagCache

    def loader() -> dict[str, Flag]:
        cache.forget()  # a mutation lands while this (now stale) load is in flight
        return {}

    cache = FlagCache(loader=loader)
    cache.get("x")
    assert cache._snapshot is None


@pytest.fixture
def app_flags(monkeypatch: pytest.MonkeyPatch) -> Mock:
    """`cached_flags` fed from memory, and a tenant cache that says acme is on enterprise."""
    defined = {
        "everyone": make_flag(ALL_ON, key="everyone"),
        "big_plans": make_flag(
            {"strategy": "plans", "plans": ["enterprise"]},
            key="big_plans",
            variants=[{"name": "a", "percent": 50}, {"name": "b", "percent": 50}],
        ),
    }
    monkeypatch.setattr(flags, "cached_flags", FlagCache(loader=lambda: defined))
    tenants = Mock(spec=TenantCache)
    tenants.get.return_value = Tenant(
        tenant_id="acme",
        name="Acme",
        status=TenantStatus.ACTIVE,
        plan="enterprise",
        apps=frozenset(),
        mfa_required=False,
    )
    monkeypatch.setattr(repository, "cached_tenants", tenants)
    return tenants


CTX = TenantContext(tenant_id="acme", user_id="u1")


def test_unknown_flags_are_off(app_flags: Mock) -> None:
    assert flags.is_enabled(CTX, "nope") is False
    assert flags.variant(CTX, "nope") is None
    assert flags.decide(CTX, "nope").reason == "unknown_flag"


def test_the_plan_is_looked_up_only_when_a_rule_needs_it(app_flags: Mock) -> None:
    assert flags.is_enabled(CTX, "everyone")
    app_flags.get.assert_not_called()
    assert flags.is_enabled(CTX, "big_plans")
    app_flags.get.assert_called_once_with("acme")
    assert flags.variant(CTX, "big_plans") in {"a", "b"}
    assert not flags.is_enabled(CTX, "big_plans", plan="starter")  # an explicit plan wins
    assert flags.variant(CTX, "big_plans", plan="starter") is None
    assert app_flags.get.call_count == 2


def test_a_tenant_that_is_not_found_has_no_plan(app_flags: Mock) -> None:
    app_flags.get.return_value = None
    assert not flags.is_enabled(CTX, "big_plans")
