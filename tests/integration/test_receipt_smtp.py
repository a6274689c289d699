"""A receipt through a real SMTP server (aiosmtpd, STARTTLS and AUTH): the patient's copy has
both parts, the receipt's facts in the clinic's time zone, and nothing clinical."""

from __future__ import annotations

import email
import threading
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import time_machine
from aiosmtpd.controller import Controller
from sqlalchemy import select

from payapp import notify, payments
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link
from payapp.models import AuditEvent, Message

from ..support.servers import free_port
from .conftest import RecordingHandler, SmtpServer, clinic_only_authenticator
from .test_smtp import squash, visible_text

pytestmark = pytest.mark.integration

# 02:30 UTC on March 20 is still March 19 in New York: the receipt shows the clinic's date.
PAID = datetime(2030, 3, 20, 2, 30, tzinfo=UTC)


def test_a_receipt_reaches_a_real_smtp_server_with_the_clinics_date_and_no_description(
    make_payapp, starttls_smtp
):
    application = make_payapp(
        SMTP_URL=starttls_smtp.url(),
        CLINIC_NAME="O'Neil Family Dental",
        CLINIC_PHONE="(415) 555-0100",
        CLINIC_TIMEZONE="America/New_York",
        MAIL_FROM="billing@oneil-dental.example.com",
    )
    with application.app_context(), time_machine.travel(PAID, tick=False):
        session = get_session()
        link = create_link(
            session,
            LinkDraft(
                patient_name="Jane Doe",
                email="jane@example.com",
                amount="80.25",
                reference="INV-9",
                description="root canal follow-up",
                send_now=False,
            ),
            LinkRules(),
        )
        payments.charge_link(
            session,
            application.extensions["payapp.gateway"],
            link,
            attempt_key="a" * 24,
            source_id="cnon:card-nonce-ok--AMERICAN_EXPRESS--0005",
        )
        assert starttls_smtp.received == [], "sent inside the payment's transaction"
        assert notify.send_due_notices_for(application, session) == 1

    [received] = starttls_smtp.received
    assert received.rcpt_tos == ["jane@example.com"]
    message = email.message_from_bytes(received.content, policy=policy.default)
    assert message["Subject"] == "O'Neil Family Dental: receipt for your payment of $80.25"
    parts = {p.get_content_type(): p.get_content() for p in message.iter_parts()}
    for text in (squash(parts["text/plain"]), visible_text(parts["text/html"])):
        for expected in (
            "O'Neil Family Dental",
            "$80.25",
            "March 19, 2030",
            "American Express ending in 0005",
            "(415) 555-0100",
        ):
            assert expected in text, f"{expected!r} missing: {text}"
    assert b"root canal" not in received.content.lower()


# --- a mail server that is down when the patient pays ------------------------------------------


@pytest.fixture
def later_smtp(tls_cert):
    """A STARTTLS server on a reserved port that the test starts when it chooses."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=10,
        tls_context=tls_cert.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=clinic_only_authenticator,
    )
    server = SmtpServer("smtp+starttls", port, tls_cert.ca_cert, handler)
    server.controller = controller
    yield server
    if getattr(controller, "_thread", None) is not None:
        controller.stop()


def paid_while_the_server_was_down(application) -> int:
    """A link paid at PAID whose receipt could not be sent; returns the message id."""
    with application.app_context(), time_machine.travel(PAID, tick=False):
        session = get_session()
        link = create_link(
            session,
            LinkDraft(patient_name="Jane Doe", email="jane@example.com", amount="80.25"),
            LinkRules(),
        )
        payments.charge_link(
            session,
            application.extensions["payapp.gateway"],
            link,
            attempt_key="b" * 24,
            source_id="cnon:card-nonce-ok",
        )
        assert notify.send_due_notices_for(application, session) == 1
        [message] = session.scalars(select(Message).where(Message.kind == "receipt")).all()
        assert (message.status, message.attempts) == ("failed", 1)
        assert "SMTP delivery to 127.0.0.1" in message.error
        assert message.retry_at == PAID + timedelta(minutes=5)
        return message.id


def receipt_events(application) -> list[tuple[str, str]]:
    with application.app_context():
        stmt = (
            select(AuditEvent.action, AuditEvent.detail)
            .where(AuditEvent.action.startswith("receipt."))
            .order_by(AuditEvent.id)
        )
        return [tuple(row) for row in get_session().execute(stmt)]


def test_a_receipt_the_server_was_down_for_is_sent_once_by_run_jobs(make_payapp, later_smtp):
    application = make_payapp(SMTP_URL=later_smtp.url())
    message_id = paid_while_the_server_was_down(application)
    later_smtp.controller.start()
    runner = application.test_cli_runner()

    def run_jobs(at: datetime) -> str:
        with time_machine.travel(at, tick=False), application.app_context():
            result = runner.invoke(args=["run-jobs"])
        assert result.exit_code == 0, result.output
        return result.output

    assert "tried again: 0 sent, 0 failed" in run_jobs(PAID + timedelta(minutes=4))
    assert later_smtp.received == [], "not before its time"
    assert "tried again: 1 sent, 0 failed" in run_jobs(PAID + timedelta(minutes=5))
    assert "tried again: 0 sent, 0 failed" in run_jobs(PAID + timedelta(hours=3))

    [received] = later_smtp.received
    assert received.rcpt_tos == ["jane@example.com"]
    body = email.message_from_bytes(received.content, policy=policy.default)
    assert body["Subject"].endswith(": receipt for your payment of $80.25")
    with application.app_context():
        message = get_session().get(Message, message_id)
        assert (message.status, message.attempts, message.retry_at) == ("sent", 2, None)
    (failed, failed_detail), (sent, sent_detail) = receipt_events(application)
    assert (failed, sent) == ("receipt.failed", "receipt.sent")
    assert failed_detail.endswith("; run-jobs tries again")
    assert sent_detail.endswith("by email (try 2 of 4)")


def test_two_overlapping_run_jobs_send_a_failed_receipt_once(make_payapp, later_smtp, monkeypatch):
    """Both runs find the failed receipt due before either claims it (the barrier), each in its
    own session on the SQLite file; the conditional UPDATE lets exactly one send it."""
    application = make_payapp(SMTP_URL=later_smtp.url())
    paid_while_the_server_was_down(application)
    later_smtp.controller.start()
    both_found = threading.Barrier(2)
    original = notify.due_notices

    def due_then_wait(*args, **kwargs):
        found = original(*args, **kwargs)
        both_found.wait(timeout=30)
        return found

    monkeypatch.setattr(notify, "due_notices", due_then_wait)
    counts = []

    def retry() -> None:
        with application.app_context():
            session = get_session()
            counts.append(
                notify.retry_failed_notices(
                    session,
                    application.jinja_env,
                    notify.Transports.from_config(application.config),
                    Clinic.from_config(application.config),
                    now=PAID + timedelta(minutes=6),
                )
            )

    threads = [threading.Thread(target=retry) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted((c["sent"], c["skipped"]) for c in counts) == [(0, 1), (1, 0)], counts
    assert len(later_smtp.received) == 1
    assert [action for action, _ in receipt_events(application)] == [
        "receipt.failed",
        "receipt.sent",
    ]
