"""The ledger against a real (moto) table: payments oldest first, overpayment as credit that
settles the next invoice, credit notes capped at the balance, idempotent payments (also in
parallel), and balances that reconcile after random operation sequences."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dotmac.billing import ledger, numbering
from dotmac.billing.invoicing import new_invoice
from dotmac.billing.models import CreditNoteItem, InvoiceItem, PaymentItem
from dotmac.billing.money import Money, sum_money
from dotmac.billing.pricing import InvoiceLine, InvoiceTotals
from dotmac.billing.schemas import CreditNoteRequest, PaymentRequest
from dotmac.core.errors import ConflictError, NotFoundError, UnprocessableError, ValidationError
from dotmac.core.model import bind_table
from dotmac.core.tenancy import TenantContext
from dotmac.core.unit_of_work import UnitOfWork
from tests.integration.conftest import MotoCloud

_books = itertools.count(1)


@pytest.fixture
def cloud(moto_cloud: MotoCloud) -> Iterator[MotoCloud]:
    bind_table(moto_cloud.created.table)
    yield moto_cloud


def book() -> ledger.Book:
    """A fresh account (its own tenant key space) for each use."""
    return ledger.Book(TenantContext(f"ledger-{next(_books)}", "biller", request_id="r"))


def post(target: ledger.Book, total: str, issued: date = date(2026, 3, 1)) -> str:
    """Issue an invoice of `total` USD on the book's account, as billing runs do."""
    amount = Money(total, "USD")
    uow = UnitOfWork(target.ctx)
    account = ledger.load_account(target)
    number = numbering.stage_next_number(uow, target.ctx, "INV", issued.year)
    invoice = new_invoice(
        target,
        number,
        period=f"{issued:%Y-%m}",
        category="SUBSCRIPTION",
        lines=[InvoiceLine("Service", Decimal(1), amount)],
        totals=InvoiceTotals(amount, Money.zero("USD"), [], amount),
        issued_on=issued,
        due_on=issued,
    )
    ledger.stage_post(uow, target, account, invoice, ledger.NoSettlement())
    uow.audit("billing.invoice.create", "invoice", number)
    uow.commit()
    return number


def pay(target: ledger.Book, amount: str, key: str) -> tuple[PaymentItem, bool]:
    request = PaymentRequest(amount=Decimal(amount))
    return ledger.pay(target, request, key, ledger.NoSettlement())


def credit(target: ledger.Book, number: str, amount: str) -> CreditNoteItem:
    request = CreditNoteRequest(amount=Decimal(amount), reason="goodwill")
    return ledger.credit_note(target, number, request, None, ledger.NoSettlement())[0]


def invoice(target: ledger.Book, number: str) -> InvoiceItem:
    return ledger.get_invoice(target, number)


def reconcile(target: ledger.Book) -> dict[str, Any]:
    """Check the account against its items: balance = invoiced - paid - credited = open
    invoices' balances - credit; returns the account's view."""
    account = ledger.load_account(target)
    usd = "USD"
    invoices = list(InvoiceItem.query(target.key("INVOICE"), consistent_read=True))
    payments = list(PaymentItem.query(target.key("PAYMENT"), consistent_read=True))
    notes = list(CreditNoteItem.query(target.key("CREDIT_NOTE"), consistent_read=True))
    invoiced = sum_money((Money(i.total, usd) for i in invoices), usd)
    paid = sum_money((Money(p.amount, usd) for p in payments), usd)
    credited = sum_money((Money(n.amount, usd) for n in notes), usd)
    balance = Money(account.balance, usd)
    credit_left = Money(account.credit, usd)
    assert balance == invoiced - paid - credited
    assert (Money(account.invoiced, usd), Money(account.paid, usd)) == (invoiced, paid)
    assert Money(account.credited, usd) == credited
    open_balances = sum_money((Money(i.balance, usd) for i in invoices), usd)
    assert balance == open_balances - credit_left
    assert not credit_left.is_negative()
    for item in invoices:
        settled = Money(item.paid, usd) + Money(item.credited, usd) + Money(item.balance, usd)
        assert settled == Money(item.total, usd), item.SK
        assert not Money(item.balance, usd).is_negative()
        assert (item.status == "PAID") == Money(item.balance, usd).is_zero()
    assert sorted(ledger.open_numbers(account)) == sorted(
        i.SK for i in invoices if i.status == "OPEN"
    )
    return ledger.account_view(account)


def test_a_payment_settles_the_oldest_invoices_first_and_the_rest_is_credit(
    cloud: MotoCloud,
) -> None:
    target = book()
    first, second, third = post(target, "100.00"), post(target, "50.00"), post(target, "30.00")
    payment, replayed = pay(target, "120.00", "pay-1")
    assert not replayed
    assert payment.allocations == [
        {"invoice": first, "amount": "100.00"},
        {"invoice": second, "amount": "20.00"},
    ]
    assert payment.to_credit == "0.00"
    assert (invoice(target, first).status, invoice(target, second).balance) == ("PAID", "30.00")
    assert reconcile(target)["open_invoices"] == [second, third]

    overpayment, _ = pay(target, "100.00", "pay-2")
    assert overpayment.allocations == [
        {"invoice": second, "amount": "30.00"},
        {"invoice": third, "amount": "30.00"},
    ]
    assert overpayment.to_credit == "40.00"
    view = reconcile(target)
    assert (view["balance"], view["credit"], view["open_invoices"]) == ("-40.00", "40.00", [])

    fourth = post(target, "25.00")  # the credit pays the next invoice as it is issued
    assert (invoice(target, fourth).status, invoice(target, fourth).paid) == ("PAID", "25.00")
    fifth = post(target, "25.00")
    assert (invoice(target, fifth).balance, invoice(target, fifth).paid) == ("10.00", "15.00")
    view = reconcile(target)
    assert (view["balance"], view["credit"], view["open_invoices"]) == ("10.00", "0.00", [fifth])


def test_a_credit_note_never_exceeds_the_invoices_balance(cloud: MotoCloud) -> None:
    target = book()
    number = post(target, "80.00")
    pay(target, "30.00", "partial")
    with pytest.raises(ConflictError) as refused:
        credit(target, number, "50.01")
    assert refused.value.code == "CREDIT_EXCEEDS_BALANCE"
    note = credit(target, number, "20.00")
    assert (note.SK, note.invoice, note.amount) == ("CN-2026-000001", number, "20.00")
    assert credit(target, number, "30.00").SK == "CN-2026-000002"
    assert invoice(target, number).status == "PAID"
    with pytest.raises(ConflictError):  # nothing left to credit
        credit(target, number, "0.01")
    with pytest.raises(NotFoundError):
        credit(target, "INV-2026-999999", "1.00")
    view = reconcile(target)
    assert (view["balance"], view["credited"]) == ("0.00", "50.00")


def test_the_same_key_pays_once_and_another_request_under_it_is_refused(
    cloud: MotoCloud,
) -> None:
    target = book()
    post(target, "60.00")
    first, replayed = pay(target, "60.00", "once")
    again, replayed_again = pay(target, "60.00", "once")
    assert (replayed, replayed_again, again.SK) == (False, True, first.SK)
    with pytest.raises(UnprocessableError) as reused:
        pay(target, "61.00", "once")
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert reconcile(target)["paid"] == "60.00"
    with pytest.raises(ValidationError):  # more decimals than USD has: nothing written
        pay(target, "1.001", "fractional")
    with pytest.raises(ValidationError):
        ledger.pay(
            target,
            PaymentRequest(amount=Decimal("1.00"), currency="EUR"),
            "euro",
            ledger.NoSettlement(),
        )
    assert reconcile(target)["paid"] == "60.00"


def test_parallel_payments_with_the_same_key_count_once(cloud: MotoCloud) -> None:
    target = book()
    post(target, "500.00")
    barrier = threading.Barrier(8)

    def attempt(_: int) -> tuple[str, bool]:
        barrier.wait()
        payment, replayed = pay(target, "125.00", "parallel")
        return payment.SK, replayed

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert len({sk for sk, _ in results}) == 1
    assert sum(not replayed for _, replayed in results) == 1
    view = reconcile(target)
    assert (view["paid"], view["balance"]) == ("125.00", "375.00")


def test_parallel_payments_with_different_keys_all_count(cloud: MotoCloud) -> None:
    target = book()
    post(target, "100.00")
    post(target, "100.00")
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: pay(target, "40.00", f"key-{n}"), range(6)))
    view = reconcile(target)
    assert (view["paid"], view["balance"], view["credit"]) == ("240.00", "-40.00", "40.00")


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), amounts),
        st.tuples(st.just("pay"), amounts),
        st.tuples(st.just("credit"), amounts, st.integers(min_value=0, max_value=9)),
        st.tuples(st.just("replay"), st.integers(min_value=0, max_value=9)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations)
def test_balances_reconcile_after_any_sequence(cloud: MotoCloud, ops: list[Any]) -> None:
    target = book()
    numbers: list[str] = []
    keys: list[tuple[str, Decimal]] = []
    for op in ops:
        if op[0] == "invoice":
            numbers.append(post(target, str(op[1])))
        elif op[0] == "pay":
            keys.append((f"k{len(keys)}", op[1]))
            pay(target, str(op[1]), keys[-1][0])
        elif op[0] == "replay" and keys:
            key, amount = keys[op[1] % len(keys)]
            assert pay(target, str(amount), key)[1]  # replayed, not paid again
        elif op[0] == "credit" and numbers:
            number = numbers[op[2] % len(numbers)]
            balance = Decimal(invoice(target, number).balance)
            if op[1] <= balance:
                credit(target, number, str(op[1]))
            else:
                with pytest.raises(ConflictError):
                    credit(target, number, str(op[1]))
        reconcile(target)
