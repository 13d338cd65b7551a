"""Partners and platform metrics against the emulated table: writes, races, call counts."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dotmac.billing import commissions
from dotmac.billing.models import CommissionItem, PayoutItem
from dotmac.core.errors import ConflictError, NotFoundError, ValidationError
from dotmac.core.model import bind_table, ensure_bound
from dotmac.core.pagination import PageRequest
from dotmac.core.tenancy import TenantContext, tenant_key
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.management import catalog, metrics, partners
from dotmac.management.models import TENANT_SK, MetricItem, PartnerItem, TenantItem, UsageItem
from dotmac.management.partners import PartnerCreate
from dotmac.management.repository import TenantStatus, index_keys, tenant_pk
from tests.integration.conftest import MotoCloud

CTX = TenantContext(
    "platform", "operator-1", permissions=frozenset({"platform:*:*"}), request_id="r1"
)
NOW = datetime(2026, 5, 13, 14, 25, tzinfo=UTC)


@pytest.fixture
def table(moto_cloud: MotoCloud) -> str:
    bind_table(moto_cloud.created.table)
    ensure_bound()
    assert PartnerItem.Meta.table_name == moto_cloud.created.table
    return moto_cloud.created.table


@pytest.fixture
def ddb_calls(table: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every DynamoDB operation any botocore client sends (PynamoDB has one client per model)."""
    from botocore.client import BaseClient

    calls: list[str] = []
    original = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            calls.append(operation_name)
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    yield calls


def _audits(action: str) -> list[Any]:
    from dotmac.core.audit_trail import AuditItem

    return [a for a in AuditItem.query(CTX.key("AUDIT")) if a.action == action]


# --- partners -------------------------------------------------------------------------------


def test_create_get_and_duplicate(ddb_calls: list[str]) -> None:
    body = PartnerCreate(name="Acme Resellers", email="ops@acme.example", partner_id="acme")
    created = partners.create_partner(CTX, body)
    assert ddb_calls == ["TransactWriteItems"]
    assert created.version == 1

    ddb_calls.clear()
    stored = partners.get_partner("acme")
    assert ddb_calls == ["GetItem"]
    view = partners.partner_view(stored)
    assert (view["partner_id"], view["name"], view["email"]) == (
        "acme",
        "Acme Resellers",
        "ops@acme.example",
    )
    assert (view["tier"], view["lifetime_revenue"], view["revenue_to_next_tier"]) == (
        "Bronze",
        "0.00",
        "50000.00",
    )
    assert (stored.GSI1PK, stored.GSI1SK, stored.kind) == ("PARTNER", "acme", "partner")
    assert (stored.GSI2PK, stored.GSI2SK) == ("PARTNER#acme", "#")  # heads its tenants
    assert len(_audits("platform.partner.create")) == 1

    with pytest.raises(ConflictError) as caught:
        partners.create_partner(
            CTX, PartnerCreate(name="Other", email="x@other.example", partner_id="acme")
        )
    assert caught.value.status == 409
    assert partners.get_partner("acme").name == "Acme Resellers"  # untouched
    assert len(_audits("platform.partner.create")) == 1  # the failed create wrote nothing

    generated = partners.create_partner(CTX, PartnerCreate(name="Big Net Ltd", email="b@n.example"))
    assert partners.partner_id_of(generated).startswith("big-net-ltd-")

    ddb_calls.clear()
    with pytest.raises(NotFoundError):
        partners.get_partner("nobody")
    with pytest.raises(NotFoundError):
        partners.get_partner("Not A Slug#")
    assert ddb_calls == ["GetItem"]  # the impossible id was refused without I/O


def test_list_partners_pages_with_one_query_each(ddb_calls: list[str]) -> None:
    ids = [f"p{i:02}" for i in range(5)]
    for pid in reversed(ids):
        partners.create_partner(
            CTX, PartnerCreate(name=pid, email=f"{pid}@x.example", partner_id=pid)
        )
    ddb_calls.clear()

    seen: list[str] = []
    page = partners.list_partners(PageRequest(limit=2))
    pages = 1
    seen += [partners.partner_id_of(p) for p in page.items]
    while page.next_cursor:
        page = partners.list_partners(PageRequest(limit=2, cursor=page.next_cursor))
        pages += 1
        seen += [partners.partner_id_of(p) for p in page.items]
    assert seen == ids
    assert ddb_calls == ["Query"] * pages


def test_record_revenue_moves_the_tier(ddb_calls: list[str]) -> None:
    partners.create_partner(CTX, PartnerCreate(name="Acme", email="a@x.example", partner_id="acme"))
    item = partners.record_revenue(CTX, "acme", Decimal("49999.985"))  # HALF_UP -> 49999.99
    assert item.lifetime_revenue == "49999.99"
    assert partners.partner_view(item)["tier"] == "Bronze"
    assert partners.partner_view(item)["revenue_to_next_tier"] == "0.01"

    ddb_calls.clear()
    item = partners.record_revenue(CTX, "acme", Decimal("0.01"))
    assert ddb_calls == ["GetItem", "TransactWriteItems"]
    stored = partners.get_partner("acme")
    assert (stored.lifetime_revenue, stored.version) == ("50000.00", 3)
    view = partners.partner_view(stored)
    assert (view["tier"], view["base_rate"], view["bonus_rate"]) == ("Silver", "0.07", "0.01")
    assert (view["next_tier"], view["revenue_to_next_tier"]) == ("Gold", "100000.00")
    assert len(_audits("platform.partner.record_revenue")) == 2

    partners.record_revenue(CTX, "acme", Decimal("450000"))
    assert partners.partner_view(partners.get_partner("acme"))["tier"] == "Platinum"

    ddb_calls.clear()
    with pytest.raises(TypeError):
        partners.record_revenue(CTX, "acme", 10.5)  # type: ignore[arg-type]
    for bad in ("0", "-5", "0.004"):
        with pytest.raises(ValidationError):
            partners.record_revenue(CTX, "acme", Decimal(bad))
    assert ddb_calls == []
    with pytest.raises(NotFoundError):
        partners.record_revenue(CTX, "nobody", Decimal("1"))
    assert partners.get_partner("acme").lifetime_revenue == "500000.00"


def test_concurrent_revenue_loses_no_update(table: str) -> None:
    """8 threads x 2 payments, released together; record_revenue retries on a version conflict
    (re-read, re-apply), so every payment lands exactly once."""
    partners.create_partner(CTX, PartnerCreate(name="Acme", email="a@x.example", partner_id="acme"))
    amounts = [Decimal("31250.00") + Decimal(i) / 100 for i in range(16)]
    start = threading.Barrier(8)

    def pay(chunk: list[Decimal]) -> None:
        start.wait()
        for amount in chunk:
            partners.record_revenue(CTX, "acme", amount)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(pay, [amounts[i::8] for i in range(8)]))

    stored = partners.get_partner("acme")
    assert Decimal(stored.lifetime_revenue) == sum(amounts)
    assert stored.lifetime_revenue == "500001.20"
    assert stored.version == 1 + len(amounts)
    assert partners.partner_view(stored)["tier"] == "Platinum"
    assert len(_audits("platform.partner.record_revenue")) == len(amounts)


def _tenant(
    tenant_id: str, status: str = "ACTIVE", plan: str = "starter", partner: str | None = None
) -> TenantItem:
    return TenantItem(
        tenant_pk(tenant_id),
        TENANT_SK,
        name=tenant_id.title(),
        status=status,
        plan=plan,
        apps={"isp"},
        partner_id=partner,
        created_at=NOW,
        **index_keys(tenant_id, status, partner),
    )


def test_referred_tenants_pages_one_partner_only(ddb_calls: list[str]) -> None:
    partners.create_partner(CTX, PartnerCreate(name="Acme", email="a@x.example", partner_id="acme"))
    for tid in ("t-one", "t-two", "t-three", "0-first"):
        _tenant(tid, partner="acme").save()
    _tenant("t-other", partner="globex").save()
    _tenant("t-direct").save()
    ddb_calls.clear()

    first = partners.referred_tenants("acme", PageRequest(limit=2))
    assert first.next_cursor
    second = partners.referred_tenants("acme", PageRequest(limit=2, cursor=first.next_cursor))
    ids = [t.PK for t in first.items + second.items]  # by id, the partner itself not listed
    assert ids == [tenant_pk(t) for t in ("0-first", "t-one", "t-three", "t-two")]
    assert second.next_cursor is None
    assert ddb_calls == ["Query", "Query"]  # the first page brought the partner along

    with pytest.raises(ValidationError):  # a cursor of another partner's list
        partners.referred_tenants("globex", PageRequest(limit=2, cursor=first.next_cursor))
    ddb_calls.clear()
    with pytest.raises(NotFoundError):
        partners.referred_tenants("nobody", PageRequest())
    assert ddb_calls == ["Query", "GetItem"]  # not in the index: the record decides


def test_referred_tenants_of_a_partner_missing_from_the_index(ddb_calls: list[str]) -> None:
    """A partner record without its GSI2 entry (written before it had one, or not indexed
    yet): its record is read too, and its pages hold neither more nor fewer tenants."""
    PartnerItem(
        partners.partner_pk("legacy"),
        partners.PARTNER_SK,
        GSI1PK=partners.PARTNERS_INDEX_PK,
        GSI1SK="legacy",
        name="Legacy",
        email="l@x.example",
        created_at=NOW,
    ).save()
    for tid in ("t-a", "t-b", "t-c"):
        _tenant(tid, partner="legacy").save()
    ddb_calls.clear()

    first = partners.referred_tenants("legacy", PageRequest(limit=2))
    assert ddb_calls == ["Query", "GetItem"]
    assert [t.PK for t in first.items] == [tenant_pk("t-a"), tenant_pk("t-b")]
    ddb_calls.clear()
    second = partners.referred_tenants("legacy", PageRequest(limit=2, cursor=first.next_cursor))
    assert ddb_calls == ["Query"]
    assert ([t.PK for t in second.items], second.next_cursor) == ([tenant_pk("t-c")], None)
    whole = partners.referred_tenants("legacy", PageRequest(limit=3))
    assert (len(whole.items), whole.next_cursor) == (3, None)


def _commission(period: str, tenant_id: str, amount: str) -> None:
    CommissionItem(
        partners.partner_pk("acme"),
        f"{commissions.COMMISSION}{period}#{tenant_id}#INV-{period}",
        tenant_id=tenant_id,
        invoice=f"INV-{period}",
        period=period,
        base="100.00",
        rate="0.05",
        amount=amount,
        currency="USD",
        tier="Bronze",
        earned_at=NOW,
    ).save()


def test_commission_statement_reads_the_partner_with_its_first_page(
    ddb_calls: list[str],
) -> None:
    partners.create_partner(CTX, PartnerCreate(name="Acme", email="a@x.example", partner_id="acme"))
    for period in ("2026-01", "2026-03", "2026-02"):
        _commission(period, "t-one", "5.00")
    PayoutItem(  # sorts after the partner record: never in the statement
        partners.partner_pk("acme"),
        "PAYOUT#2026-04-01",
        amount="50.00",
        currency="USD",
        paid_at=NOW,
        paid_by="op",
    ).save()
    _earn_on_record("15.00")
    ddb_calls.clear()

    partner, first = commissions.statement("acme", PageRequest(limit=2))
    assert ddb_calls == ["Query"]
    assert commissions.summary(partner)["earned"] == "15.00"
    assert [c.period for c in first.items] == ["2026-03", "2026-02"]  # newest first
    ddb_calls.clear()
    partner, second = commissions.statement("acme", PageRequest(limit=2, cursor=first.next_cursor))
    assert ddb_calls == ["Query", "GetItem"]  # past the record: read for the summary
    assert commissions.summary(partner)["earned"] == "15.00"
    assert ([c.period for c in second.items], second.next_cursor) == (["2026-01"], None)

    ddb_calls.clear()
    partner, whole = commissions.statement("acme", PageRequest(limit=3))
    assert ddb_calls == ["Query"]
    assert (len(whole.items), whole.next_cursor) == (3, None)
    with pytest.raises(NotFoundError):
        commissions.statement("nobody", PageRequest())
    with pytest.raises(ValidationError):  # a cursor of another partner's statement
        commissions.statement("other", PageRequest(limit=2, cursor=first.next_cursor))


def _earn_on_record(earned: str) -> None:
    partner = partners.get_partner("acme")
    partner.commission_earned = earned
    partner.save()


# --- metrics --------------------------------------------------------------------------------


def _metric(family: str, key: str) -> int:
    try:
        return int(MetricItem.get(metrics.metric_pk(family), key, consistent_read=True).value)
    except MetricItem.DoesNotExist:
        return 0


def _create_tenant(tenant_id: str, plan: str, apps: tuple[str, ...]) -> None:
    item = _tenant(tenant_id, status="REQUESTED", plan=plan)
    uow = UnitOfWork(CTX)
    uow.put(item, condition=TenantItem.PK.does_not_exist())
    metrics.stage_tenant_state(uow, None, "REQUESTED")
    for app in apps:
        metrics.stage_subscription(uow, app, +1)
    uow.audit("platform.tenant.create", "tenant", tenant_id, after={"status": "REQUESTED"})
    uow.commit(conflict="tenant exists")


def _move(tenant_id: str, old: str, new: str) -> None:
    item = TenantItem.get(tenant_pk(tenant_id), TENANT_SK, consistent_read=True)
    uow = UnitOfWork(CTX)
    uow.update(
        item,
        actions=[
            TenantItem.status.set(new),
            TenantItem.GSI1SK.set(index_keys(tenant_id, new, None)["GSI1SK"]),
        ],
        condition=TenantItem.status == old,
    )
    metrics.stage_tenant_state(uow, old, new)
    uow.audit(
        "platform.tenant.update", "tenant", tenant_id, before={"status": old}, after={"status": new}
    )
    uow.commit(conflict="status changed")


def test_staged_counters_move_with_their_transaction(ddb_calls: list[str]) -> None:
    _create_tenant("t-a", "starter", ("isp", "crm"))
    _create_tenant("t-b", "professional", ("isp",))
    assert ddb_calls == ["TransactWriteItems"] * 2  # counters rode along, no extra calls
    _move("t-a", "REQUESTED", "PROVISIONING")
    _move("t-a", "PROVISIONING", "ACTIVE")
    _move("t-b", "REQUESTED", "FAILED")

    assert _metric("tenants", "STATE#REQUESTED") == 0
    assert _metric("tenants", "STATE#PROVISIONING") == 0
    assert _metric("tenants", "STATE#ACTIVE") == 1
    assert _metric("tenants", "STATE#FAILED") == 1
    assert (_metric("subscriptions", "APP#isp"), _metric("subscriptions", "APP#crm")) == (2, 1)
    assert MetricItem.get(metrics.metric_pk("tenants"), "STATE#ACTIVE").kind == "metric"

    with pytest.raises(ConflictError):  # the state moved already: nothing commits
        _move("t-a", "PROVISIONING", "ACTIVE")
    with pytest.raises(ConflictError):  # the tenant exists: neither the put nor the counters
        _create_tenant("t-a", "starter", ("isp",))
    assert _metric("tenants", "STATE#ACTIVE") == 1
    assert _metric("tenants", "STATE#PROVISIONING") == 0
    assert _metric("tenants", "STATE#REQUESTED") == 0
    assert _metric("subscriptions", "APP#isp") == 2

    uow = UnitOfWork(CTX)
    metrics.stage_subscription(uow, "crm", -1)
    metrics.stage_tenant_state(uow, "ACTIVE", "ACTIVE")  # no change stages nothing
    uow.audit("platform.subscription.delete", "subscription", "t-a:crm")
    uow.commit()
    assert _metric("subscriptions", "APP#crm") == 0
    with pytest.raises(ValueError):
        metrics.stage_tenant_state(UnitOfWork(CTX), None, "BOGUS")
    with pytest.raises(ValueError):
        metrics.stage_subscription(UnitOfWork(CTX), "a#b", 1)


def test_record_provisioning_is_one_update_and_emits_emf(
    ddb_calls: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    metrics.record_provisioning(True, 1.5)
    assert ddb_calls == ["UpdateItem"]
    metrics.record_provisioning(True, 2.5)
    metrics.record_provisioning(False, 0.5)
    metrics.record_provisioning(True, 2.0004)

    raw = MetricItem._get_connection().get_item(
        metrics.metric_pk("provisioning"), "SUMMARY", consistent_read=True
    )["Item"]
    assert {k: raw[k]["N"] for k in ("value", "succeeded", "failed", "duration_ms")} == {
        "value": "4",
        "succeeded": "3",
        "failed": "1",
        "duration_ms": "6500",
    }
    assert raw["kind"] == {"S": "metric"}

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    names = [m["Name"] for b in blobs for d in b["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert names.count("ProvisioningSucceeded") == 3
    assert names.count("ProvisioningFailed") == 1
    assert names.count("ProvisioningDuration") == 4
    assert blobs[0]["ProvisioningDuration"] in (1500, [1500])

    with pytest.raises(ValueError):
        metrics.record_provisioning(True, -1)


def _usage(tenant_id: str, sort_key: str, count: int, exceeded_at: int | None = None) -> None:
    UsageItem(tenant_key(tenant_id, "USAGE"), sort_key, used=count, exceeded_at=exceeded_at).save()


PLATFORM_COUNTERS = len(TenantStatus) + len(catalog.APPS) + 1  # + the provisioning summary


def test_platform_metrics_reports_what_was_written_in_two_calls(ddb_calls: list[str]) -> None:
    _create_tenant("t-a", "starter", ("isp", "crm"))
    _create_tenant("t-b", "enterprise", ("isp", "commerce"))
    _create_tenant("t-c", "professional", ())
    _move("t-a", "REQUESTED", "ACTIVE")
    _move("t-b", "REQUESTED", "ACTIVE")
    _move("t-c", "REQUESTED", "SUSPENDED")
    metrics.record_provisioning(True, 2.0)
    metrics.record_provisioning(True, 4.0)
    metrics.record_provisioning(False, 0.6)
    hour = metrics.api_calls_key(NOW)
    assert hour == "api_calls#2026051314"
    _usage("t-a", "customers", 101, exceeded_at=1_778_000_000)
    _usage("t-a", "users", 3)
    _usage("t-a", hour, 250)
    _usage("t-a", metrics.api_calls_key(NOW - timedelta(hours=1)), 999)  # last hour: not counted
    _usage("t-b", "service_plans", 70)
    _usage("t-b", "devices", 12)
    ddb_calls.clear()

    report = metrics.platform_metrics(PageRequest(limit=10), now=NOW)

    assert ddb_calls == ["Query", "BatchGetItem"]  # the page, then every counter it shows
    assert "Scan" not in ddb_calls
    assert report["tenants"]["by_state"] == {
        "REQUESTED": 0,
        "PROVISIONING": 0,
        "ACTIVE": 2,
        "SUSPENDED": 1,
        "DEPROVISIONING": 0,
        "DEPROVISIONED": 0,
        "FAILED": 0,
    }
    assert report["tenants"]["total"] == 3
    assert report["subscriptions"] == {
        "by_app": {"isp": 2, "crm": 1, "commerce": 1, "projects": 0},
        "total": 4,
    }
    assert report["provisioning"] == {
        "attempts": 3,
        "succeeded": 2,
        "failed": 1,
        "success_rate": 0.6667,
        "mean_duration_ms": 2200,
    }
    assert report["next_cursor"] is None
    usage = {row["tenant_id"]: row for row in report["usage"]}
    assert set(usage) == {"t-a", "t-b", "t-c"}
    a = usage["t-a"]["usage"]
    assert (usage["t-a"]["plan"], usage["t-a"]["status"]) == ("starter", "ACTIVE")
    assert a["customers"] == {
        "used": 101,
        "limit": 100,
        "over_limit": True,
        "exceeded_at": 1_778_000_000,
    }
    assert a["users"] == {"used": 3, "limit": 10, "over_limit": False, "exceeded_at": None}
    assert a["devices"]["used"] == 0 and a["service_plans"]["limit"] == 5
    assert a["api_calls_per_hour"] == {
        "used": 250,
        "limit": 1000,
        "over_limit": False,
        "exceeded_at": None,
        "hour": "2026051314",
    }
    b = usage["t-b"]["usage"]
    assert b["service_plans"] == {"used": 70, "limit": -1, "over_limit": False, "exceeded_at": None}
    assert b["devices"] == {"used": 12, "limit": 100, "over_limit": False, "exceeded_at": None}
    assert b["api_calls_per_hour"]["used"] == 0
    assert all(v["used"] == 0 for v in usage["t-c"]["usage"].values())
    assert usage["t-c"]["usage"]["customers"]["limit"] == 1000


@pytest.mark.parametrize(("tenants", "limit"), [(3, 2), (17, 17), (25, 25)])
def test_platform_metrics_call_count_per_page(
    ddb_calls: list[str], tenants: int, limit: int
) -> None:
    for i in range(tenants):
        _tenant(f"t-{i:03}").save()
        _usage(f"t-{i:03}", "users", i)
    ddb_calls.clear()

    seen: list[str] = []
    cursor: str | None = None
    while True:
        ddb_calls.clear()
        report = metrics.platform_metrics(PageRequest(limit=limit, cursor=cursor), now=NOW)
        n = len(report["usage"])
        expected_batches = math.ceil((PLATFORM_COUNTERS + 5 * n) / 100)
        assert ddb_calls == ["Query"] + ["BatchGetItem"] * expected_batches
        assert len(ddb_calls) == (2 if n <= 17 else 3)
        seen += [row["tenant_id"] for row in report["usage"]]
        for row in report["usage"]:
            assert row["usage"]["users"]["used"] == int(row["tenant_id"][2:])
        cursor = report["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"t-{i:03}" for i in range(tenants)]
