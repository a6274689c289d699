"""Refunds with the demo gateway: full, partial, over-refund, double click, permissions."""

import re
import threading

import pytest
from sqlalchemy import func, select

from payapp import refunds
from payapp.db import get_session
from payapp.models import Payment, PaymentLink, Refund, StaffUser

from .conftest import csrf_from, submit_card


@pytest.fixture
def paid(app, client, link_factory):
    link = link_factory()
    assert "Payment received" in submit_card(client, link.path).text
    with app.app_context():
        payment_id = get_session().scalar(select(Payment.id))
    return link, payment_id


def refund_form(client, link_id):
    html = client.get(f"/links/{link_id}").text
    return {
        "csrf_token": csrf_from(html),
        "payment_id": re.search(r'name="payment_id" value="(\d+)"', html)[1],
        "refund_key": re.search(r'name="refund_key" value="([^"]+)"', html)[1],
    }


def post_refund(client, link_id, amount, reason="overpaid", form=None):
    data = {**(form or refund_form(client, link_id)), "amount": amount, "reason": reason}
    return client.post(f"/links/{link_id}/refund", data=data)


def state(app, link_id):
    with app.app_context():
        s = get_session()
        return (
            s.get(PaymentLink, link_id).status,
            s.scalar(select(Payment.refunded_cents)),
            s.scalar(select(func.count()).select_from(Refund)),
        )


def test_an_admin_refunds_part_then_the_rest(app, admin, paid):
    link, _ = paid
    response = post_refund(admin, link.id, "25.00")
    assert response.status_code == 303
    page = admin.get(f"/links/{link.id}").text
    assert "Refund of $25.00 made." in page and "Partly refunded" in page
    assert state(app, link.id) == ("partially_refunded", 2500, 1)
    assert "Up to $100.00" in page
    post_refund(admin, link.id, "100.00")
    assert state(app, link.id) == ("refunded", 12500, 2)
    assert "Amount to refund" not in admin.get(f"/links/{link.id}").text  # nothing left


def test_an_over_refund_is_refused_with_a_clear_message(app, admin, paid):
    link, _ = paid
    post_refund(admin, link.id, "100.00")
    post_refund(admin, link.id, "30.00")
    page = admin.get(f"/links/{link.id}").text
    assert "Refund not made: You can refund at most $25.00 of this payment" in page
    assert state(app, link.id) == ("partially_refunded", 10000, 1)


def test_a_refund_above_what_is_left_names_the_same_limit_as_the_hint(app, admin, paid):
    """$125 paid, $25 refunded: asking for 500.00 names $100.00, as the hint does, not $125.00."""
    link, _ = paid
    post_refund(admin, link.id, "25.00")
    post_refund(admin, link.id, "500.00")
    page = admin.get(f"/links/{link.id}").text
    assert "Refund not made: You can refund at most $100.00 of this payment" in page
    assert "Up to $100.00." in page
    assert "$125.00." not in page
    assert state(app, link.id) == ("partially_refunded", 2500, 1)


@pytest.mark.parametrize(
    ("amount", "message"),
    [("0", "at least $0.01"), ("abc", "for example"), ("10.001", "two decimal places")],
)
def test_bad_refund_amounts_change_nothing(app, admin, paid, amount, message):
    link, _ = paid
    post_refund(admin, link.id, amount)
    assert message in admin.get(f"/links/{link.id}").text
    assert state(app, link.id) == ("paid", 0, 0)


def test_a_reason_is_required(app, admin, paid):
    link, _ = paid
    post_refund(admin, link.id, "10.00", reason="  ")
    assert "Give a short reason" in admin.get(f"/links/{link.id}").text
    assert state(app, link.id) == ("paid", 0, 0)


def test_a_double_click_makes_one_refund(app, admin, paid, gateway):
    link, _ = paid
    form = refund_form(admin, link.id)
    post_refund(admin, link.id, "10.00", form=form)
    post_refund(admin, link.id, "10.00", form=form)
    assert state(app, link.id) == ("partially_refunded", 1000, 1)
    assert len(gateway._refunds) == 1


def test_concurrent_refunds_never_exceed_the_charge(app, paid, gateway):
    """Ten refunds of $20 at once on a $125 payment: at most six can succeed."""
    _, payment_id = paid
    barrier = threading.Barrier(10)
    results = []

    def go(i):
        with app.app_context():
            s = get_session()
            payment = s.get(Payment, payment_id)
            barrier.wait()
            try:
                refunds.refund_payment(
                    s,
                    gateway,
                    payment,
                    amount_cents=2000,
                    reason="split",
                    staff_id=1,
                    request_key=f"key-{i}",
                )
                results.append("ok")
            except refunds.RefundError:
                results.append("refused")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 6
    with app.app_context():
        assert get_session().scalar(select(Payment.refunded_cents)) == 12000
    assert sum(r.amount_cents for r in gateway._refunds.values()) == 12000


def test_staff_without_permission_cannot_refund(app, staff, paid):
    link, payment_id = paid
    page = staff.get(f"/links/{link.id}").text
    assert "Amount to refund" not in page
    response = staff.post(
        f"/links/{link.id}/refund",
        data={
            "csrf_token": csrf_from(page),
            "payment_id": payment_id,
            "amount": "1.00",
            "reason": "x",
            "refund_key": "k" * 20,
        },
    )
    assert response.status_code == 403
    assert state(app, link.id) == ("paid", 0, 0)


def test_staff_given_the_permission_can_refund(app, staff, paid):
    link, _ = paid
    with app.app_context():
        user = get_session().scalar(select(StaffUser).where(StaffUser.role == "staff"))
        user.can_refund = True
        get_session().commit()
    post_refund(staff, link.id, "5.00")
    assert state(app, link.id) == ("partially_refunded", 500, 1)


def test_refunds_are_in_the_timeline_and_on_the_receipt(app, admin, client, paid):
    link, _ = paid
    post_refund(admin, link.id, "25.00", reason="insurance paid part")
    page = admin.get(f"/links/{link.id}").text
    assert "Refund requested" in page and "Refund made" in page and "insurance paid part" in page
    receipt = client.get(link.path).text
    assert "Refunded" in receipt and "$25.00" in receipt


def test_a_refund_needs_a_csrf_token(app, admin, paid):
    link, payment_id = paid
    response = admin.post(
        f"/links/{link.id}/refund", data={"payment_id": payment_id, "amount": "1.00", "reason": "x"}
    )
    assert response.status_code == 400
    assert state(app, link.id) == ("paid", 0, 0)


def test_a_payment_of_another_link_cannot_be_refunded_through_this_one(
    app, admin, paid, link_factory
):
    link, payment_id = paid
    other = link_factory()
    form = refund_form(admin, link.id)
    response = admin.post(
        f"/links/{other.id}/refund", data={**form, "amount": "1.00", "reason": "x"}
    )
    assert response.status_code == 404
    assert state(app, link.id) == ("paid", 0, 0)


def test_allow_refunds_command_grants_and_revokes(app, runner):
    from .conftest import STAFF_EMAIL

    with app.app_context():
        result = runner.invoke(args=["allow-refunds", STAFF_EMAIL])
    assert result.exit_code == 0 and "can now refund" in result.output
    with app.app_context():
        assert (
            get_session().scalar(select(StaffUser.can_refund).where(StaffUser.email == STAFF_EMAIL))
            is True
        )
    with app.app_context():
        assert runner.invoke(args=["allow-refunds", STAFF_EMAIL, "--revoke"]).exit_code == 0
        assert (
            get_session().scalar(select(StaffUser.can_refund).where(StaffUser.email == STAFF_EMAIL))
            is False
        )
    with app.app_context():
        assert runner.invoke(args=["allow-refunds", "nobody@example.com"]).exit_code != 0
