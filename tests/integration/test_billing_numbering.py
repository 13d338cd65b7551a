"""Gapless per-tenant document numbers against the emulator, with real threads."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import pytest
from pynamodb.attributes import UnicodeAttribute

from dotmac.billing import numbering
from dotmac.core.errors import ConflictError
from dotmac.core.model import TableItem, bind_table
from dotmac.core.retry import until_won
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from tests.integration.conftest import MotoCloud


class Document(TableItem):
    """A stand-in for an invoice: it carries the number it was given."""

    entity: ClassVar[str] = "test_document"

    number = UnicodeAttribute()


def ctx(tenant: str = "acme") -> TenantContext:
    return TenantContext(tenant, "biller", request_id="r")


@pytest.fixture
def cloud(moto_cloud: MotoCloud) -> Iterator[MotoCloud]:
    bind_table(moto_cloud.created.table)
    yield moto_cloud


def issue(context: TenantContext, document_id: str, year: int = 2026) -> str:
    """Write one document with the next number, in one transaction (retrying lost races)."""

    def attempt() -> str:
        uow = UnitOfWork(context)
        number = numbering.stage_next_number(uow, context, "INV", year)
        uow.put(
            Document(context.key("DOC"), document_id, number=number),
            condition=Document.PK.does_not_exist(),
        )
        uow.audit("billing.invoice.create", "invoice", document_id)
        uow.commit()
        return number

    return until_won(attempt)


def numbers(context: TenantContext) -> list[str]:
    return sorted(d.number for d in Document.query(context.key("DOC")))


def test_numbers_follow_each_other_per_tenant_and_year(cloud: MotoCloud) -> None:
    assert [issue(ctx(), f"d{i}") for i in range(3)] == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2026-000003",
    ]
    assert issue(ctx(), "next-year", year=2027) == "INV-2027-000001"
    assert issue(ctx("globex"), "theirs") == "INV-2026-000001"


def test_a_cancelled_document_uses_no_number(cloud: MotoCloud) -> None:
    assert issue(ctx(), "first") == "INV-2026-000001"
    uow = UnitOfWork(ctx())
    numbering.stage_next_number(uow, ctx(), "INV", 2026)
    uow.put(Document(ctx().key("DOC"), "first", number="x"), condition=Document.PK.does_not_exist())
    uow.audit("billing.invoice.create", "invoice", "first")
    with pytest.raises(ConflictError):
        uow.commit()
    assert issue(ctx(), "second") == "INV-2026-000002"


def test_parallel_issuers_get_distinct_numbers_without_gaps(cloud: MotoCloud) -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, so an unguarded race would show
    try:
        with ThreadPoolExecutor(16) as pool:
            issued = list(pool.map(lambda i: issue(ctx(), f"p{i:02d}"), range(40)))
    finally:
        sys.setswitchinterval(interval)
    expected = [f"INV-2026-{n:06d}" for n in range(1, 41)]
    assert sorted(issued) == expected
    assert numbers(ctx()) == expected
