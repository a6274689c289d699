"""The card gateway interface: payments.py talks to this, never to Square directly.

Two implementations: ``demo`` (offline, Square's sandbox semantics) and, later, ``square``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    payment_id: str
    status: str  # Square's Payment.status, e.g. COMPLETED
    card_brand: str | None = None
    card_last4: str | None = None
    avs_status: str | None = None
    cvv_status: str | None = None
    receipt_number: str | None = None
    receipt_url: str | None = None


class GatewayError(Exception):
    """The gateway answered with an error that is not about the patient's card (config, auth,
    idempotency misuse, rate limits). Staff must look; the patient gets a plain message."""

    def __init__(self, code: str, category: str = "API_ERROR", detail: str = ""):
        super().__init__(f"{category}/{code}")
        self.code = code
        self.category = category
        self.detail = detail


class GatewayDeclined(GatewayError):
    """The card was declined or rejected; the patient may try again or use another card."""

    def __init__(self, code: str, category: str = "PAYMENT_METHOD_ERROR", payment_id=None):
        super().__init__(code, category)
        self.payment_id = payment_id


class GatewayUnknown(Exception):
    """No answer (timeout, dropped connection, 5xx): the charge may or may not have happened."""


class Gateway(Protocol):
    name: str

    def create_payment(self, request: ChargeRequest) -> ChargeResult:
        """Charge; raise GatewayDeclined, GatewayError or GatewayUnknown."""

    def cancel_by_idempotency_key(self, idempotency_key: str) -> None:
        """Void whatever an unknown-outcome request created, or nothing."""


def make_gateway(config) -> Gateway:
    """The gateway the configuration asks for: demo unless Square keys are set."""
    if config["DEMO_MODE"]:
        from .demo import DemoGateway

        return DemoGateway(location_id="DEMO-LOCATION")
    from ..config import ConfigError

    raise ConfigError(
        "Square mode is not available in this version yet; unset the PAYAPP_SQUARE_* settings "
        "to run with the demo card gateway."
    )
