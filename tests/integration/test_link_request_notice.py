""" "Send me a new link" through a real SMTP server (aiosmtpd, TLS): by default the front desk
gets a notice without the patient's name, amount or contact; in automatic mode the new link goes
to the address on file and nowhere else."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy

import pytest
import time_machine

from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link, sign_token

from ..conftest import csrf_from

pytestmark = pytest.mark.integration

FRONT_DESK = "desk@oneil-dental.example.com"


def press_new_link(application) -> int:
    """An expired link (made 60 days ago); its patient presses "Send me a new link"."""
    with time_machine.travel(datetime.now(UTC) - timedelta(days=60)), application.app_context():
        link = create_link(
            get_session(),
            LinkDraft(
                patient_name="Jane Doe",
                email="jane@example.com",
                amount="80.00",
                reference="INV-3101",
            ),
            LinkRules(),
        )
        path = f"/pay/{sign_token(link, application.config['SECRET_KEY'])}"
    client = application.test_client()
    page = client.get(path)
    assert page.status_code == 410
    return client.post(
        path + "/new-link",
        data={"csrf_token": csrf_from(page.text), "email": "someone@evil.example"},
    ).status_code


def test_a_request_reaches_the_front_desk_over_smtp_without_the_patients_details(
    make_payapp, starttls_smtp
):
    application = make_payapp(
        SMTP_URL=starttls_smtp.url(),
        MAIL_FROM="billing@oneil-dental.example.com",
        FRONT_DESK_EMAIL=FRONT_DESK,
        PUBLIC_BASE_URL="https://pay.oneil-dental.example.com",
    )
    assert press_new_link(application) == 303
    [received] = starttls_smtp.received
    assert received.rcpt_tos == [FRONT_DESK]
    message = email.message_from_bytes(received.content, policy=policy.default)
    assert "asked for a new payment link" in message["Subject"]
    body = message.get_content()
    assert "INV-3101" in body
    assert "https://pay.oneil-dental.example.com/dashboard#link-requests" in body
    raw = received.content.decode("utf-8", "replace")
    for private in ("Jane", "jane@", "80.00", "evil"):
        assert private not in raw, private


def test_automatic_mode_emails_the_new_link_to_the_address_on_file_only(make_payapp, starttls_smtp):
    application = make_payapp(
        SMTP_URL=starttls_smtp.url(),
        MAIL_FROM="billing@oneil-dental.example.com",
        FRONT_DESK_EMAIL=FRONT_DESK,
        PUBLIC_BASE_URL="https://pay.oneil-dental.example.com",
        NEW_LINK_REQUESTS="reissue",
    )
    assert press_new_link(application) == 303
    [received] = starttls_smtp.received
    assert received.rcpt_tos == ["jane@example.com"]
    assert "https://pay.oneil-dental.example.com/pay/" in received.content.decode("utf-8")
