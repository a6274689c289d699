"""Forged Square webhooks (requirement M3): in Square mode against the Square stand-in, with the
signature scheme Square documents (HMAC-SHA256 over notification URL + raw body, base64).

Unsigned, wrongly keyed, signed for another URL, replayed onto a changed body, in the legacy
header, empty: 403, nothing stored, a `webhook.bad_signature` audit event for each. A valid
signature on a body that is not an event: 400. A huge body: 413. Nothing reaches webhook_event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from sqlalchemy import func, select

from payapp.db import get_session
from payapp.models import PaymentLink, WebhookEvent
from tests.support.square_standin import sign_webhook

from ..conftest import audit_actions, submit_card
from ..support.servers import SQUARE_WEBHOOK_URL, running_standin, square_mode

pytestmark = pytest.mark.integration

TOKEN = "EAAAfake-security"
LOCATION = "LSECURITY1"
WEBHOOK_KEY = "webhook-signature-key-for-the-attack-suite"
WEBHOOK_URL = SQUARE_WEBHOOK_URL
HEADER = "x-square-hmacsha256-signature"


@pytest.fixture
def standin():
    with running_standin(TOKEN, LOCATION) as server:
        yield server


@pytest.fixture
def config_overrides(standin):
    return square_mode(standin, webhook_key=WEBHOOK_KEY, PROPAGATE_EXCEPTIONS=False)


@pytest.fixture
def paid(app, client, link_factory, standin):
    """A link paid through Square, and a genuine signed payment.updated event for it."""
    link = link_factory()
    assert "Payment received" in submit_card(client, link.path).text
    payment = dict(standin.charges[0])
    body, signature = standin.webhook(
        "payment.updated", payment, signature_key=WEBHOOK_KEY, notification_url=WEBHOOK_URL
    )
    return link, body, signature


def post(client, body, headers):
    if isinstance(body, str):
        body = body.encode()
    return client.post(
        "/webhooks/square", data=body, content_type="application/json", headers=headers
    )


def stored_events(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(WebhookEvent))


def legacy_sha1(body: str) -> str:
    digest = hmac.new(WEBHOOK_KEY.encode(), (WEBHOOK_URL + body).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def test_forged_webhooks_are_refused_stored_nowhere_and_audited(app, client, paid):
    link, body, signature = paid
    changed = body.replace('"status":"COMPLETED"', '"status":"CANCELED"', 1)
    assert changed != body
    forgeries = {
        "unsigned": (body, {}),
        "an empty signature": (body, {HEADER: ""}),
        "signed with another key": (
            body,
            {HEADER: sign_webhook(body, signature_key="not-the-key", notification_url=WEBHOOK_URL)},
        ),
        "signed for another URL": (
            body,
            {
                HEADER: sign_webhook(
                    body, signature_key=WEBHOOK_KEY, notification_url="https://evil.example/hook"
                )
            },
        ),
        "signed for the URL with a slash": (
            body,
            {
                HEADER: sign_webhook(
                    body, signature_key=WEBHOOK_KEY, notification_url=WEBHOOK_URL + "/"
                )
            },
        ),
        "signed for plain http": (
            body,
            {
                HEADER: sign_webhook(
                    body,
                    signature_key=WEBHOOK_KEY,
                    notification_url=WEBHOOK_URL.replace("https:", "http:"),
                )
            },
        ),
        "signed over the body alone": (
            body,
            {HEADER: sign_webhook(body, signature_key=WEBHOOK_KEY, notification_url="")},
        ),
        "a real signature replayed onto a changed body": (changed, {HEADER: signature}),
        "a real signature, one byte appended to the body": (body + " ", {HEADER: signature}),
        "a real signature with whitespace around it": (body, {HEADER: f" {signature} "}),
        "a real signature in hex": (
            body,
            {HEADER: base64.b64decode(signature).hex()},
        ),
        "the legacy SHA-1 scheme": (body, {"x-square-signature": legacy_sha1(body)}),
        "a signature and no body": ("", {HEADER: signature}),
    }
    before = len(audit_actions(app))
    for name, (forged_body, headers) in forgeries.items():
        response = post(client, forged_body, headers)
        assert response.status_code == 403, (name, response.status_code)
    assert stored_events(app) == 0
    actions = audit_actions(app)[before:]
    assert actions == ["webhook.bad_signature"] * len(forgeries)
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).status == "paid"
    # The genuine one is accepted: the refusals above are the signature check's.
    assert post(client, body, {HEADER: signature}).status_code == 200
    assert stored_events(app) == 1


def test_a_replayed_genuine_webhook_is_stored_once(app, client, paid):
    _link, body, signature = paid
    first = post(client, body, {HEADER: signature})
    again = post(client, body, {HEADER: signature})
    assert first.status_code == again.status_code == 200
    assert again.json["status"] == "duplicate"
    assert stored_events(app) == 1


def test_validly_signed_bodies_that_are_not_events_are_400_and_stored_nowhere(app, client):
    for body in (
        "not json",
        "{",
        "[]",
        '"payment.updated"',
        "null",
        "{}",
        '{"type": "payment.updated"}',
        '{"event_id": "evt-1"}',
        '{"event_id": "evt-2", "type": "payment.updated", "data": "x"}',
    ):
        signature = sign_webhook(body, signature_key=WEBHOOK_KEY, notification_url=WEBHOOK_URL)
        response = post(client, body, {HEADER: signature})
        assert response.status_code == 400, (body, response.status_code)
    assert stored_events(app) == 0
    assert "webhook.bad_signature" not in audit_actions(app)


def test_a_huge_webhook_body_is_413_and_stored_nowhere(app, client):
    huge = '{"event_id": "evt-huge", "type": "payment.updated", "pad": "' + "x" * 70_000 + '"}'
    signature = sign_webhook(huge, signature_key=WEBHOOK_KEY, notification_url=WEBHOOK_URL)
    for headers in ({HEADER: signature}, {}):
        assert post(client, huge, headers).status_code == 413
    assert stored_events(app) == 0
