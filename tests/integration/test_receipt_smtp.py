"""A receipt through a real SMTP server (aiosmtpd, STARTTLS and AUTH): the patient's copy has
both parts, the receipt's facts in the clinic's time zone, and nothing clinical."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest
import time_machine

from payapp import notify, payments
from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link

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
