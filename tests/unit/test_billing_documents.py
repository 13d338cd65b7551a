"""Invoice documents: JSON round-trip, keys, and the rendered PDF's structure."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from dotmac.billing.documents import (
    DocumentLine,
    InvoiceDocument,
    json_key,
    pdf_key,
    render_pdf,
)
from dotmac.billing.money import Money
from dotmac.core.errors import ValidationError


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def make_doc(**changes: object) -> InvoiceDocument:
    doc = InvoiceDocument(
        tenant_id="acme",
        tenant_name="Acme Ltd",
        invoice_number="INV-2026-000123",
        period="2026-11",
        issued_on=date(2026, 12, 1),
        due_on=date(2026, 12, 31),
        currency="USD",
        lines=(
            DocumentLine("CRM, Pro plan", Decimal("1"), usd("49.00"), usd("49.00")),
            DocumentLine("Extra seats", Decimal("3"), usd("5.00"), usd("15.00")),
        ),
        subtotal=usd("64.00"),
        discount_total=usd("4.00"),
        tax_lines=(("VAT 7.5%", usd("4.50")),),
        total=usd("64.50"),
        notes="Thank you for your business.",
    )
    return replace(doc, **changes)  # type: ignore[arg-type]


def test_json_round_trip_through_text() -> None:
    doc = make_doc()
    data = json.loads(json.dumps(doc.to_json()))
    assert InvoiceDocument.from_json(data) == doc


def test_json_is_plain_with_string_amounts() -> None:
    data = make_doc().to_json()
    assert data["issued_on"] == "2026-12-01"
    assert data["total"] == {"amount": "64.50", "currency": "USD"}
    assert data["lines"][1]["quantity"] == "3"
    assert data["tax_lines"] == [
        {"name": "VAT 7.5%", "amount": {"amount": "4.50", "currency": "USD"}}
    ]


def test_json_round_trip_without_notes_and_zero_decimals() -> None:
    jpy = Money("1200", "JPY")
    doc = make_doc(
        currency="JPY",
        lines=(DocumentLine("Hours", Decimal("1.5"), Money("800", "JPY"), jpy),),
        subtotal=jpy,
        discount_total=Money.zero("JPY"),
        tax_lines=(),
        total=jpy,
        notes=None,
    )
    assert InvoiceDocument.from_json(doc.to_json()) == doc
    assert doc.to_json()["notes"] is None


def test_keys() -> None:
    assert json_key("acme", "INV-2026-000123") == "tenants/acme/invoices/INV-2026-000123.json"
    assert pdf_key("acme", "INV-2026-000123") == "tenants/acme/invoices/INV-2026-000123.pdf"


@pytest.mark.parametrize(
    ("tenant", "number"), [("Acme", "INV-1"), ("acme", "../x"), ("acme", "a/b"), ("acme", "")]
)
def test_keys_refuse_bad_parts(tenant: str, number: str) -> None:
    with pytest.raises(ValidationError):
        pdf_key(tenant, number)


def test_pdf_structure() -> None:
    pdf = render_pdf(make_doc())
    assert pdf.startswith(b"%PDF-1.")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert b"xref" in pdf and b"trailer" in pdf
    # One page, and the xref offset the trailer points at really is the xref table.
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    startxref = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    assert pdf[startxref:].startswith(b"xref")


def test_pdf_is_deterministic() -> None:
    assert render_pdf(make_doc()) == render_pdf(make_doc())
    assert render_pdf(make_doc()) != render_pdf(make_doc(invoice_number="INV-2026-000124"))


def test_uncompressed_pdf_carries_the_text() -> None:
    pdf = render_pdf(make_doc(), compress=False)
    for text in (
        b"Acme Ltd",
        b"INV-2026-000123",
        b"2026-11",
        b"2026-12-31",
        b"Extra seats",
        b"VAT 7.5%",
        b"64.50",
        b"Subtotal",
        b"Thank you",
    ):
        assert text in pdf, text


def test_non_latin_text_does_not_break_rendering() -> None:
    pdf = render_pdf(make_doc(tenant_name="Acme — Zürich 東京"), compress=False)
    assert b"Acme - Z\xfcrich ??" in pdf and pdf.rstrip().endswith(b"%%EOF")


def test_many_lines_flow_onto_more_pages() -> None:
    line = DocumentLine("Usage", Decimal("1"), usd("1.00"), usd("1.00"))
    pdf = render_pdf(make_doc(lines=(line,) * 80))
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2
