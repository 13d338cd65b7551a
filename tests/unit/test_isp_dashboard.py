"""The ISP dashboard without AWS: the monthly share of a price, what each change stages (into
a mock unit of work), the release guard that tells a crossing back below the threshold, and
the view built from the aggregate items."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotmac.billing.money import CurrencyMismatchError, Money
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from dotmac.isp import dashboard
from dotmac.isp.dashboard_models import (
    AddressTotalsItem,
    CustomerCountsItem,
    MrrItem,
    ReceivablesItem,
    TicketCountsItem,
)
from dotmac.isp.ipam import guard_for, threshold_count
from dotmac.isp.models import PlanItem, ServiceItem
from dotmac.isp.ticket_models import TicketItem

CTX = TenantContext("abc-corp", "u1")
PK = "T#abc-corp#ISP_DASHBOARD"


def staged(uow: Mock) -> dict[str, dict[str, int]]:
    """What was staged into the mock unit of work: sort key -> {attribute: ADD amount}."""
    found: dict[str, dict[str, int]] = {}
    for call in uow.update.call_args_list:
        item, actions = call.args
        assert item.PK == PK
        adds = {
            a.values[0].path[0]: int(a.values[1].value["N"])
            for a in actions
            if type(a).__name__ == "AddAction"
        }
        found[item.SK] = adds
    return found


def service(
    status: str, price: str = "30.00", cycle: str = "monthly", currency: str = "USD"
) -> Any:
    return ServiceItem(
        "T#abc-corp#ISP_SERVICE#INT-20260401-abcdef",
        "ROOT",
        status=status,
        price=price,
        currency=currency,
        billing_cycle=cycle,
    )


# --- the monthly share -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("price", "currency", "cycle", "share"),
    [
        ("29.99", "USD", "monthly", "29.99"),
        ("100.00", "USD", "quarterly", "33.33"),
        ("20.00", "USD", "quarterly", "6.67"),
        ("100.00", "USD", "annual", "8.33"),
        ("0.06", "USD", "annual", "0.01"),  # 0.005: half up
        ("0.05", "USD", "annual", "0.00"),  # 0.00416...
        ("10000", "JPY", "annual", "833"),
        ("1.000", "BHD", "quarterly", "0.333"),
    ],
)
def test_monthly_share_is_rounded_half_up_to_the_minor_unit(
    price: str, currency: str, cycle: str, share: str
) -> None:
    assert dashboard.monthly(price, currency, cycle) == Money(share, currency)


# --- what a change stages ----------------------------------------------------------------


def test_customer_and_ticket_moves() -> None:
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_customer(uow, CTX, None, "NEW")
    assert staged(uow) == {"CUSTOMERS": {"new": 1}}
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_customer(uow, CTX, "ACTIVE", "BLOCKED")
    assert staged(uow) == {"CUSTOMERS": {"active": -1, "blocked": 1}}
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_ticket(uow, CTX, "on_track", "on_track")  # no move: nothing staged
    dashboard.stage_ticket(uow, CTX, "breached", None)
    assert staged(uow) == {"TICKETS": {"breached": -1}}


def test_ticket_sla_bucket() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 4, 1, tzinfo=UTC)
    ticket = TicketItem("T#abc-corp#ISP_TICKET#TCK-2026-000001", "ROOT", status="OPEN")
    assert dashboard.ticket_sla(ticket) == "on_track"
    ticket.resolution_breached_at = at
    assert dashboard.ticket_sla(ticket) == "breached"
    ticket.status = "IN_PROGRESS"
    assert dashboard.ticket_sla(ticket) == "breached"
    ticket.status = "RESOLVED"
    assert dashboard.ticket_sla(ticket) is None
    fresh = TicketItem("T#abc-corp#ISP_TICKET#TCK-2026-000002", "ROOT", status="IN_PROGRESS")
    fresh.first_response_breached_at = at
    assert dashboard.ticket_sla(fresh) == "breached"


@pytest.mark.parametrize(
    ("before", "kwargs", "moves"),
    [
        (service("PENDING"), {"status": "ACTIVE"}, {"MRR#USD": {"minor": 3000, "services": 1}}),
        (service("ACTIVE"), {"status": "SUSPENDED"}, {"MRR#USD": {"minor": -3000, "services": -1}}),
        (service("MAINTENANCE"), {"status": "ACTIVE"}, {"MRR#USD": {"minor": 3000, "services": 1}}),
        (service("PENDING"), {"status": "CANCELLED"}, {}),
        (service("SUSPENDED"), {"status": "CANCELLED"}, {}),
        (
            service("ACTIVE", "10000", "annual", "JPY"),
            {"status": "CANCELLED"},
            {"MRR#JPY": {"minor": -833, "services": -1}},
        ),
    ],
)
def test_mrr_moves_on_transitions_into_and_out_of_active(
    before: Any, kwargs: dict[str, Any], moves: dict[str, Any]
) -> None:
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_mrr(uow, CTX, before, **kwargs)
    assert staged(uow) == moves


def test_mrr_moves_on_plan_changes_of_active_services_only() -> None:
    quarterly = PlanItem(
        "T#abc-corp#ISP_PLAN", "p2", price="100.00", currency="USD", billing_cycle="quarterly"
    )
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_mrr(uow, CTX, service("ACTIVE", "29.99"), plan=quarterly)
    assert staged(uow) == {"MRR#USD": {"minor": 3333 - 2999}}  # the count stays
    for status in ("PENDING", "SUSPENDED", "MAINTENANCE"):
        uow = Mock(spec=UnitOfWork)
        dashboard.stage_mrr(uow, CTX, service(status, "29.99"), plan=quarterly)
        assert staged(uow) == {}, status
    same = PlanItem(
        "T#abc-corp#ISP_PLAN", "p3", price="90.00", currency="USD", billing_cycle="quarterly"
    )
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_mrr(uow, CTX, service("ACTIVE", "30.00"), plan=same)  # 30.00 a month too
    assert staged(uow) == {}


def test_receivables_and_addresses() -> None:
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_receivable(
        uow, CTX, outstanding=Money("12.345", "USD"), overdue=Money(0, "USD")
    )
    assert staged(uow) == {"RECEIVABLES#USD": {"outstanding": 1235}}
    with pytest.raises(CurrencyMismatchError):
        dashboard.stage_receivable(
            Mock(spec=UnitOfWork), CTX, outstanding=Money(1, "USD"), overdue=Money(1, "EUR")
        )
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_addresses(uow, CTX, 6, prefixes=1, usable=2**64 - 1)
    assert staged(uow) == {"IPAM#6": {"prefixes": 1, "usable": 2**64 - 1}}
    uow = Mock(spec=UnitOfWork)
    dashboard.stage_addresses(uow, CTX, 4)
    uow.update.assert_not_called()


# --- the release guard -------------------------------------------------------------------


@given(
    usable=st.integers(1, 300),
    threshold=st.integers(1, 100),
    data=st.data(),
)
def test_a_release_guard_that_admits_the_write_knows_whether_it_crosses_below(
    usable: int, threshold: int, data: Any
) -> None:
    """Whatever committed between the read and the release (the counter moved from `read`
    to `actual`), the release either fails its condition or knows exactly whether it took
    the prefix from at/above its threshold to below it: the dashboard counts it once."""
    read = data.draw(st.integers(1, usable))
    count = data.draw(st.integers(1, read))
    actual = data.draw(st.integers(count, usable))  # a release deletes `count` addresses
    guard = guard_for(read, -count, usable, threshold)
    mark = threshold_count(usable, threshold)
    if guard.admits(actual):
        assert guard.crosses == (actual - count < mark <= actual)
    if actual == read:
        assert guard.admits(actual)


def test_release_guard_modes() -> None:
    assert guard_for(10, -2, 62, 80).crosses is False  # below, stays below
    assert guard_for(50, -1, 62, 80).crosses is True  # 50 -> 49 crosses 50
    assert guard_for(50, -1, 62, 80).exactly == 50
    above = guard_for(55, -3, 62, 80)
    assert (above.crosses, above.at_least) == (False, 53)  # 52 at commit would cross: re-read


# --- the view ----------------------------------------------------------------------------


def test_the_view_shows_every_state_both_families_and_only_non_zero_currencies() -> None:
    empty = dashboard.dashboard_view([])
    assert empty["customers"] == {
        "total": 0,
        "by_status": {"NEW": 0, "ACTIVE": 0, "BLOCKED": 0, "INACTIVE": 0},
    }
    assert (empty["mrr"], empty["receivables"]) == ([], [])
    assert empty["tickets"] == {"open": 0, "on_track": 0, "breached": 0}
    assert [f["family"] for f in empty["ip_addresses"]] == [4, 6]

    view = dashboard.dashboard_view(
        [
            AddressTotalsItem(PK, "IPAM#4", prefixes=2, usable=300, assigned=100, over_threshold=1),
            CustomerCountsItem(PK, "CUSTOMERS", new=1, active=3, inactive=2),
            MrrItem(PK, "MRR#EUR", minor=0, services=0),
            MrrItem(PK, "MRR#USD", minor=6332, services=2),
            ReceivablesItem(PK, "RECEIVABLES#JPY", outstanding=5000, overdue=0),
            TicketCountsItem(PK, "TICKETS", on_track=4, breached=1),
        ]
    )
    assert view["customers"]["total"] == 6
    assert view["customers"]["by_status"]["BLOCKED"] == 0
    assert view["mrr"] == [{"amount": "63.32", "currency": "USD", "active_services": 2}]
    assert view["receivables"] == [
        {
            "currency": "JPY",
            "outstanding": {"amount": "5000", "currency": "JPY"},
            "overdue": {"amount": "0", "currency": "JPY"},
        }
    ]
    assert view["tickets"] == {"open": 5, "on_track": 4, "breached": 1}
    assert view["ip_addresses"][0] == {
        "family": 4,
        "prefixes": 2,
        "usable": 300,
        "assigned": 100,
        "over_threshold": 1,
        "free": 200,
        "utilisation": 33.33,
    }
    assert view["ip_addresses"][1]["usable"] == 0
