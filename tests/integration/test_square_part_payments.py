"""Paying part now (issue 11) in Square mode: the real `squareup` SDK against the Square
stand-in, through the app's HTTP endpoints, as in test_square_mode.py."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select

from payapp.db import get_session
from payapp.models import AuditEvent, PaymentLink

from ..conftest import open_pay_page, submit_card
from ..support.servers import running_standin, square_mode
from .test_square_mode import LOCATION, TOKEN, WEBHOOK_KEY, creates, deliver, run_jobs

pytestmark = pytest.mark.integration


@pytest.fixture
def standin():
    with running_standin(TOKEN, LOCATION) as server:
        assert server.validating
        yield server


@pytest.fixture
def config_overrides(standin):
    return square_mode(standin, webhook_key=WEBHOOK_KEY)


def part_link(link_factory):
    return link_factory(amount="200.00", min_payment="50", reference="ST-200")


def pay(client, path, choice="full", other="", page=None):
    page = page or open_pay_page(client, path)
    extra = {"pay_choice": choice, "other_amount": other}
    seen = re.search(r'name="balance_cents" value="(\d+)"', page.html)
    if seen:
        extra["balance_cents"] = seen[1]
    return submit_card(client, path, page=page, extra=extra)


def paid(app, link_id):
    with app.app_context():
        link = get_session().get(PaymentLink, link_id)
        return link.status, link.paid_cents, link.claim_key


def amounts(standin):
    return [body["amount_money"]["amount"] for body in creates(standin)]


def test_a_part_payment_goes_to_square_for_the_chosen_amount_and_the_rest_later(
    app, client, link_factory, standin
):
    link = part_link(link_factory)
    first = pay(client, link.path, "other", "50")
    assert "Payment received" in first.text and "Pay the rest ($150.00)" in first.text
    assert paid(app, link.id) == ("open", 5000, None)
    rest = pay(client, link.path, "full")
    assert "Payment received" in rest.text
    assert amounts(standin) == [5000, 15000] and len(standin.charges) == 2
    assert paid(app, link.id) == ("paid", 20000, None)


def test_a_double_submit_of_a_part_payment_charges_once(app, client, link_factory, standin):
    link = part_link(link_factory)
    page = open_pay_page(client, link.path)
    pay(client, link.path, "other", "50", page=page)
    again = pay(client, link.path, "other", "50", page=page)
    assert "Payment received" in again.text
    assert amounts(standin) == [5000] and len(standin.charges) == 1
    assert paid(app, link.id) == ("open", 5000, None)


def test_two_tabs_paying_the_rest_at_once_make_one_charge(app, client, link_factory, standin):
    link = part_link(link_factory)
    pay(client, link.path, "other", "50")
    standin.inject("delay", times=1, delay=0.3)  # hold the first so the other tab overlaps
    tabs = [app.test_client() for _ in range(2)]
    pages = [open_pay_page(tab, link.path) for tab in tabs]
    barrier = threading.Barrier(2)
    texts = ["", ""]

    def go(i):
        barrier.wait()
        texts[i] = pay(tabs[i], link.path, "full", page=pages[i]).text

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("Payment received" in t for t in texts) == 1
    assert amounts(standin) == [5000, 15000] and len(standin.charges) == 2
    assert paid(app, link.id) == ("paid", 20000, None)


def test_an_unknown_part_payment_settled_by_a_webhook_and_run_jobs_counts_once(
    app, client, runner, link_factory, standin
):
    link = part_link(link_factory)
    standin.inject("drop_after_charge")
    response = pay(client, link.path, "other", "50")
    assert "We're confirming your payment" in response.text
    status, paid_cents, claim = paid(app, link.id)
    assert (status, paid_cents) == ("open", 0) and claim is not None
    assert deliver(client, standin, "payment.created", standin.charges[0]).json["status"] == (
        "completed"
    )
    run_jobs(app, runner)
    # Square's own webhook for the same payment, again after run-jobs: still counted once.
    deliver(client, standin, "payment.updated", standin.charges[0])
    assert paid(app, link.id) == ("open", 5000, None)
    assert len(standin.charges) == 1 and set(amounts(standin)) == {5000}
    html = client.get(link.path).text
    assert "You have paid $50.00 of $200.00. $150.00 is left to pay." in html


def test_a_part_payment_after_the_link_was_paid_elsewhere_never_reaches_square(
    app, client, link_factory, standin
):
    link = part_link(link_factory)
    phone = app.test_client()
    stale = open_pay_page(phone, link.path)
    pay(client, link.path, "full")
    response = pay(phone, link.path, "other", "50", page=stale)
    assert "Payment received" not in response.text
    assert "already been paid" in response.text or "already paid" in response.text
    assert amounts(standin) == [20000]
    assert paid(app, link.id) == ("paid", 20000, None)
    with app.app_context():
        assert (
            not get_session()
            .scalars(select(AuditEvent).where(AuditEvent.action == "payment.paid_twice"))
            .all()
        )
