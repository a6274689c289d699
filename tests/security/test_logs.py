"""Logs keep no secrets (requirement L1). With the root logger at DEBUG (and SQLAlchemy's
engine logger turned up, as someone debugging would: every statement with its parameters and
result rows), a day's flows in Square mode leave no link token, card nonce, access token, secret
key, webhook key, SMTP password, full email address or phone number in any log record.

The flows: a staff member creates and sends a link (the email fails: SMTP is down), the patient
opens it, is declined, pays; another payment meets a revoked Square token (a gateway error); a
webhook arrives with a bad signature, another with a good one; an unexpected error (a 500) on a
/pay/<token> URL.
"""

from __future__ import annotations

import logging
import re

import pytest
from itsdangerous import URLSafeTimedSerializer

from payapp.db import get_session
from payapp.gateways.factory import make_gateway
from payapp.links import TOKEN_SALT, link_url
from payapp.models import PaymentLink, StaffUser

from ..conftest import (
    ADMIN_EMAIL,
    ADMIN_TOTP_SECRET,
    STAFF_EMAIL,
    TEST_SECRET,
    audit_actions,
    log_in,
    staff_post,
    submit_card,
)
from ..support.servers import SQUARE_WEBHOOK_URL, running_standin, square_mode

pytestmark = pytest.mark.integration

TOKEN = "EAAAfake-logs-token"
REVOKED = "EAAAfake-revoked"
LOCATION = "LLOGS1"
WEBHOOK_KEY = "webhook-key-that-must-not-be-logged"
WEBHOOK_URL = SQUARE_WEBHOOK_URL
SMTP_PASSWORD = "smtp-pass-that-must-not-be-logged"  # noqa: S105
PATIENT_EMAIL = "jane.patient@example.com"
PATIENT_PHONE = "(212) 555-0123"


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def standin():
    with running_standin(TOKEN, LOCATION) as server:
        yield server


@pytest.fixture
def config_overrides(standin):
    return square_mode(
        standin,
        webhook_key=WEBHOOK_KEY,
        # Nothing listens on port 9: every email fails, and the error is logged or recorded.
        SMTP_URL=f"smtp://clinic:{SMTP_PASSWORD}@127.0.0.1:9",
        SMTP_TIMEOUT=1,
        PROPAGATE_EXCEPTIONS=False,
    )


@pytest.fixture
def captured():
    handler = Capture()
    root, sql = logging.getLogger(), logging.getLogger("sqlalchemy.engine")
    levels = root.level, sql.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # SQLAlchemy keeps its own loggers at WARNING unless asked: ask, as someone debugging would.
    sql.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        sql.setLevel(levels[1])


def test_a_days_flows_leave_no_secret_in_any_log_record(app, client, staff, standin, captured):
    response = staff_post(
        staff,
        "/links/new",
        {
            "patient_name": "Jane Patient",
            "email": PATIENT_EMAIL,
            "phone": PATIENT_PHONE,
            "amount": "125.00",
            "reference": "INV-77",
            "send_now": "y",
        },
    )
    assert response.status_code == 303
    link_id = int(response.headers["Location"].rsplit("/", 1)[1])
    with app.app_context():
        link = get_session().get(PaymentLink, link_id)
        url = link_url("http://localhost", link, TEST_SECRET)
    token = url.rsplit("/", 1)[1]
    path = f"/pay/{token}"
    assert "email.failed" in audit_actions(app)

    assert "declined" in submit_card(client, path, nonce="cnon:card-nonce-declined").text
    assert "Payment received" in submit_card(client, path).text
    charge = standin.charges[0]

    # Square stops accepting the token: a gateway error on another link.
    second = staff_post(
        staff,
        "/links/new",
        {"patient_name": "Omar Other", "email": "omar.other@example.org", "amount": "50.00"},
    )
    with app.app_context():
        other = get_session().get(PaymentLink, int(second.headers["Location"].rsplit("/", 1)[1]))
        other_token = link_url("http://localhost", other, TEST_SECRET).rsplit("/", 1)[1]
    app.config["SQUARE_ACCESS_TOKEN"] = REVOKED
    app.extensions["payapp.gateway"] = make_gateway(app.config)
    failed = submit_card(client, f"/pay/{other_token}")
    assert "not available right now" in failed.text
    assert "gateway.error" in audit_actions(app)

    body, signature = standin.webhook(
        "payment.updated", charge, signature_key=WEBHOOK_KEY, notification_url=WEBHOOK_URL
    )
    forged = client.post(
        "/webhooks/square",
        data=body,
        content_type="application/json",
        headers={"x-square-hmacsha256-signature": signature[::-1]},
    )
    assert forged.status_code == 403
    good = client.post(
        "/webhooks/square",
        data=body,
        content_type="application/json",
        headers={"x-square-hmacsha256-signature": signature},
    )
    assert good.status_code in (200, 503)

    # An unexpected error on a URL carrying a token: Flask logs the path with the traceback.
    with app.app_context():
        public_id = get_session().get(PaymentLink, link_id).public_id
    crashing = URLSafeTimedSerializer(TEST_SECRET, salt=TOKEN_SALT).dumps([public_id, 1])
    crash = client.get(f"/pay/{crashing}")
    assert crash.status_code in (404, 500)

    text = "\n".join(captured)
    # The capture saw the flows: SQL with parameters, Square's HTTP calls, the app's warnings.
    assert "INSERT INTO payment" in text and "/v2/payments" in text
    assert "gateway error on payment" in text and "rejected a Square webhook" in text
    secrets = {
        "link token": token,
        "the other link's token": other_token,
        "token from a crashing URL": crashing,
        "Square access token": TOKEN,
        "revoked access token": REVOKED,
        "secret key": TEST_SECRET,
        "webhook signature key": WEBHOOK_KEY,
        "a webhook signature": signature,
        "SMTP password": SMTP_PASSWORD,
        "patient email": PATIENT_EMAIL,
        "other patient email": "omar.other@example.org",
        "staff email": "frontdesk@example.com",
        "E.164 phone": "+12125550123",
        "phone digits": "2125550123",
        "card nonce": "card-nonce-ok",
        "declined card nonce": "card-nonce-declined",
    }
    for name, secret in secrets.items():
        leaks = [line for line in captured if secret in line]
        assert not leaks, f"{name} in the logs: {leaks[0][:300]}"
    assert not re.search(r"\b(cnon|ccof|bnon):(?!\[card-token\])", text)


@pytest.mark.real_password_hash
def test_sql_logging_keeps_staff_credentials_out_of_the_logs(app, staff, captured):
    assert log_in(app.test_client(), email=ADMIN_EMAIL).status_code == 303
    assert staff.get("/account/two-step").status_code == 200  # starts enrolment: a new secret
    with app.app_context():
        new_secret = get_session().query(StaffUser).filter_by(email=STAFF_EMAIL).one().totp_secret
    assert new_secret and any("staff_user" in line for line in captured)
    for name, secret in {
        "an admin's TOTP secret": ADMIN_TOTP_SECRET,
        "a TOTP secret being enrolled": new_secret,
        "a password hash": "scrypt:",
    }.items():
        leaks = [line for line in captured if secret in line]
        assert not leaks, f"{name} in the logs: {leaks[0][:200]}"
