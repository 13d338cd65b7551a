"""Invoice documents: a JSON record and a rendered PDF per invoice, kept in S3.

Both live under `tenants/<tenant_id>/invoices/<number>.{json,pdf}`; storing is an
idempotent overwrite of the same keys. Tenants download the PDF through a short-lived
presigned URL. The PDF library (fpdf2) is imported only when a PDF is rendered, so it
stays off the cold-start import path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from dotmac.billing.money import Money
from dotmac.core.aws import client
from dotmac.core.errors import ValidationError
from dotmac.core.settings import get_settings
from dotmac.core.tenancy import validate_tenant_id

INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
JSON_TYPE = "application/json"
PDF_TYPE = "application/pdf"
PRODUCER = "DotMac"


@dataclass(frozen=True)
class DocumentLine:
    """One line of an invoice document: what, how many, at what unit price, for how much."""

    description: str
    quantity: Decimal
    unit_price: Money
    amount: Money

    def to_json(self) -> dict[str, Any]:
        """A plain dict; the quantity and amounts as fixed-point strings."""
        return {
            "description": self.description,
            "quantity": format(self.quantity, "f"),
            "unit_price": self.unit_price.to_json(),
            "amount": self.amount.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DocumentLine:
        """The inverse of `to_json`."""
        return cls(
            description=str(data["description"]),
            quantity=Decimal(str(data["quantity"])),
            unit_price=Money.from_json(data["unit_price"]),
            amount=Money.from_json(data["amount"]),
        )


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything printed on one invoice, as issued (a snapshot, not a live view)."""

    tenant_id: str
    tenant_name: str
    invoice_number: str
    period: str
    issued_on: date
    due_on: date
    currency: str
    lines: tuple[DocumentLine, ...]
    subtotal: Money
    discount_total: Money
    tax_lines: tuple[tuple[str, Money], ...]
    total: Money
    notes: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain JSON-ready dict: dates as ISO text, amounts as {amount, currency} strings."""
        return {
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "invoice_number": self.invoice_number,
            "period": self.period,
            "issued_on": self.issued_on.isoformat(),
            "due_on": self.due_on.isoformat(),
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "subtotal": self.subtotal.to_json(),
            "discount_total": self.discount_total.to_json(),
            "tax_lines": [{"name": name, "amount": tax.to_json()} for name, tax in self.tax_lines],
            "total": self.total.to_json(),
            "notes": self.notes,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InvoiceDocument:
        """The inverse of `to_json`."""
        notes = data.get("notes")
        return cls(
            tenant_id=str(data["tenant_id"]),
            tenant_name=str(data["tenant_name"]),
            invoice_number=str(data["invoice_number"]),
            period=str(data["period"]),
            issued_on=date.fromisoformat(data["issued_on"]),
            due_on=date.fromisoformat(data["due_on"]),
            currency=str(data["currency"]),
            lines=tuple(DocumentLine.from_json(line) for line in data["lines"]),
            subtotal=Money.from_json(data["subtotal"]),
            discount_total=Money.from_json(data["discount_total"]),
            tax_lines=tuple(
                (str(tax["name"]), Money.from_json(tax["amount"])) for tax in data["tax_lines"]
            ),
            total=Money.from_json(data["total"]),
            notes=None if notes is None else str(notes),
        )


_PUNCTUATION = str.maketrans(
    {"\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
)


def _text(value: str) -> str:
    """`value` in the PDF core fonts' Latin-1 (dashes/quotes simplified, the rest as "?")."""
    plain = value.translate(_PUNCTUATION).replace("\u2026", "...")
    return plain.encode("latin-1", errors="replace").decode("latin-1")


def _amount(money: Money) -> str:
    """An amount as printed in a table cell (fixed point, no currency)."""
    return format(money.amount, "f")


def render_pdf(doc: InvoiceDocument, *, compress: bool = True) -> bytes:
    """The invoice as PDF bytes; the same document always renders to the same bytes."""
    from fpdf import FPDF
    from fpdf.enums import Align, XPos, YPos

    pdf = FPDF(format="A4")
    pdf.set_compression(compress)
    # Fixed metadata so that output is deterministic for a given document.
    pdf.set_creation_date(datetime.combine(doc.issued_on, time(), tzinfo=UTC))
    pdf.set_producer(PRODUCER)
    pdf.set_title(_text(f"Invoice {doc.invoice_number}"))
    pdf.set_author(_text(doc.tenant_name))
    pdf.add_page()
    width = pdf.epw

    def row(left: str, right: str, *, bold: bool = False) -> None:
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(width * 0.75, 7, _text(left), align=Align.R)
        pdf.cell(width * 0.25, 7, _text(right), align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width, 10, _text(doc.tenant_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "B", 13)
    pdf.cell(width, 8, _text(f"Invoice {doc.invoice_number}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    for label, value in (
        ("Period", doc.period),
        ("Issued", doc.issued_on.isoformat()),
        ("Due", doc.due_on.isoformat()),
        ("Currency", doc.currency),
    ):
        pdf.cell(width, 6, _text(f"{label}: {value}"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    pdf.set_font("Helvetica", "", 10)
    with pdf.table(
        col_widths=(50, 12, 19, 19),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
        first_row_as_headings=True,
    ) as table:
        table.row(("Description", "Qty", "Unit price", "Amount"))
        for line in doc.lines:
            table.row(
                (
                    _text(line.description),
                    format(line.quantity, "f"),
                    _amount(line.unit_price),
                    _amount(line.amount),
                )
            )
    pdf.ln(4)

    row("Subtotal", _amount(doc.subtotal))
    if not doc.discount_total.is_zero():
        row("Discounts", f"-{_amount(abs(doc.discount_total))}")
    for name, tax in doc.tax_lines:
        row(name, _amount(tax))
    row(f"Total ({doc.currency})", _amount(doc.total), bold=True)

    if doc.notes:
        pdf.ln(6)
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(width, 5, _text(doc.notes))
    return bytes(pdf.output())


def _checked_number(number: str) -> str:
    """`number` if it is safe as an S3 key segment, else `ValidationError`."""
    if not INVOICE_NUMBER.fullmatch(number):
        raise ValidationError(f"invalid invoice number: {number!r}")
    return number


def _key(tenant_id: str, number: str, extension: str) -> str:
    """`tenants/<tid>/invoices/<number>.<extension>`, both parts validated."""
    tid, checked = validate_tenant_id(tenant_id), _checked_number(number)
    return f"tenants/{tid}/invoices/{checked}.{extension}"


def json_key(tenant_id: str, number: str) -> str:
    """The S3 key of an invoice's JSON record."""
    return _key(tenant_id, number, "json")


def pdf_key(tenant_id: str, number: str) -> str:
    """The S3 key of an invoice's PDF."""
    return _key(tenant_id, number, "pdf")


def _json_bytes(doc: InvoiceDocument) -> bytes:
    """The JSON record as canonical UTF-8 bytes (sorted keys, stable across runs)."""
    import json

    return json.dumps(doc.to_json(), sort_keys=True, ensure_ascii=False).encode("utf-8")


def store(doc: InvoiceDocument) -> tuple[str, str]:
    """Write the JSON record and the PDF (overwriting any earlier copy); their keys."""
    keys = json_key(doc.tenant_id, doc.invoice_number), pdf_key(doc.tenant_id, doc.invoice_number)
    s3, bucket = client("s3"), get_settings().bucket
    s3.put_object(Bucket=bucket, Key=keys[0], Body=_json_bytes(doc), ContentType=JSON_TYPE)
    s3.put_object(Bucket=bucket, Key=keys[1], Body=render_pdf(doc), ContentType=PDF_TYPE)
    return keys


def stored(tenant_id: str, number: str) -> bool:
    """True when the invoice's PDF is in the bucket."""
    from botocore.exceptions import ClientError

    try:
        client("s3").head_object(Bucket=get_settings().bucket, Key=pdf_key(tenant_id, number))
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def load(tenant_id: str, number: str) -> InvoiceDocument:
    """The stored JSON record of an invoice, as a document."""
    import json

    body = client("s3").get_object(Bucket=get_settings().bucket, Key=json_key(tenant_id, number))
    return InvoiceDocument.from_json(json.loads(body["Body"].read()))


def pdf_url(tenant_id: str, number: str, *, expires: int = 300) -> str:
    """A presigned GET URL for the PDF, valid `expires` seconds, served as an attachment."""
    if not 1 <= expires <= 7 * 24 * 3600:
        raise ValidationError(f"expires must be 1..604800 seconds, got {expires}")
    key = pdf_key(tenant_id, number)
    url: str = client("s3").generate_presigned_url(
        "get_object",
        Params={
            "Bucket": get_settings().bucket,
            "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{number}.pdf"',
            "ResponseContentType": PDF_TYPE,
        },
        ExpiresIn=expires,
    )
    return url
