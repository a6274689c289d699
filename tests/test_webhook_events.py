"""Square webhook events at the domain level (the HTTP side is in tests/security)."""

import pytest
from sqlalchemy import func, select

from payapp import webhook_events
from payapp.db import get_session
from payapp.gateways import GatewayUnknown
from payapp.models import WebhookEvent
from payapp.webhook_events import SquareEvent


@pytest.fixture
def session(app):
    with app.app_context():
        yield get_session()


class UnreachableSquare:
    def get_payment(self, payment_id):
        raise GatewayUnknown("timed out")


def stored(session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookEvent))


def test_an_event_is_handled_once(session, gateway):
    event = SquareEvent(event_id="evt-1", type="inventory.count.updated", object_id="x")
    assert webhook_events.process_event(session, gateway, event) == webhook_events.IGNORED
    assert webhook_events.process_event(session, gateway, event) == webhook_events.DUPLICATE
    assert stored(session) == 1


def test_an_event_square_cannot_confirm_is_forgotten_for_its_retry(session):
    event = SquareEvent(event_id="evt-2", type="payment.updated", object_id="pay-1")
    with pytest.raises(GatewayUnknown):
        webhook_events.process_event(session, UnreachableSquare(), event)
    assert stored(session) == 0


NOT_EVENTS = ["", "[]", '"x"', '{"type": "payment.created"}', '{"event_id": 1}']


@pytest.mark.parametrize("body", NOT_EVENTS)
def test_what_is_not_a_square_event_is_refused(body):
    with pytest.raises(webhook_events.WebhookEventError):
        webhook_events.parse_event(body)


def test_an_event_names_its_payment_or_refund():
    body = '{"event_id": "e", "type": "refund.updated", "data": {"id": "r-1"}}'
    assert webhook_events.parse_event(body) == SquareEvent("e", "refund.updated", "r-1")
