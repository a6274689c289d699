"""The card gateway interface: payments.py and refunds.py talk to this, never to Square directly.

Two implementations: ``square`` (Square's Payments API through the `squareup` SDK) and ``demo``
(offline, with Square's sandbox semantics; the default when no Square keys are set).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    source_id: str
    amount_cents: int
    currency: str
    reference_id: str
    note: str
    postal_code: str = ""
    buyer_email: str | None = None

    def fingerprint(self) -> tuple:
        """What must match for a repeated idempotency key to count as the same request."""
        return (
            self.source_id,
            self.amount_cents,
            self.currency,
            self.reference_id,
            self.note,
            self.postal_code,
            self.buyer_email,
        )


@dataclass(frozen=True)
class ChargeResult:
    """A payment as the gateway reports it (after a charge, or when fetched again)."""

    payment_id: str
    status: str  # Square's Payment.status: COMPLETED, APPROVED, CANCELED, FAILED, PENDING
    card_brand: str | None = None
    card_last4: str | None = None
    avs_status: str | None = None
    cvv_status: str | None = None
    receipt_number: str | None = None
    receipt_url: str | None = None
    amount_cents: int | None = None
    reference_id: str | None = None
    updated_at: str | None = None  # RFC 3339, as the gateway sent it


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    payment_id: str
    amount_cents: int
    currency: str
    reason: str

    def fingerprint(self) -> tuple:
        return (self.payment_id, self.amount_cents, self.currency, self.reason)


@dataclass(frozen=True)
class RefundResult:
    refund_id: str
    payment_id: str
    status: str  # PENDING, COMPLETED, REJECTED, FAILED
    amount_cents: int
    reason: str = ""
    updated_at: str | None = None


@dataclass(frozen=True)
class LocationInfo:
    id: str
    name: str
    status: str
    currency: str
    can_take_cards: bool


def is_stale(reported_at: str | None, held_at: str | None) -> bool:
    """Whether the gateway's ``updated_at`` for an object is no newer than the one we hold (so a
    late or repeated webhook must not change our state). Unknown times are never stale."""
    if not reported_at or not held_at:
        return False
    return parse_rfc3339(reported_at) <= parse_rfc3339(held_at)


def parse_rfc3339(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Errors only the clinic can cause (credentials, location, account permissions, currency): the
# staff banner says "patients may not be able to pay online". Anything a request's own card or
# token can cause must never raise it, or any link holder could fake an outage.
CLINIC_ERROR_CATEGORIES = frozenset({"AUTHENTICATION_ERROR"})
CLINIC_ERROR_CODES = frozenset(
    {
        "UNAUTHORIZED",
        "ACCESS_TOKEN_EXPIRED",
        "ACCESS_TOKEN_REVOKED",
        "CLIENT_DISABLED",
        "FORBIDDEN",
        "INSUFFICIENT_SCOPES",
        "APPLICATION_DISABLED",
        "MERCHANT_SUBSCRIPTION_NOT_FOUND",
        # Square files these two under PAYMENT_METHOD_ERROR, but they are the account's, not the
        # card's: the location cannot take this payment, or the amount is over its limit.
        "INVALID_LOCATION",
        "PAYMENT_LIMIT_EXCEEDED",
        "LOCATION_MISMATCH",
        "CARD_PROCESSING_NOT_ENABLED",
        "UNSUPPORTED_CURRENCY",
        "CURRENCY_MISMATCH",
    }
)
CLINIC_ERROR_FIELDS = ("location_id", "amount_money.currency")


class GatewayError(Exception):
    """The gateway answered with an error that is not the patient's to fix (configuration,
    authentication, idempotency misuse, rate limits). Nothing was charged. ``field`` is the
    request field the gateway blamed, when it said."""

    def __init__(self, code: str, category: str = "API_ERROR", detail: str = "", field=None):
        super().__init__(f"{category}/{code}")
        self.code = code
        self.category = category
        self.detail = detail
        self.field = field

    @property
    def clinic_must_fix(self) -> bool:
        """Whether only the clinic's own set-up can cause this (and fix it for every patient)."""
        return (
            self.category in CLINIC_ERROR_CATEGORIES
            or self.code in CLINIC_ERROR_CODES
            or (self.field or "") in CLINIC_ERROR_FIELDS
        )


class GatewayDeclined(GatewayError):
    """The card was declined or its token rejected (used, expired, unknown, invalid card data);
    the patient may try again with a card, up to the link's decline cap."""

    def __init__(
        self, code: str, category: str = "PAYMENT_METHOD_ERROR", payment_id=None, field=None
    ):
        super().__init__(code, category, field=field)
        self.payment_id = payment_id

    @property
    def clinic_must_fix(self) -> bool:
        return False

    @property
    def counts_toward_lock(self) -> bool:
        """Every failure a card tester can cause counts toward the link's decline cap: bank
        declines and bad, used, expired or made-up tokens. Only the gateway's own hiccup
        (TEMPORARY_ERROR) does not."""
        return self.code != "TEMPORARY_ERROR"


class GatewayUnknown(Exception):
    """No answer (timeout, dropped connection, 5xx): the charge may or may not have happened.

    ``result`` is set when the gateway did answer, but with a payment that is not final yet
    (APPROVED or PENDING although we ask for autocomplete): reconciliation may void it."""

    def __init__(self, message: str = "", result: ChargeResult | None = None):
        super().__init__(message)
        self.result = result


class Gateway(Protocol):
    name: str

    def create_payment(self, request: ChargeRequest) -> ChargeResult:
        """Charge; raise GatewayDeclined, GatewayError or GatewayUnknown. Sending the identical
        request again with the same key returns the first outcome and never charges twice."""

    def get_payment(self, payment_id: str) -> ChargeResult: ...

    def list_payments(self, begin: datetime, end: datetime) -> list[ChargeResult]:
        """Every payment at our location created in [begin, end) (Square's ListPayments)."""

    def cancel_by_idempotency_key(self, idempotency_key: str) -> None:
        """Void an uncaptured (APPROVED) payment made with this key. Only for that: a successful
        answer says nothing about whether a charge exists (Square documents success when no
        payment has the key, and leaves its answer for a COMPLETED payment undocumented)."""

    def refund(self, request: RefundRequest) -> RefundResult: ...

    def get_refund(self, refund_id: str) -> RefundResult: ...

    def check_location(self) -> LocationInfo:
        """The configured location, proving the credentials work (check-square)."""
