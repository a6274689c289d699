"""An offline card gateway with Square's sandbox semantics, for demo mode.

It answers Square's published sandbox test nonces the way Square's sandbox does and honours
idempotency like Square: the same key with the same request returns the first result; the same
key with a different request is IDEMPOTENCY_KEY_REUSED. State lives in memory (one process).
"""

from __future__ import annotations

import secrets
import threading

from . import ChargeRequest, ChargeResult, GatewayDeclined, GatewayError

# nonce -> (error code or None for success, card brand, last 4)
SANDBOX_NONCES = {
    "cnon:card-nonce-ok": (None, "VISA", "1111"),
    "cnon:gift-card-nonce-ok": (None, "SQUARE_GIFT_CARD", "0000"),
    "cnon:card-nonce-declined": ("GENERIC_DECLINE", "VISA", "0002"),
    "cnon:card-nonce-rejected-cvv": ("CVV_FAILURE", "VISA", "1111"),
    "cnon:card-nonce-rejected-postalcode": ("ADDRESS_VERIFICATION_FAILURE", "VISA", "1111"),
    "cnon:card-nonce-rejected-expiration": ("INVALID_EXPIRATION", "VISA", "1111"),
    "cnon:gift-card-nonce-insufficient-funds": ("INSUFFICIENT_FUNDS", "SQUARE_GIFT_CARD", "0000"),
}
# Not a card decline: Square answers these as INVALID_REQUEST_ERROR.
REQUEST_ERRORS = {"cnon:card-nonce-already-used": "CARD_TOKEN_USED"}


class DemoGateway:
    name = "demo"

    def __init__(self, location_id: str = "DEMO-LOCATION"):
        self.location_id = location_id
        self._lock = threading.Lock()
        self._by_key: dict[str, tuple[tuple, ChargeResult | GatewayError]] = {}
        self.charges: list[ChargeRequest] = []  # every request that reached "the bank"

    def create_payment(self, request: ChargeRequest) -> ChargeResult:
        with self._lock:
            seen = self._by_key.get(request.idempotency_key)
            if seen is not None:
                fingerprint, outcome = seen
                if fingerprint != request.fingerprint():
                    raise GatewayError("IDEMPOTENCY_KEY_REUSED", "INVALID_REQUEST_ERROR")
            else:
                outcome = self._decide(request)
                self._by_key[request.idempotency_key] = (request.fingerprint(), outcome)
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def cancel_by_idempotency_key(self, idempotency_key: str) -> None:
        # Demo payments complete at once (autocomplete), and Square cannot void completed ones.
        with self._lock:
            seen = self._by_key.get(idempotency_key)
        if seen is not None and isinstance(seen[1], ChargeResult):
            raise GatewayError("PAYMENT_NOT_CANCELABLE", "INVALID_REQUEST_ERROR")

    def _decide(self, request: ChargeRequest) -> ChargeResult | GatewayError:
        self.charges.append(request)
        payment_id = "demo_" + secrets.token_hex(10)
        if request.source_id in REQUEST_ERRORS:
            return GatewayError(REQUEST_ERRORS[request.source_id], "INVALID_REQUEST_ERROR")
        if request.source_id not in SANDBOX_NONCES:
            # Sandbox only knows its own test nonces; anything else is treated as a stale token.
            return GatewayDeclined("CARD_TOKEN_EXPIRED", "INVALID_REQUEST_ERROR")
        error, brand, last4 = SANDBOX_NONCES[request.source_id]
        if error:
            return GatewayDeclined(error, payment_id=payment_id)
        return ChargeResult(
            payment_id=payment_id,
            status="COMPLETED",
            card_brand=brand,
            card_last4=last4,
            avs_status="AVS_ACCEPTED",
            cvv_status="CVV_ACCEPTED",
            receipt_number=payment_id[-4:].upper(),
        )
