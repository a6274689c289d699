"""POST /webhooks/twilio: replies (STOP, START, HELP) and delivery status callbacks, signed by
Twilio (X-Twilio-Signature over the URL configured in Twilio and the posted fields)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request

from .. import sms, texting, webhook_events
from ..db import get_session
from ..extensions import csrf, limiter

bp = Blueprint("twilio", __name__)
log = logging.getLogger(__name__)

# An empty TwiML answer: Twilio's own opt-out handling replies to STOP/START/HELP, we never do.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@bp.post("/webhooks/twilio")
@csrf.exempt  # Twilio cannot send a CSRF token; its signature is the check instead
@limiter.limit("300 per minute")
def receive_twilio_webhook():
    cfg = current_app.config
    if not cfg.get("TWILIO_ENABLED"):
        abort(404)
    if not sms.is_signed_by_twilio(
        cfg["TWILIO_AUTH_TOKEN"],
        cfg["TWILIO_WEBHOOK_URL"],
        request.form,
        request.headers.get("X-Twilio-Signature", ""),
    ):
        log.warning("rejected a Twilio webhook with a missing or wrong signature")
        webhook_events.record_bad_signature(
            get_session(), request.remote_addr, request.content_length or 0
        )
        abort(403)
    outcome = texting.handle_webhook(get_session(), request.form)
    log.info("Twilio webhook: %s", outcome)
    return Response(EMPTY_TWIML, mimetype="text/xml")
