"""Feature flags against the emulated table: CRUD, conflicts, audit, and a warm cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.client
import pytest

from dotmac.core.audit_trail import AuditRepository
from dotmac.core.errors import ConflictError, ForbiddenError, NotFoundError
from dotmac.core.model import bind_table
from dotmac.core.pagination import PageRequest
from dotmac.core.tenancy import TenantContext
from dotmac.management import flags
from dotmac.management.flags import FlagCreate, FlagUpdate
from dotmac.management.repository import cached_tenants, create_tenant
from tests.integration.conftest import MotoCloud

OPERATOR = TenantContext(tenant_id="platform", user_id="op-1", request_id="req-1")


@pytest.fixture
def ddb_calls(moto_cloud: MotoCloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every DynamoDB operation any botocore client of this process sends (counted where
    every client sends: `BaseClient._make_api_call`, so shared clients are counted too)."""
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def count(self: Any, operation: str, params: Any) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", count)
    bind_table(moto_cloud.created.table)
    flags.cached_flags.forget()
    cached_tenants.forget()
    yield calls
    flags.cached_flags.forget()
    cached_tenants.forget()


def new_flag(key: str = "new_ui", **fields: Any) -> FlagCreate:
    return FlagCreate.model_validate(
        {"key": key, "rules": [{"strategy": "all", "value": True}], **fields}
    )


def test_create_get_list_and_view(ddb_calls: list[str]) -> None:
    created = flags.create_flag(
        OPERATOR,
        new_flag(
            description="The new UI",
            rules=[
                {"strategy": "plans", "plans": ["enterprise"]},
                {
                    "strategy": "gradual",
                    "start": "2026-01-01T00:00:00Z",
                    "end": "2026-02-01T00:00Z",
                },
            ],
            variants=[{"name": "a", "percent": 40}, {"name": "b", "percent": 60}],
        ),
    )
    flags.create_flag(OPERATOR, new_flag("beta_reports"))
    assert created.version == 1

    ddb_calls.clear()
    item = flags.get_flag("new_ui")
    assert ddb_calls == ["GetItem"]
    view = flags.flag_view(item)
    assert "PK" not in view and "SK" not in view
    assert view["key"] == "new_ui" and view["description"] == "The new UI"
    assert view["status"] == "ACTIVE" and view["ends_at"] is None and view["version"] == 1
    assert view["rules"] == [
        {"strategy": "plans", "plans": ["enterprise"]},
        {"strategy": "gradual", "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    ]
    assert view["variants"] == [{"name": "a", "percent": 40.0}, {"name": "b", "percent": 60.0}]
    assert item.expires_at is None  # the table's TTL is never used for flags

    parsed = flags.to_flag(item)  # what is stored parses back into what was created
    assert parsed.rules[1] == flags.GradualRule(
        start=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 2, 1, tzinfo=UTC)
    )

    ddb_calls.clear()
    assert [i.SK for i in flags.list_flags()] == ["beta_reports", "new_ui"]
    assert ddb_calls == ["Query"]

    ddb_calls.clear()
    first = flags.page_flags(PageRequest(limit=1))
    assert [i.SK for i in first.items] == ["beta_reports"] and first.next_cursor
    rest = flags.page_flags(PageRequest(limit=1, cursor=first.next_cursor))
    assert [i.SK for i in rest.items] == ["new_ui"]
    assert ddb_calls == ["Query", "Query"]


def test_a_taken_key_is_a_conflict(ddb_calls: list[str]) -> None:
    flags.create_flag(OPERATOR, new_flag(description="first"))
    with pytest.raises(ConflictError, match="already exists"):
        flags.create_flag(OPERATOR, new_flag(description="second"))
    assert flags.get_flag("new_ui").description == "first"


def test_unknown_keys_are_not_found(ddb_calls: list[str]) -> None:
    for key in ("missing_flag", "", "BAD#KEY"):
        with pytest.raises(NotFoundError):
            flags.get_flag(key)
    with pytest.raises(NotFoundError):
        flags.update_flag(OPERATOR, "missing_flag", FlagUpdate(status=flags.FlagStatus.INACTIVE))
    with pytest.raises(NotFoundError):
        flags.delete_flag(OPERATOR, "missing_flag")


def test_update_is_partial_and_versioned(ddb_calls: list[str]) -> None:
    flags.create_flag(OPERATOR, new_flag(ends_at="2027-01-01T00:00:00Z"))
    updated = flags.update_flag(
        OPERATOR,
        "new_ui",
        FlagUpdate.model_validate({"description": "changed", "ends_at": None, "version": 1}),
    )
    assert updated.version == 2
    stored = flags.get_flag("new_ui")
    assert stored.description == "changed" and stored.ends_at is None
    assert stored.rules == [{"strategy": "all", "value": True}] and stored.version == 2
    assert stored.updated_at >= stored.created_at

    with pytest.raises(ConflictError, match="version"):  # an operator edited version 1
        flags.update_flag(OPERATOR, "new_ui", FlagUpdate(description="stale", version=1))
    assert flags.get_flag("new_ui").description == "changed"


def test_a_write_that_raced_another_is_refused(
    ddb_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags.create_flag(OPERATOR, new_flag())
    stale = flags.get_flag("new_ui")  # read by us; then someone else commits a change
    flags.update_flag(OPERATOR, "new_ui", FlagUpdate(description="theirs"))
    monkeypatch.setattr(flags, "get_flag", lambda key: stale)
    with pytest.raises(ConflictError, match="changed meanwhile"):
        flags.update_flag(OPERATOR, "new_ui", FlagUpdate(description="ours"))
    with pytest.raises(ConflictError, match="changed meanwhile"):
        flags.delete_flag(OPERATOR, "new_ui")
    monkeypatch.undo()
    assert flags.get_flag("new_ui").description == "theirs"


def test_delete(ddb_calls: list[str]) -> None:
    flags.create_flag(OPERATOR, new_flag())
    with pytest.raises(ConflictError):
        flags.delete_flag(OPERATOR, "new_ui", version=7)
    flags.delete_flag(OPERATOR, "new_ui", version=1)
    with pytest.raises(NotFoundError):
        flags.get_flag("new_ui")
    assert flags.list_flags() == []


def test_every_mutation_is_audited(ddb_calls: list[str]) -> None:
    flags.create_flag(OPERATOR, new_flag())
    flags.update_flag(OPERATOR, "new_ui", FlagUpdate(status=flags.FlagStatus.INACTIVE))
    flags.delete_flag(OPERATOR, "new_ui")
    flags.create_flag(OPERATOR, new_flag())  # the key is free again
    with pytest.raises(ConflictError):
        flags.create_flag(OPERATOR, new_flag())  # a refused write leaves no record
    records = list(reversed(AuditRepository(OPERATOR).page(PageRequest(limit=10)).items))
    actions = [r.action for r in records]
    assert actions == [
        "platform.flag.create",
        "platform.flag.update",
        "platform.flag.delete",
        "platform.flag.create",
    ]
    for record in records:
        assert (record.actor, record.resource_type, record.resource_id) == (
            "op-1",
            "flag",
            "new_ui",
        )
        assert record.request_id == "req-1"
    create, update, delete = records[:3]
    assert create.before_digest is None and create.after_digest
    assert update.changed == ["status", "updated_at", "version"]
    assert delete.before_digest == update.after_digest and delete.after_digest is None


def test_non_operators_cannot_touch_flags(ddb_calls: list[str]) -> None:
    tenant_admin = TenantContext(tenant_id="acme", user_id="john")
    ddb_calls.clear()
    with pytest.raises(ForbiddenError):
        flags.create_flag(tenant_admin, new_flag())
    assert ddb_calls == []
    flags.create_flag(OPERATOR, new_flag())
    with pytest.raises(ForbiddenError):
        flags.update_flag(tenant_admin, "new_ui", FlagUpdate(description="x"))
    with pytest.raises(ForbiddenError):
        flags.delete_flag(tenant_admin, "new_ui")
    assert flags.get_flag("new_ui").version == 1


def test_a_warm_container_evaluates_flags_without_dynamodb(ddb_calls: list[str]) -> None:
    create_tenant("acme", "Acme", "enterprise", {"crm"})
    create_tenant("small", "Small", "starter", {"crm"})
    flags.create_flag(OPERATOR, new_flag("everyone"))
    flags.create_flag(
        OPERATOR,
        new_flag(
            "big_plans",
            rules=[{"strategy": "plans", "plans": ["enterprise"]}],
            variants=[{"name": "a", "percent": 50}, {"name": "b", "percent": 50}],
        ),
    )
    acme = TenantContext(tenant_id="acme", user_id="u1")
    small = TenantContext(tenant_id="small", user_id="u2")

    ddb_calls.clear()  # cold: one Query for every flag, one GetItem per tenant plan
    assert flags.is_enabled(acme, "everyone")
    assert flags.is_enabled(acme, "big_plans")
    assert not flags.is_enabled(small, "big_plans")
    assert sorted(ddb_calls) == ["GetItem", "GetItem", "Query"]

    ddb_calls.clear()  # warm: nothing at all, for known and unknown flags alike
    for _ in range(20):
        assert flags.is_enabled(acme, "everyone") and flags.is_enabled(small, "everyone")
        assert flags.is_enabled(acme, "big_plans") and not flags.is_enabled(small, "big_plans")
        assert flags.variant(acme, "big_plans") in {"a", "b"}
        assert flags.variant(small, "big_plans") is None
        assert not flags.is_enabled(acme, "no_such_flag")
    assert ddb_calls == []

    # A mutation in this container drops the cache: the next check sees it (one Query).
    flags.update_flag(OPERATOR, "everyone", FlagUpdate(status=flags.FlagStatus.INACTIVE))
    ddb_calls.clear()
    assert not flags.is_enabled(acme, "everyone")
    assert ddb_calls == ["Query"]


def test_an_ended_flag_stays_stored_but_is_off(ddb_calls: list[str]) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    flags.create_flag(OPERATOR, new_flag("ended", ends_at=past))
    ctx = TenantContext(tenant_id="acme", user_id="u1")
    assert not flags.is_enabled(ctx, "ended")
    assert flags.decide(ctx, "ended").reason == "expired"
    assert [i.SK for i in flags.list_flags()] == ["ended"]
