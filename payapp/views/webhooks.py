"""POST /webhooks/square: signature-checked, de-duplicated hints that something changed
(webhook_events.py decides what they mean)."""

from __future__ import annotations

import logging

from flask import Blueprint, abort, current_app, jsonify, request

from .. import notify, webhook_events
from ..db import get_session
from ..extensions import csrf, limiter
from ..gateways import GatewayError, GatewayUnknown

bp = Blueprint("webhooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/webhooks/square")
@csrf.exempt  # Square cannot send a CSRF token; the HMAC signature is the check instead
@limiter.limit("120 per minute")
def receive_square_webhook():
    cfg = current_app.config
    if not cfg.get("SQUARE_WEBHOOK_SIGNATURE_KEY") or not cfg.get("SQUARE_WEBHOOK_URL"):
        abort(404)
    if (request.content_length or 0) > webhook_events.MAX_BODY:
        abort(413)
    body = request.get_data(as_text=True)  # the raw body: the signature covers it byte for byte
    if not webhook_events.is_signed_by_square(
        body,
        request.headers.get("x-square-hmacsha256-signature", ""),
        signature_key=cfg["SQUARE_WEBHOOK_SIGNATURE_KEY"],
        url=cfg["SQUARE_WEBHOOK_URL"],
    ):
        log.warning("rejected a Square webhook with a missing or wrong signature")
        webhook_events.record_bad_signature(get_session(), request.remote_addr, len(body))
        abort(403)
    try:
        event = webhook_events.parse_event(body)
    except webhook_events.WebhookEventError:
        abort(400)
    try:
        outcome = webhook_events.process_event(
            get_session(), current_app.extensions["payapp.gateway"], event
        )
    except (GatewayError, GatewayUnknown):
        return jsonify(status="retry"), 503
    notify.send_due_notices_for(current_app, get_session())
    return jsonify(status=outcome)
