"""Webhooks: Square's signed notification envelope for payment.* and refund.* events."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid

from .state import StandinState


def sign_webhook(body: str, *, signature_key: str, notification_url: str) -> str:
    """The ``x-square-hmacsha256-signature`` value Square sends with ``body``."""
    digest = hmac.new(
        signature_key.encode("utf-8"), (notification_url + body).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


class WebhookEvents(StandinState):
    """``webhook()``: what Square would POST to the app (mixed into ``SquareStandin``)."""

    def webhook(
        self,
        event_type: str,
        obj: dict,
        *,
        signature_key: str,
        notification_url: str,
        event_id: str | None = None,
    ) -> tuple[str, str]:
        """A signed notification: (raw JSON body, ``x-square-hmacsha256-signature`` value)."""
        kind = event_type.split(".", 1)[0]
        if kind not in ("payment", "refund"):
            raise ValueError(f"only payment.* and refund.* events, not {event_type!r}")
        event = {
            "merchant_id": self.merchant_id,
            "type": event_type,
            "event_id": event_id or str(uuid.uuid4()),
            "created_at": self._stamp(),
            "data": {"type": kind, "id": obj["id"], "object": {kind: copy.deepcopy(obj)}},
        }
        body = json.dumps(event, separators=(",", ":"))
        schema = {
            "payment.created": "PaymentCreatedEvent",
            "payment.updated": "PaymentUpdatedEvent",
            "refund.created": "RefundCreatedEvent",
            "refund.updated": "RefundUpdatedEvent",
        }.get(event_type)
        if schema and self.validators is not None:
            for message in self.validators.check(schema, event):
                self.schema_errors.append(f"{event_type} webhook: {message}")
        return body, sign_webhook(
            body, signature_key=signature_key, notification_url=notification_url
        )
