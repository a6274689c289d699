"""Paying part now (issue 11) through the pages: the staff form, the patient's choice, the words
after a part payment, receipts, the staff list and the links CSV."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from payapp.db import get_session
from payapp.models import Payment, PaymentLink

from .conftest import open_pay_page, staff_post, submit_card
from .test_exports import rows
from .test_receipts import body_text, outbox, receipts


def part_link(link_factory, **kw):
    return link_factory(amount="200.00", min_payment="50", reference="ST-200", **kw)


def pay(client, path, choice="full", other="", page=None):
    page = page or open_pay_page(client, path)
    extra = {"pay_choice": choice, "other_amount": other}
    seen = re.search(r'name="balance_cents" value="(\d+)"', page.html)
    if seen:
        extra["balance_cents"] = seen[1]
    response = submit_card(client, path, page=page, extra=extra)
    response.close()  # the receipt goes out once the response is closed (views/pay.py)
    return response


def link_row(app, link_id) -> PaymentLink:
    with app.app_context():
        return get_session().get(PaymentLink, link_id)


def test_staff_allow_part_payments_with_a_minimum_on_the_new_link_form(app, staff):
    form = staff.get("/links/new").text
    assert 'name="min_payment"' in form and "Allow paying part now" in form
    response = staff_post(
        staff,
        "/links/new",
        {
            "patient_name": "Ana Ruiz",
            "amount": "200.00",
            "min_payment": "50",
            "send_now": "",
            "language": "en",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        link = get_session().scalar(select(PaymentLink))
        assert (link.amount_cents, link.min_payment_cents) == (20000, 5000)
    assert "Allowed, at least $50.00" in staff.get(f"/links/{link.id}").text


def test_a_minimum_not_below_the_amount_is_refused_on_the_form(app, staff):
    response = staff_post(
        staff,
        "/links/new",
        {"patient_name": "Ana Ruiz", "amount": "200", "min_payment": "200", "send_now": ""},
        page_url="/links/new",
    )
    assert response.status_code == 422
    assert "must be less than the amount ($200.00)" in response.text
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(PaymentLink)) == 0


def test_the_create_link_command_takes_a_minimum(app, runner):
    command = ["create-link", "--amount", "200", "--name", "Ana Ruiz", "--min-payment"]
    with app.app_context():
        result = runner.invoke(args=[*command, "50"])
        assert result.exit_code == 0, result.output
    with app.app_context():
        refused = runner.invoke(args=[*command, "0.5"])
    assert refused.exit_code != 0 and "at least $1.00" in refused.output
    with app.app_context():
        assert get_session().scalars(select(PaymentLink.min_payment_cents)).all() == [5000]


def test_the_page_offers_the_full_balance_or_another_amount(client, link_factory):
    html = client.get(part_link(link_factory).path).text
    assert 'type="radio" name="pay_choice" value="full" checked' in html
    assert "Pay the full $200.00" in html and "Pay another amount" in html
    assert 'name="other_amount"' in html and "At least $50.00 and at most $200.00." in html
    assert ">Pay now</button>" in html
    # The section holds the amount choice as well as the card: it is the whole payment.
    assert '<h2 id="card-h">Your payment</h2>' in html


def test_a_link_without_a_minimum_offers_no_choice(client, link_factory):
    html = client.get(link_factory().path).text
    assert 'name="pay_choice"' not in html and 'name="other_amount"' not in html
    assert ">Pay $125.00</button>" in html
    assert '<h2 id="card-h">Card details</h2>' in html


def test_paying_part_shows_the_receipt_the_balance_and_a_way_to_pay_the_rest(
    app, client, link_factory, gateway
):
    link = part_link(link_factory)
    response = pay(client, link.path, "other", "50")
    assert response.status_code == 200
    text = response.text
    assert "Payment received" in text and "$50.00" in text
    assert re.search(r'id="balance-left">\$150\.00<', text)
    assert "Pay the rest ($150.00)" in text
    # The summary swapped in with the receipt says what is left, not "$200.00 paid".
    assert "You have paid $50.00 of $200.00. $150.00 is left to pay." in text
    assert "paid to Bright Smile Dental" not in text and "Paid on" not in text
    assert [c.amount_cents for c in gateway.charges] == [5000]
    row = link_row(app, link.id)
    assert (row.status, row.paid_cents) == ("open", 5000)

    later = client.get(link.path).text
    assert "You have paid $50.00 of $200.00. $150.00 is left to pay." in later
    assert "Pay the full $150.00" in later and "$150.00 left to pay" in later
    assert "Pay $200.00" not in later and "Pay the full $200.00" not in later


def test_paying_the_rest_later_makes_the_page_say_paid(app, client, link_factory, gateway):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50.00")
    response = pay(client, link.path, "full")
    assert "Payment received" in response.text and "Total paid" in response.text
    assert "Pay the rest" not in response.text
    assert [c.amount_cents for c in gateway.charges] == [5000, 15000]
    assert link_row(app, link.id).status == "paid"
    html = client.get(link.path).text
    assert "Payment received" in html and "$150.00" in html
    assert 'id="pay-form"' not in html and "left to pay" not in html


@pytest.mark.parametrize(
    ("other", "words"),
    [
        ("-5", "for example 50.00"),
        ("0", "at least $50.00"),
        ("49.99", "at least $50.00"),
        ("200.01", "at most $200.00"),
        ("ten", "for example 50.00"),
        ("99999999999999999999", "for example 50.00"),
        ("1,000,000,000,000,000", "at most $200.00"),
        ("<script>alert(1)</script>", "for example 50.00"),
        ("", "for example 50.00"),
    ],
)
def test_a_bad_amount_is_refused_with_422_and_nothing_changes(
    app, client, link_factory, gateway, other, words
):
    link = part_link(link_factory)
    response = pay(client, link.path, "other", other)
    assert response.status_code == 422
    assert "Payment not completed — you were not charged." in response.text
    assert words in response.text
    assert "<script>alert" not in response.text
    assert gateway.charges == []
    row = link_row(app, link.id)
    assert (row.status, row.paid_cents, row.claim_key) == ("open", 0, None)
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Payment)) == 0


def test_a_forged_amount_on_a_link_without_a_minimum_is_refused(app, client, link_factory, gateway):
    link = link_factory()
    response = pay(client, link.path, "other", "1.00")
    assert response.status_code == 422 and "only be paid in full: $125.00" in response.text
    assert gateway.charges == []


def test_a_page_left_open_while_another_tab_paid_part_is_told_the_new_balance(
    app, client, link_factory, gateway
):
    link = part_link(link_factory)
    stale = open_pay_page(client, link.path)
    pay(client, link.path, "other", "50")
    response = pay(client, link.path, "full", page=stale)
    assert response.status_code == 422
    assert "The balance is now $150.00" in response.text
    assert [c.amount_cents for c in gateway.charges] == [5000]


def test_a_double_submit_of_a_part_payment_charges_once(app, client, link_factory, gateway):
    link = part_link(link_factory)
    page = open_pay_page(client, link.path)
    pay(client, link.path, "other", "60", page=page)
    again = pay(client, link.path, "other", "60", page=page)
    assert "Payment received" in again.text
    assert [c.amount_cents for c in gateway.charges] == [6000]
    changed = pay(client, link.path, "other", "70", page=page)
    assert "out of date" in changed.text and len(gateway.charges) == 1
    assert link_row(app, link.id).paid_cents == 6000


def test_a_spanish_patient_reads_the_choice_in_spanish(client, link_factory):
    link = part_link(link_factory, language="es")
    html = client.get(link.path).text
    assert "Pagar el total de $200.00" in html and "Pagar otra cantidad" in html
    assert '<h2 id="card-h">Su pago</h2>' in html
    response = pay(client, link.path, "other", "10")
    assert "Pague como mínimo $50.00, o el total de $200.00." in response.text


def test_each_part_gets_its_own_receipt_saying_what_is_left(app, client, link_factory, tmp_path):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    [first] = receipts(tmp_path)
    assert "Paid $50.00. Balance left: $150.00." in body_text(first)
    assert "To pay the rest, use the same link we sent you." in body_text(first)
    assert "Balance left" in first.get_body(("html",)).get_content()
    pay(client, link.path, "full")
    texts = [body_text(r) for r in receipts(tmp_path)]
    assert len(texts) == 2
    assert sum("Balance left" in t for t in texts) == 1
    assert sum("pay the rest" in t for t in texts) == 1
    assert any("$150.00" in t and "Balance left" not in t for t in texts)


def test_a_part_payment_receipt_text_says_what_is_left_in_one_segment(
    app, client, staff, link_factory, tmp_path
):
    link = part_link(link_factory, phone="(415) 555-2671")
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    pay(client, link.path, "other", "50")
    [sms] = outbox(tmp_path, "*-receipt-sms.txt")
    body = sms.read_text().partition("\n\n")[2].strip()
    assert "Balance left: $150.00." in body and len(body) <= 160, body


def test_staff_see_what_was_paid_and_what_is_left(app, client, staff, link_factory):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    listing = staff.get("/links").text
    assert '<span class="muted part-paid">$150.00 left</span>' in listing
    detail = staff.get(f"/links/{link.id}").text
    assert re.search(r'id="part-paid">\$50\.00 of \$200\.00, \$150\.00 left', detail)
    assert '<span class="badge badge-open">Part paid</span>' in listing
    assert '<span class="badge badge-open">Part paid</span>' in detail
    assert 'id="paid-twice"' not in detail
    pay(client, link.path, "full")
    detail = staff.get(f"/links/{link.id}").text
    assert "Part paid" not in detail and 'id="paid-twice"' not in detail
    assert '<span class="badge badge-paid">Paid</span>' in detail
    assert detail.count('data-label="Amount" class="num">$50.00') == 1
    assert detail.count('data-label="Amount" class="num">$150.00') == 1


def test_the_links_csv_has_what_was_paid_and_the_balance(app, client, staff, link_factory):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    with app.app_context():
        day = get_session().get(PaymentLink, link.id).created_at.date().isoformat()
    [row] = rows(staff.get(f"/exports/links.csv?from={day}&to={day}").text)
    assert (row["amount_paid"], row["amount_paid_cents"]) == ("50.00", "5000")
    assert (row["balance"], row["balance_cents"]) == ("150.00", "15000")


def test_a_link_resent_after_a_part_payment_asks_for_what_is_left(
    app, client, staff, link_factory, tmp_path
):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    before = set((tmp_path / "outbox").glob("*.eml"))
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    [sent] = set((tmp_path / "outbox").glob("*.eml")) - before
    text = sent.read_text()
    assert "pay $150.00" in text and "$200.00" not in text


def test_an_admin_refunds_a_part_payment_and_the_link_stays_open_for_its_balance(
    app, client, admin, link_factory
):
    from .test_refunds import post_refund

    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    post_refund(admin, link.id, "50.01")
    assert "at most $50.00 of this payment" in admin.get(f"/links/{link.id}").text
    assert link_row(app, link.id).status == "open"
    response = post_refund(admin, link.id, "50.00")
    assert response.status_code == 303
    row = link_row(app, link.id)
    assert (row.status, row.paid_cents) == ("open", 5000)
    detail = admin.get(f"/links/{link.id}").text
    assert "$50.00 of $200.00, $150.00 left" in detail and "refunded" in detail
    assert "$150.00 is left to pay" in client.get(link.path).text


@pytest.mark.parametrize(
    ("seen", "status", "words"),
    [
        ("1", 422, "at least $50.00"),
        ("20001", 422, "at most $200.00"),
        ("-5000", 200, "Payment received"),  # not a number: the choice "full" is the balance
        ("20000", 200, "Payment received"),
    ],
)
def test_a_forged_full_amount_is_held_to_the_same_bounds(
    app, client, link_factory, gateway, seen, status, words
):
    link = part_link(link_factory)
    page = open_pay_page(client, link.path)
    extra = {"pay_choice": "full", "balance_cents": seen}
    response = submit_card(client, link.path, page=page, extra=extra)
    assert response.status_code == status and words in response.text
    assert [c.amount_cents for c in gateway.charges] == ([20000] if status == 200 else [])


def test_the_cached_open_page_is_never_served_after_a_part_payment(app, client, link_factory):
    """OpenPages keeps an open link's rendered page per row: a part payment changes the row, so
    the next view shows the new balance, not the cached "Pay the full $200.00"."""
    link = part_link(link_factory)
    client.get(link.path)  # the first view records link.viewed
    cached = client.get(link.path).text  # rendered into the cache
    assert "Pay the full $200.00" in cached
    assert client.get(link.path).text.count("Pay the full $200.00") == 1  # served from it
    pay(client, link.path, "other", "50")
    html = client.get(link.path).text
    assert "Pay the full $150.00" in html and "Pay the full $200.00" not in html
    assert 'name="balance_cents" value="15000"' in html


def test_a_link_paid_in_parts_and_refunded_in_full_says_so_with_the_total(
    app, client, link_factory, gateway
):
    from payapp import refunds

    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    pay(client, link.path, "full")
    with app.app_context():
        session = get_session()
        for n, payment in enumerate(session.scalars(select(Payment)).all()):
            refunds.refund_payment(
                session,
                gateway,
                payment,
                amount_cents=payment.amount_cents,
                reason="billing error",
                staff_id=None,
                request_key=f"refund-all-{n}",
            )
    assert link_row(app, link.id).status == "refunded"
    html = client.get(link.path).text
    assert "refunded your payments of $200.00 to your card" in html
