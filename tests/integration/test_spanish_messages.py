"""A Spanish link's messages through a real SMTP server (aiosmtpd, STARTTLS and AUTH), each sent
outside any request as payapp sends them: the link email, run-jobs' reminder and the receipt
after the payment's commit arrive in Spanish with Spanish dates in the clinic's time zone
(issue 11). The text through the Twilio stand-in is in tests/integration/test_twilio.py."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest
import time_machine

from payapp import cli, links, notify, payments
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link

from .test_smtp import squash, visible_text

pytestmark = pytest.mark.integration

SENT = datetime(2027, 3, 1, 15, 0, tzinfo=UTC)  # Monday 10:00 EST; expires 14 days later
REMINDED = datetime(2027, 3, 4, 15, 0, tzinfo=UTC)  # reminder 1 is due (tests/test_reminders.py)
PAID = datetime(2027, 3, 5, 3, 30, tzinfo=UTC)  # still Thursday 4 March in New York


def received(server) -> list[tuple[email.message.EmailMessage, str, str]]:
    """(message, plain text, what the HTML part shows) for each email the server took."""
    out = []
    for envelope in server.received:
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        parts = {p.get_content_type(): p.get_content() for p in message.iter_parts()}
        out.append((message, squash(parts["text/plain"]), parts["text/html"]))
    return out


def test_a_spanish_links_email_reminder_and_receipt_arrive_in_spanish(make_payapp, starttls_smtp):
    application = make_payapp(
        SMTP_URL=starttls_smtp.url(),
        CLINIC_NAME="Clínica Dental Sonrisa",
        CLINIC_PHONE="(415) 555-0100",
        CLINIC_TIMEZONE="America/New_York",
        MAIL_FROM="pagos@sonrisa.example.com",
        PUBLIC_BASE_URL="https://pagos.sonrisa.example.com",
    )
    cfg = application.config
    with application.app_context(), time_machine.travel(SENT, tick=False):
        session = get_session()
        link = create_link(
            session,
            LinkDraft(
                patient_name="María López",
                email="maria@example.com",
                amount="80.25",
                reference="ST-77",
                description="endodoncia",
                language="es",
                send_now=False,
            ),
            LinkRules.from_config(cfg),
        )
        notify.send_link(
            session,
            application.jinja_env,
            notify.Transports.from_config(cfg),
            link,
            links.link_url(cfg["PUBLIC_BASE_URL"], link, cfg["SECRET_KEY"]),
            Clinic.from_config(cfg),
        )
    with application.app_context(), time_machine.travel(REMINDED, tick=False):
        assert cli.send_reminders(get_session()) == "Reminders: 1 sent, 0 could not be delivered."
    with application.app_context(), time_machine.travel(PAID, tick=False):
        session = get_session()
        payments.charge_link(
            session,
            application.extensions["payapp.gateway"],
            session.get(type(link), link.id),
            attempt_key="a" * 24,
            source_id="cnon:card-nonce-ok--MASTERCARD--4444",
        )
        assert notify.send_due_notices_for(application, session) == 1

    (
        (request, request_text, request_html),
        (reminder, reminder_text, reminder_html),
        (
            receipt,
            receipt_text,
            receipt_html,
        ),
    ) = received(starttls_smtp)

    assert request["Subject"] == (
        "Clínica Dental Sonrisa: solicitud de pago del estado de cuenta ST-77"
    )
    for text in (request_text, visible_text(request_html)):
        assert "Hola, María:" in text
        assert "le envió un enlace seguro para pagar $80.25 del estado de cuenta ST-77" in text
        assert "El enlace funciona hasta el 15 de marzo de 2027." in text
        assert "https://pagos.sonrisa.example.com/pay" in text
    assert '<html lang="es">' in request_html and "Pagar $80.25</a>" in request_html

    assert reminder["Subject"] == (
        "Clínica Dental Sonrisa: recordatorio de su solicitud de pago del estado de cuenta ST-77"
    )
    for text in (reminder_text, visible_text(reminder_html)):
        assert "Clínica Dental Sonrisa le recuerda que su pago de $80.25" in text
        assert "El enlace funciona hasta el 15 de marzo de 2027." in text
        assert "Si ya pagó, por favor ignore este mensaje." in text
    assert "https://pagos.sonrisa.example.com/reminders/stop/" in reminder_text

    assert receipt["Subject"] == "Clínica Dental Sonrisa: recibo de su pago de $80.25"
    for text in (receipt_text, visible_text(receipt_html)):
        assert "Gracias. Clínica Dental Sonrisa recibió su pago." in text
        assert "4 de marzo de 2027" in text  # the clinic's date, not UTC's 5 March
        assert "Mastercard terminada en 4444" in text
    for _message, text, html in received(starttls_smtp):
        for english in ("Hello", "Pay online", "The link works", "Receipt number", "March"):
            assert english not in text and english not in html
        assert "endodoncia" not in text and "endodoncia" not in html
