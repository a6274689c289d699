"""A patient's problem report emails the front desk through a real SMTP server (aiosmtpd, TLS):
the kind of problem and the staff page, never the patient's own words or number."""

from __future__ import annotations

import email
from email import policy

import pytest

from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link, sign_token

from ..conftest import csrf_from

pytestmark = pytest.mark.integration

FRONT_DESK = "desk@oneil-dental.example.com"
SECRET_WORDS = "my crown fell out, card 4111 1111 1111 1111"


def test_a_problem_report_reaches_the_front_desk_over_smtp_without_the_patients_words(
    make_payapp, starttls_smtp
):
    application = make_payapp(
        SMTP_URL=starttls_smtp.url(),
        MAIL_FROM="billing@oneil-dental.example.com",
        FRONT_DESK_EMAIL=FRONT_DESK,
        PUBLIC_BASE_URL="https://pay.oneil-dental.example.com",
    )
    with application.app_context():
        link = create_link(
            get_session(),
            LinkDraft(
                patient_name="Jane Doe",
                email="jane@example.com",
                amount="80.00",
                reference="INV-3001",
            ),
            LinkRules(),
        )
        path = f"/pay/{sign_token(link, application.config['SECRET_KEY'])}/problem"
    client = application.test_client()
    page = client.get(path)
    response = client.post(
        path,
        data={
            "csrf_token": csrf_from(page.text),
            "category": "unexpected_message",
            "text": SECRET_WORDS,
            "callback_phone": "(415) 555-0142",
        },
    )
    assert response.status_code == 303

    [received] = starttls_smtp.received
    assert received.rcpt_tos == [FRONT_DESK]
    message = email.message_from_bytes(received.content, policy=policy.default)
    assert "I didn't expect this message" in message["Subject"]
    body = message.get_content()
    assert "INV-3001" in body
    assert "https://pay.oneil-dental.example.com/problems?state=open#problem-1" in body
    raw = received.content.decode("utf-8", "replace")
    for private in ("crown", "4111", "555-0142", "+14155550142", "Jane"):
        assert private not in raw, private
