"""An offline card gateway with Square's sandbox semantics, for demo mode.

It answers Square's published sandbox test nonces the way Square's sandbox does and honours
idempotency like Square: the same key with the same request returns the first result; the same
key with a different request is IDEMPOTENCY_KEY_REUSED. Refunds are bounded by what was charged.
State lives in memory (one process: deploy/gunicorn.conf.py runs one in demo mode): a restart
forgets demo payments, never real ones.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime

from . import (
    ChargeRequest,
    ChargeResult,
    GatewayDeclined,
    GatewayError,
    LocationInfo,
    RefundRequest,
    RefundResult,
    parse_rfc3339,
)

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
# Demo wallet nonces (Apple Pay / Google Pay). Square documents no sandbox wallet nonces (its
# sandbox wallets use real wallet sheets with test cards), so these are payapp's own invention,
# made by the demo card stand-in's wallet buttons (static/js/demo-card.js) and also answered by
# the Square stand-in in tests. Square's real wallet tokens are card nonces charged the same way.
DEMO_WALLET_NONCES = {
    "cnon:demo-apple-pay-ok": (None, "VISA", "1111"),
    "cnon:demo-google-pay-ok": (None, "VISA", "1111"),
    "cnon:demo-wallet-declined": ("GENERIC_DECLINE", "VISA", "0002"),
}
SANDBOX_NONCES.update(DEMO_WALLET_NONCES)
# Not card declines: Square answers these as INVALID_REQUEST_ERROR.
REQUEST_ERRORS = {"cnon:card-nonce-already-used": "CARD_TOKEN_USED"}

# Square's sandbox reports the brand and last 4 of the card typed into its card field. The demo
# card field (static/js/demo-card.js) does the same by appending them to the sandbox nonce:
# "cnon:card-nonce-ok--MASTERCARD--5100". Only four digits ever travel, never the card number.
DEMO_NONCE = re.compile(r"^(?P<nonce>cnon:[a-z-]+?)--(?P<brand>[A-Z_]{2,32})--(?P<last4>[0-9]{4})$")
CARD_BRANDS = frozenset(
    (
        "VISA",
        "MASTERCARD",
        "AMERICAN_EXPRESS",
        "DISCOVER",
        "DISCOVER_DINERS",
        "JCB",
        "CHINA_UNIONPAY",
        "SQUARE_GIFT_CARD",
    )
)


def read_demo_nonce(source_id: str) -> tuple[str, str | None, str | None]:
    """Split a demo card-field nonce into (sandbox nonce, brand, last 4).

    Square's documented sandbox nonces pass through unchanged with no card of their own.
    """
    match = DEMO_NONCE.match(source_id)
    if match is None or match["brand"] not in CARD_BRANDS:
        return source_id, None, None
    return match["nonce"], match["brand"], match["last4"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DemoGateway:
    name = "demo"

    def __init__(self, location_id: str = "DEMO-LOCATION", currency: str = "USD"):
        self.location_id = location_id
        self.currency = currency
        self._lock = threading.Lock()
        self._by_key: dict[str, tuple[tuple, ChargeResult | GatewayError]] = {}
        self._payments: dict[str, ChargeResult] = {}
        self._refund_keys: dict[str, tuple[tuple, RefundResult]] = {}
        self._refunds: dict[str, RefundResult] = {}
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

    def get_payment(self, payment_id: str) -> ChargeResult:
        with self._lock:
            payment = self._payments.get(payment_id)
        if payment is None:
            raise GatewayError("NOT_FOUND", "INVALID_REQUEST_ERROR")
        return payment

    def list_payments(self, begin: datetime, end: datetime) -> list[ChargeResult]:
        # A demo payment never changes after creation, so its updated_at is its created_at.
        with self._lock:
            found = list(self._payments.values())
        return [p for p in found if begin <= parse_rfc3339(p.updated_at) < end]

    def cancel_by_idempotency_key(self, idempotency_key: str) -> None:
        # Demo payments complete at once (autocomplete), and Square cannot void completed ones.
        with self._lock:
            seen = self._by_key.get(idempotency_key)
        if seen is not None and isinstance(seen[1], ChargeResult):
            raise GatewayError("BAD_REQUEST", "INVALID_REQUEST_ERROR", "payment is COMPLETED")

    def refund(self, request: RefundRequest) -> RefundResult:
        with self._lock:
            seen = self._refund_keys.get(request.idempotency_key)
            if seen is not None:
                if seen[0] != request.fingerprint():
                    raise GatewayError("IDEMPOTENCY_KEY_REUSED", "INVALID_REQUEST_ERROR")
                return seen[1]
            payment = self._payments.get(request.payment_id)
            if payment is None:
                raise GatewayError("NOT_FOUND", "INVALID_REQUEST_ERROR")
            refunded = sum(
                r.amount_cents
                for r in self._refunds.values()
                if r.payment_id == payment.payment_id and r.status != "FAILED"
            )
            if request.amount_cents <= 0 or refunded + request.amount_cents > (
                payment.amount_cents or 0
            ):
                raise GatewayError("REFUND_AMOUNT_INVALID", "REFUND_ERROR")
            refund = RefundResult(
                refund_id="demo_refund_" + secrets.token_hex(8),
                payment_id=payment.payment_id,
                status="COMPLETED",  # the demo bank is instant
                amount_cents=request.amount_cents,
                reason=request.reason,
                updated_at=_now(),
            )
            self._refunds[refund.refund_id] = refund
            self._refund_keys[request.idempotency_key] = (request.fingerprint(), refund)
            return refund

    def get_refund(self, refund_id: str) -> RefundResult:
        with self._lock:
            refund = self._refunds.get(refund_id)
        if refund is None:
            raise GatewayError("NOT_FOUND", "INVALID_REQUEST_ERROR")
        return refund

    def check_location(self) -> LocationInfo:
        return LocationInfo(
            self.location_id, "Demo location (no real payments)", "ACTIVE", self.currency, True
        )

    def _decide(self, request: ChargeRequest) -> ChargeResult | GatewayError:
        self.charges.append(request)
        payment_id = "demo_" + secrets.token_hex(10)
        nonce, typed_brand, typed_last4 = read_demo_nonce(request.source_id)
        if nonce in REQUEST_ERRORS:
            return GatewayDeclined(REQUEST_ERRORS[nonce], "INVALID_REQUEST_ERROR")
        if nonce not in SANDBOX_NONCES:
            # Sandbox only knows its own test nonces; anything else is treated as a stale token.
            return GatewayDeclined("CARD_TOKEN_EXPIRED", "INVALID_REQUEST_ERROR")
        error, brand, last4 = SANDBOX_NONCES[nonce]
        brand, last4 = typed_brand or brand, typed_last4 or last4
        if error:
            return GatewayDeclined(error, payment_id=payment_id)
        result = ChargeResult(
            payment_id=payment_id,
            status="COMPLETED",
            card_brand=brand,
            card_last4=last4,
            avs_status="AVS_ACCEPTED",
            cvv_status="CVV_ACCEPTED",
            receipt_number=payment_id[-4:].upper(),
            amount_cents=request.amount_cents,
            reference_id=request.reference_id,
            updated_at=_now(),
        )
        self._payments[payment_id] = result
        return result
