"""Per-tenant gapless document numbers (`INV-2026-000123`), never timestamps.

A number is taken inside the transaction that writes the document: the sequence item moves
from the value read to the next one only if nobody moved it meanwhile, so a number is used
exactly when its document is committed. A cancelled transaction uses no number (no gap), and
two writers racing for the same number cannot both commit (the loser retries with the next).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from dotmac.billing.models import SequenceItem

PARTITION = "BILLING"


def sequence_key(prefix: str, year: int) -> str:
    return f"SEQ#{prefix}#{year}"


def last_number(item: SequenceItem | None) -> int:
    """The last number a sequence item gave (0 for a sequence not started)."""
    return 0 if item is None else int(item.last)


def format_number(prefix: str, year: int, number: int) -> str:
    """`INV-2026-000123`: the prefix, the year and six digits (more once past 999,999)."""
    return f"{prefix}-{year}-{number:06d}"


def stage_next_number(
    uow: UnitOfWork, ctx: TenantContext, prefix: str, year: int, last: int | None = None
) -> str:
    """Stage taking the next number of the tenant's `prefix` sequence for `year` into `uow`
    (one consistent GetItem now, unless the caller just read `last` consistently itself; the
    conditional update commits with the document)."""
    from dotmac.billing.models import SequenceItem
    from dotmac.core.model import ensure_bound

    ensure_bound()
    pk, sk = ctx.key(PARTITION), sequence_key(prefix, year)
    if last is None:
        try:
            last = int(SequenceItem.get(pk, sk, consistent_read=True).last)
        except SequenceItem.DoesNotExist:
            last = 0
    unchanged = SequenceItem.last.does_not_exist() if last == 0 else SequenceItem.last == last
    uow.update(
        SequenceItem(pk, sk),
        actions=[SequenceItem.last.set(last + 1), SequenceItem.kind.set(SequenceItem.entity)],
        condition=unchanged,
    )
    return format_number(prefix, year, last + 1)
