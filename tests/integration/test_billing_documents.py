"""Invoice documents in the emulated S3: store, read back, existence and presigned URLs."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from dotmac.billing import documents
from dotmac.billing.documents import DocumentLine, InvoiceDocument
from dotmac.billing.money import Money
from tests.integration.conftest import MotoCloud

BUCKET = "dotmac-test-objects"


def usd(amount: str) -> Money:
    return Money(amount, "USD")


def make_doc(number: str = "INV-2026-000123", total: str = "64.50") -> InvoiceDocument:
    return InvoiceDocument(
        tenant_id="acme",
        tenant_name="Acme Ltd",
        invoice_number=number,
        period="2026-11",
        issued_on=date(2026, 12, 1),
        due_on=date(2026, 12, 31),
        currency="USD",
        lines=(DocumentLine("CRM, Pro plan", Decimal("1"), usd("60.00"), usd("60.00")),),
        subtotal=usd("60.00"),
        discount_total=usd("0.00"),
        tax_lines=(("VAT 7.5%", usd("4.50")),),
        total=usd(total),
    )


def test_store_writes_both_objects_byte_identical(moto_cloud: MotoCloud) -> None:
    doc = make_doc()
    json_key, pdf_key = documents.store(doc)
    assert json_key == "tenants/acme/invoices/INV-2026-000123.json"
    assert pdf_key == "tenants/acme/invoices/INV-2026-000123.pdf"
    s3 = moto_cloud.client("s3")
    pdf = s3.get_object(Bucket=BUCKET, Key=pdf_key)
    assert pdf["ContentType"] == "application/pdf"
    assert pdf["Body"].read() == documents.render_pdf(doc)
    record = s3.get_object(Bucket=BUCKET, Key=json_key)
    assert record["ContentType"] == "application/json"
    assert InvoiceDocument.from_json(json.loads(record["Body"].read())) == doc
    assert documents.load("acme", "INV-2026-000123") == doc


def test_store_is_an_idempotent_overwrite(moto_cloud: MotoCloud) -> None:
    assert documents.store(make_doc()) == documents.store(make_doc())
    documents.store(make_doc(total="99.00"))
    assert documents.load("acme", "INV-2026-000123").total == Money("99.00", "USD")
    listed = moto_cloud.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="tenants/acme/")
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        "tenants/acme/invoices/INV-2026-000123.json",
        "tenants/acme/invoices/INV-2026-000123.pdf",
    ]


def test_stored(moto_cloud: MotoCloud) -> None:
    assert not documents.stored("acme", "INV-2026-000123")
    documents.store(make_doc())
    assert documents.stored("acme", "INV-2026-000123")
    assert not documents.stored("acme", "INV-2026-000124")
    assert not documents.stored("globex", "INV-2026-000123")


def test_pdf_url_is_presigned_for_the_key(moto_cloud: MotoCloud) -> None:
    documents.store(make_doc())
    url = documents.pdf_url("acme", "INV-2026-000123", expires=120)
    parts = urlsplit(url)
    assert BUCKET in parts.netloc + parts.path
    assert parts.path.endswith("tenants/acme/invoices/INV-2026-000123.pdf")
    query = parse_qs(parts.query)
    assert query["response-content-disposition"] == ['attachment; filename="INV-2026-000123.pdf"']
    if "X-Amz-Signature" in query:  # SigV4
        assert query["X-Amz-Expires"] == ["120"]
        assert query["X-Amz-Signature"][0]
    else:  # SigV2 query auth
        assert query["Signature"][0] and query["Expires"][0].isdigit()
