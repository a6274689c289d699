"""The patient's page says what is true now: open, paid, partly or fully refunded, locked."""

import re

import pytest
import time_machine
from sqlalchemy import select

from payapp import refunds
from payapp.db import get_session
from payapp.models import Payment, StaffUser

from .conftest import ADMIN_EMAIL, submit_card

# 23:30 in New York (the clinic's zone) on March 4 is already March 5 in UTC.
LATE_EVENING = "2027-03-05T04:30:00+00:00"


def refund(app, gateway, cents):
    with app.app_context():
        session = get_session()
        payment = session.scalar(select(Payment))
        admin_id = session.scalar(select(StaffUser.id).where(StaffUser.email == ADMIN_EMAIL))
        refunds.refund_payment(
            session,
            gateway,
            payment,
            amount_cents=cents,
            reason="overpaid",
            staff_id=admin_id,
            request_key=f"refund-{cents}",
        )


@pytest.fixture
def paid_link(client, link_factory):
    with time_machine.travel(LATE_EVENING, tick=False):
        link = link_factory()
        response = submit_card(client, link.path)
    assert "Payment received" in response.text
    return link


def facts(html: str) -> dict[str, str]:
    """The page's <dt>/<dd> pairs, tags stripped."""
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", html, re.S)
    return {dt: re.sub(r"<[^>]+>", "", dd).strip() for dt, dd in pairs}


def test_an_open_link_asks_to_pay_by_its_date(client, link_factory):
    html = client.get(link_factory().path).text
    assert "Pay by" in html and "before you pay" in html
    assert "Paid on" not in html


def test_a_paid_link_says_paid_on_the_clinic_date_and_no_longer_asks_to_pay(client, paid_link):
    html = client.get(paid_link.path).text
    assert facts(html)["Paid on"] == "March 4, 2027"  # the clinic's day, not UTC's
    assert "Payment received" in html
    for stale in ("Pay by", "before you pay", "to pay to"):
        assert stale not in html, stale


def test_paying_updates_the_summary_and_footer_out_of_band(client, link_factory):
    with time_machine.travel(LATE_EVENING, tick=False):
        link = link_factory()
        fragment = submit_card(client, link.path).text
    assert 'id="pay-summary" class="pay-summary" aria-labelledby="pay-h" hx-swap-oob="true"' in (
        fragment
    )
    assert 'id="pay-footer" class="pay-footer" hx-swap-oob="true"' in fragment
    assert "<dt>Paid on</dt><dd>March 4, 2027</dd>" in fragment
    for stale in ("Pay by", "before you pay"):
        assert stale not in fragment, stale


def test_a_partly_refunded_link_says_so_with_the_amounts(app, client, gateway, paid_link):
    refund(app, gateway, 5000)
    html = client.get(paid_link.path).text
    assert "Partially refunded" in html
    assert "refunded $50.00 of your $125.00 payment" in html
    assert facts(html)["Total after refund"] == "$75.00"
    assert "Payment received" not in html and "icon-ok" not in html
    for stale in ("Pay by", "before you pay"):
        assert stale not in html, stale


def test_a_fully_refunded_link_says_refunded_not_a_green_payment_received(
    app, client, gateway, paid_link
):
    refund(app, gateway, 12500)
    html = client.get(paid_link.path).text
    assert re.search(r'<h2 id="receipt-h">.*Refunded</h2>', html)
    assert "refunded your payment of $125.00" in html
    assert "Payment received" not in html and "icon-ok" not in html  # no green success
    assert "Partially refunded" not in html
    for stale in ("Pay by", "before you pay"):
        assert stale not in html, stale


def test_the_receipt_names_the_card_that_was_typed(client, link_factory):
    link = link_factory()
    html = submit_card(client, link.path, nonce="cnon:card-nonce-ok--MASTERCARD--5100").text
    assert "Mastercard ending 5100" in html and "1111" not in html


def test_the_decline_that_locks_the_link_says_only_that_it_is_locked(client, link_factory):
    link = link_factory()
    for _ in range(4):
        declined = submit_card(client, link.path, nonce="cnon:card-nonce-declined")
        assert "Then press Pay again" in declined.text
        assert 'id="attempt-key"' in declined.text  # the form stays, with a fresh key
    locked = submit_card(client, link.path, nonce="cnon:card-nonce-declined").text
    assert "you were not charged" in locked and "this link is now locked" in locked
    assert "(212) 555-0100" in locked
    assert "Try another card" not in locked and "Pay again" not in locked
    # The form (and #attempt-key inside it) is retired: nothing may target the gone input.
    assert 'id="pay-form-section" hx-swap-oob="true" hidden' in locked
    assert 'id="attempt-key"' not in locked
