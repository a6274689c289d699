"""Square's webhook events: checked, de-duplicated, and acted on as hints that something changed.

An event is never trusted for state: its payment or refund is fetched again from Square, and
local state changes only if that is newer than what we hold (payments/refunds apply it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from square.utils.webhooks_helper import verify_signature

from . import audit, payments, refunds
from .gateways import GatewayError, GatewayUnknown
from .models import WebhookEvent
from .states import AuditAction

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
PAYMENT_EVENTS = ("payment.created", "payment.updated")
REFUND_EVENTS = ("refund.created", "refund.updated")
DUPLICATE = "duplicate"
IGNORED = "ignored"


class WebhookEventError(ValueError):
    """The body is not a Square event we can read."""


@dataclass(frozen=True)
class SquareEvent:
    event_id: str
    type: str
    object_id: str  # the payment's or refund's id; "" when the event names none


def is_signed_by_square(body: str, signature: str, *, signature_key: str, url: str) -> bool:
    """Whether ``signature`` is Square's HMAC of ``url`` + ``body`` (the raw body, as sent)."""
    return bool(signature) and verify_signature(
        request_body=body,
        signature_header=signature,
        signature_key=signature_key,
        notification_url=url,
    )


def record_bad_signature(session: Session, remote_addr: str | None, size: int) -> None:
    """A security event for the audit trail; the webhook itself is not stored or acted on."""
    audit.record(
        session, AuditAction.WEBHOOK_BAD_SIGNATURE, detail=f"from {remote_addr}, {size} bytes"
    )
    session.commit()


def parse_event(body: str) -> SquareEvent:
    """The event's id, type and object id; raises WebhookEventError for anything else."""
    try:
        event = json.loads(body)
        data = event.get("data") or {}
        return SquareEvent(
            event_id=str(event["event_id"])[:64],
            type=str(event["type"])[:64],
            object_id=str(data.get("id") or ""),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WebhookEventError("not a Square event") from None


def process_event(session: Session, gateway, event: SquareEvent) -> str:
    """Handle one event once: DUPLICATE if it was seen before, IGNORED if it is of no concern,
    else what applying the re-fetched payment or refund did. When Square cannot be asked, the
    event is forgotten (so Square's retry is processed, not dropped as a duplicate) and the
    GatewayError or GatewayUnknown is raised."""
    session.add(WebhookEvent(event_id=event.event_id, type=event.type))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return DUPLICATE  # Square retries; we already have it
    try:
        if event.type in PAYMENT_EVENTS and event.object_id:
            return payments.apply_gateway_payment(session, gateway.get_payment(event.object_id))
        if event.type in REFUND_EVENTS and event.object_id:
            return refunds.apply_gateway_refund(session, gateway.get_refund(event.object_id))
    except (GatewayError, GatewayUnknown) as exc:
        session.rollback()
        session.execute(delete(WebhookEvent).where(WebhookEvent.event_id == event.event_id))
        session.commit()
        log.warning("could not re-fetch %s for webhook %s: %s", event.type, event.event_id, exc)
        raise
    return IGNORED
