"""Receipts and refund notices (issue 9): sent once, after the money's transaction, through the
outbox here (tests/integration/test_receipts_smtp.py has a real SMTP server); a failed send never
touches the payment."""

from __future__ import annotations

import dataclasses
import email
import re
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import time_machine
from sqlalchemy import select

from payapp import notify, payments, refunds
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.gateways import GatewayUnknown, RefundResult
from payapp.gateways.demo import DemoGateway
from payapp.models import Message, Payment, PaymentLink

from .conftest import audit_actions, open_pay_page, staff_post
from .conftest import submit_card as post_card
from .support.servers import free_port


def submit_card(client, path, **kwargs):
    """Pay like a browser through a WSGI server, which closes each response once it is sent:
    the receipt goes out then (views/pay.py), after the patient has the answer."""
    response = post_card(client, path, **kwargs)
    response.close()
    return response


def outbox(tmp_path: Path, pattern: str) -> list[Path]:
    return sorted((tmp_path / "outbox").glob(pattern))


def receipts(tmp_path: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in outbox(tmp_path, "*-receipt-email.eml")
    ]


def body_text(message) -> str:
    return " ".join(message.get_body(("plain",)).get_content().split())


def messages(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(m.channel, m.status) for m in get_session().scalars(select(Message))]


def test_paying_sends_one_receipt_with_clinic_amount_date_card_number_and_phone(
    app, client, link_factory, tmp_path
):
    link = link_factory(description="crown on tooth 14")
    response = submit_card(client, link.path, nonce="cnon:card-nonce-ok--MASTERCARD--5100")
    assert "Payment received" in response.text

    [receipt] = receipts(tmp_path)
    assert receipt["To"] == "jane@example.com"
    assert receipt["Subject"] == "Bright Smile Dental: receipt for your payment of $125.00"
    with app.app_context():
        payment = get_session().scalar(select(Payment))
        number = notify.receipt_number(payment)
        today = Clinic.from_config(app.config).local_date(payment.completed_at)
    text = body_text(receipt)
    for expected in (
        "Bright Smile Dental",
        "$125.00",
        f"Date: {today}",
        "Mastercard ending in 5100",
        f"Receipt number: {number}",
        "(212) 555-0100",
    ):
        assert expected in text, f"{expected!r} missing: {text}"
    assert number and "crown" not in bytes(receipt).decode().lower()
    assert "receipt.sent" in audit_actions(app)
    assert not outbox(tmp_path, "*-receipt-sms.txt"), "the link was never texted"


def test_a_double_submit_of_one_attempt_sends_one_receipt(app, client, link_factory, tmp_path):
    link = link_factory()
    page = open_pay_page(client, link.path)
    submit_card(client, link.path, page=page)
    again = submit_card(client, link.path, page=page)
    assert "Payment received" in again.text
    assert len(receipts(tmp_path)) == 1
    assert audit_actions(app).count("receipt.sent") == 1


def test_a_texted_link_also_gets_a_short_receipt_text(app, client, staff, link_factory, tmp_path):
    link = link_factory(phone="(415) 555-2671")
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    submit_card(client, link.path)

    [sms] = outbox(tmp_path, "*-receipt-sms.txt")
    header, _, body = sms.read_text().partition("\n\n")
    assert header == "To: +14155552671"
    assert "Bright Smile Dental" in body and "$125.00" in body and "(212) 555-0100" in body
    assert "Visa ending in 1111" in body
    assert len(body.strip()) <= 160, body
    assert len(receipts(tmp_path)) == 1


def test_a_failed_receipt_leaves_the_payment_paid_and_records_why(app, client, link_factory):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"
    link = link_factory()
    response = submit_card(client, link.path)

    assert "Payment received" in response.text
    with app.app_context():
        stored = get_session().get(PaymentLink, link.id)
        assert stored.status == "paid"
        [message] = get_session().scalars(select(Message)).all()
        assert (message.channel, message.status) == ("email", "failed")
        assert "SMTP delivery to 127.0.0.1" in message.error
    assert "receipt.failed" in audit_actions(app)
    assert "receipt.sent" not in audit_actions(app)


def test_a_receipt_the_template_cannot_make_is_recorded_and_the_payment_stays_paid(
    app, client, link_factory, monkeypatch
):
    def broken(*_args, **_kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(notify, "compose_html_email", broken)
    link = link_factory()
    assert "Payment received" in submit_card(client, link.path).text
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).status == "paid"
    assert messages(app) == [("email", "failed")]


class DroppedAfterCharge(DemoGateway):
    """Charges, then the answer is lost once (a dropped connection)."""

    dropped = False

    def create_payment(self, request):
        result = super().create_payment(request)
        if not self.dropped:
            self.dropped = True
            raise GatewayUnknown("connection dropped")
        return result


def test_a_payment_settled_by_reconciliation_gets_one_receipt_from_run_jobs(
    app, client, link_factory, tmp_path, runner
):
    app.extensions["payapp.gateway"] = gateway = DroppedAfterCharge()
    link = link_factory()
    submit_card(client, link.path)
    assert receipts(tmp_path) == [], "no receipt while the outcome is unknown"

    later = datetime.now(UTC) + timedelta(minutes=5)
    with time_machine.travel(later, tick=False):
        with app.app_context():
            first = runner.invoke(args=["run-jobs"])
        with app.app_context():
            second = runner.invoke(args=["run-jobs"])
    assert "Receipts and refund notices: 1." in first.output, first.output
    assert "Receipts and refund notices: 0." in second.output
    assert len(receipts(tmp_path)) == 1 and len(gateway.charges) == 1


def test_sending_a_receipt_twice_for_one_payment_sends_it_once(app, client, link_factory, tmp_path):
    link = link_factory()
    submit_card(client, link.path)
    with app.app_context():
        session = get_session()
        payment = session.scalar(select(Payment))
        again = notify.send_receipt(
            session,
            app.jinja_env,
            notify.Transports.from_config(app.config),
            payment,
            Clinic.from_config(app.config),
        )
    assert again == []
    assert len(receipts(tmp_path)) == 1


def test_a_refund_sends_a_notice_with_the_amount_what_remains_and_when(
    app, client, admin, link_factory, tmp_path
):
    link = link_factory(description="implant consult")
    submit_card(client, link.path)
    with app.app_context():
        payment_id = get_session().scalar(select(Payment.id))
    response = staff_post(
        admin,
        f"/links/{link.id}/refund",
        {"payment_id": payment_id, "amount": "25.00", "reason": "overbilled", "refund_key": "k1"},
        page_url=f"/links/{link.id}",
    )
    assert response.status_code == 303

    [notice_file] = outbox(tmp_path, "*-refund-email.eml")
    notice = email.message_from_bytes(notice_file.read_bytes(), policy=policy.default)
    assert notice["Subject"] == "Bright Smile Dental: refund of $25.00"
    text = body_text(notice)
    assert "refunded $25.00 to your Visa ending in 1111" in text
    assert "$100.00 remains paid" in text
    assert "5 to 10 business days" in text
    assert "implant" not in text and "overbilled" not in text
    assert audit_actions(app).count("refund_notice.sent") == 1


def test_a_payment_marks_its_receipt_due_only_once_committed(app, link_factory):
    link = link_factory()
    with app.app_context():
        session = get_session()
        stored = session.get(PaymentLink, link.id)
        payments.charge_link(
            session, DemoGateway(), stored, attempt_key="k" * 20, source_id="cnon:card-nonce-ok"
        )
        assert session.info[payments.RECEIPTS_DUE] == [session.scalar(select(Payment.id))]
        assert not session.new and not session.dirty, "due before the payment was committed"


class PendingRefunds(DemoGateway):
    """Square's usual answer: the refund is PENDING, and completes later (a webhook says so)."""

    def refund(self, request):
        return dataclasses.replace(super().refund(request), status="PENDING")


def send_due(app, session):
    return notify.send_due_notices_for(app, session)


def test_a_refund_pending_at_square_is_announced_once_when_it_completes(
    app, client, link_factory, tmp_path
):
    app.extensions["payapp.gateway"] = gateway = PendingRefunds()
    link = link_factory()
    submit_card(client, link.path)
    with app.app_context():
        session = get_session()
        payment = session.scalar(select(Payment))
        pending = refunds.refund_payment(
            session, gateway, payment, amount_cents=2500, reason="x", staff_id=1, request_key="r1"
        )
        assert pending.status == "pending" and send_due(app, session) == 0
        done = RefundResult(
            pending.gateway_refund_id,
            payment.gateway_payment_id,
            "COMPLETED",
            2500,
            updated_at="2099-01-01T00:00:00Z",
        )
        assert refunds.apply_gateway_refund(session, done) == "updated"
        assert send_due(app, session) == 1
        again = dataclasses.replace(done, updated_at="2099-01-02T00:00:00Z")
        refunds.apply_gateway_refund(session, again)  # Square repeats itself
        assert send_due(app, session) == 0
    assert len(outbox(tmp_path, "*-refund-email.eml")) == 1
    assert audit_actions(app).count("refund_notice.sent") == 1


def test_a_payment_a_square_webhook_confirms_gets_one_receipt(app, client, link_factory, tmp_path):
    app.extensions["payapp.gateway"] = DroppedAfterCharge()
    link = link_factory()
    submit_card(client, link.path)  # the answer was lost: outcome unknown, no receipt
    gateway = app.extensions["payapp.gateway"]
    with app.app_context():
        session = get_session()
        attempt = session.scalar(select(Payment))
        result = gateway.create_payment(payments.charge_request(attempt))  # what Square holds
        assert payments.apply_gateway_payment(session, result) == "completed"
        assert payments.apply_gateway_payment(session, result) != "completed"
        assert send_due(app, session) == 1
        assert send_due(app, session) == 0
    assert len(receipts(tmp_path)) == 1


def test_the_receipt_waits_until_the_patient_has_the_answer(app, client, link_factory, tmp_path):
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # a mail server that is down
    link = link_factory()
    response = post_card(client, link.path)
    assert "Payment received" in response.text
    assert messages(app) == [], "the answer waited for the mail server"
    response.close()  # the server finished sending the answer
    assert messages(app) == [("email", "failed")]


# --- retries by run-jobs --------------------------------------------------------------------------


def mail_down(monkeypatch):
    def refuse(self, message, name):
        raise notify.DeliveryError("SMTP delivery to mail.example:587 failed: refused")

    monkeypatch.setattr(notify.OutboxMail, "send", refuse)


def retry(app, when):
    with app.app_context():
        return notify.retry_failed_notices(
            get_session(),
            app.jinja_env,
            notify.Transports.from_config(app.config),
            Clinic.from_config(app.config),
            now=when,
        )


def the_message(app, kind="receipt") -> Message:
    with app.app_context():
        [message] = get_session().scalars(select(Message).where(Message.kind == kind)).all()
        get_session().expunge(message)
        return message


def test_a_failed_receipt_is_tried_after_5_min_30_min_and_2_h_then_given_up(
    app, client, staff, link_factory, monkeypatch, tmp_path
):
    mail_down(monkeypatch)
    link = link_factory()
    submit_card(client, link.path)
    first = the_message(app)
    assert first.retry_at == first.created_at + timedelta(minutes=5)
    page = staff.get(f"/links/{link.id}").text
    assert "(receipt) to jane@example.com" in page
    # A try still to come reads in the future tense, at the clinic's time.
    assert re.search(
        r'<span class="retry">Will be tried again automatically from '
        r"<time[^>]*>[^<]+ E[SD]T</time>",
        page,
    )

    t = first.created_at
    assert retry(app, t + timedelta(minutes=4))["failed"] == 0, "not before its time"
    for tried, next_wait in ((2, timedelta(minutes=30)), (3, timedelta(hours=2))):
        t = the_message(app).retry_at
        assert retry(app, t)["failed"] == 1
        again = the_message(app)
        assert (again.attempts, again.retry_at) == (tried, t + next_wait)
    assert retry(app, the_message(app).retry_at)["failed"] == 1
    last = the_message(app)
    assert (last.status, last.attempts, last.retry_at) == ("failed", 4, None)
    assert retry(app, t + timedelta(days=2)) == {"sent": 0, "failed": 0, "skipped": 0}
    page = staff.get(f"/links/{link.id}").text
    assert "after 4 tries" in page and "tried again automatically" not in page
    assert audit_actions(app).count("receipt.failed") == 4
    assert receipts(tmp_path) == []


def test_a_retried_receipt_is_sent_once_and_never_again(
    app, client, staff, link_factory, monkeypatch, tmp_path
):
    mail_down(monkeypatch)
    link = link_factory()
    submit_card(client, link.path)
    monkeypatch.undo()  # the mail server is back
    due = the_message(app).retry_at
    assert retry(app, due) == {"sent": 1, "failed": 0, "skipped": 0}
    assert retry(app, due + timedelta(hours=3)) == {"sent": 0, "failed": 0, "skipped": 0}
    assert len(receipts(tmp_path)) == 1
    sent = the_message(app)
    assert (sent.status, sent.attempts, sent.error, sent.retry_at) == ("sent", 2, None, None)
    page = staff.get(f"/links/{link.id}").text
    assert "Receipt sent to the patient" in page and "after 2 tries" in page
    assert "(try 2 of 4)" in page


def test_a_receipt_the_template_cannot_make_is_not_retried(app, client, link_factory, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(notify, "compose_html_email", broken)
    submit_card(client, link_factory().path)
    assert the_message(app).retry_at is None


def test_a_failed_refund_notice_is_retried_too(app, client, admin, link_factory, monkeypatch):
    link = link_factory()
    submit_card(client, link.path)
    mail_down(monkeypatch)
    with app.app_context():
        payment_id = get_session().scalar(select(Payment.id))
    staff_post(
        admin,
        f"/links/{link.id}/refund",
        {"payment_id": payment_id, "amount": "25.00", "reason": "overbilled", "refund_key": "k1"},
        page_url=f"/links/{link.id}",
    )
    failed = the_message(app, "refund")
    assert failed.status == "failed" and failed.retry_at is not None
    monkeypatch.undo()
    assert retry(app, failed.retry_at)["sent"] == 1
    assert the_message(app, "refund").status == "sent"
    assert audit_actions(app).count("refund_notice.sent") == 1
