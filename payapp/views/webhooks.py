"""POST /webhooks/square: signature-checked, de-duplicated hints that something changed.

A webhook is never trusted for state: its payment or refund is fetched again from Square, and
local state changes only if that is newer than what we hold.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, abort, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from square.utils.webhooks_helper import verify_signature

from .. import audit, payments, refunds
from ..db import get_session
from ..extensions import csrf, limiter
from ..gateways import GatewayError, GatewayUnknown
from ..models import WebhookEvent
from ..states import AuditAction

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
PAYMENT_EVENTS = ("payment.created", "payment.updated")
REFUND_EVENTS = ("refund.created", "refund.updated")


@bp.post("/webhooks/square")
@csrf.exempt  # Square cannot send a CSRF token; the HMAC signature is the check instead
@limiter.limit("120 per minute")
def receive_square_webhook():
    cfg = current_app.config
    if not cfg.get("SQUARE_WEBHOOK_SIGNATURE_KEY") or not cfg.get("SQUARE_WEBHOOK_URL"):
        abort(404)
    if (request.content_length or 0) > MAX_BODY:
        abort(413)
    body = request.get_data(as_text=True)  # the raw body: the signature covers it byte for byte
    signature = request.headers.get("x-square-hmacsha256-signature", "")
    if not signature or not verify_signature(
        request_body=body,
        signature_header=signature,
        signature_key=cfg["SQUARE_WEBHOOK_SIGNATURE_KEY"],
        notification_url=cfg["SQUARE_WEBHOOK_URL"],
    ):
        log.warning("rejected a Square webhook with a missing or wrong signature")
        # A security event for the audit trail; the webhook itself is not stored or acted on.
        audit.record(
            get_session(),
            AuditAction.WEBHOOK_BAD_SIGNATURE,
            detail=f"from {request.remote_addr}, {len(body)} bytes",
        )
        get_session().commit()
        abort(403)
    try:
        event = json.loads(body)
        event_id, event_type = str(event["event_id"]), str(event["type"])
        data = event.get("data") or {}
        object_id = str(data.get("id") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        abort(400)

    session = get_session()
    session.add(WebhookEvent(event_id=event_id[:64], type=event_type[:64]))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return jsonify(status="duplicate")  # Square retries; we already have it

    outcome = "ignored"
    gateway = current_app.extensions["payapp.gateway"]
    try:
        if event_type in PAYMENT_EVENTS and object_id:
            outcome = payments.apply_gateway_payment(session, gateway.get_payment(object_id))
        elif event_type in REFUND_EVENTS and object_id:
            outcome = refunds.apply_gateway_refund(session, gateway.get_refund(object_id))
    except (GatewayError, GatewayUnknown) as exc:
        # Forget the event so Square's retry is processed, not dropped as a duplicate.
        session.rollback()
        session.query(WebhookEvent).filter_by(event_id=event_id[:64]).delete()
        session.commit()
        log.warning("could not re-fetch %s for webhook %s: %s", event_type, event_id, exc)
        return jsonify(status="retry"), 503
    return jsonify(status=outcome)
