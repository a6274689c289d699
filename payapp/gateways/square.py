"""Square's Payments and Refunds APIs through the official SDK (`squareup`, imported as `square`).

One client per app. Call arguments never carry None (the SDK would send JSON null). Errors are
sorted into: the patient's card (GatewayDeclined), our configuration (GatewayError), and "no
answer" (GatewayUnknown: timeouts, dropped connections, 5xx after the SDK's own retries).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
from square import Square
from square.core.api_error import ApiError
from square.environment import SquareEnvironment

from . import (
    CLINIC_ERROR_CODES,
    ChargeRequest,
    ChargeResult,
    GatewayDeclined,
    GatewayError,
    GatewayUnknown,
    LocationInfo,
    RefundRequest,
    RefundResult,
)

log = logging.getLogger(__name__)

# The API version payapp is written and tested against (the SDK 46.0.0.20260916 default).
SQUARE_VERSION = "2026-09-16"
# Patient-fixable although Square files them under INVALID_REQUEST_ERROR: ask for the card again.
RETRY_WITH_NEW_CARD = {"CARD_TOKEN_USED", "CARD_TOKEN_EXPIRED", "INVALID_CARD_DATA"}
# Any error Square pins on these request fields was caused by what the patient's browser sent
# (e.g. a made-up source_id answers 404 NOT_FOUND with field "source_id"): a decline, not an outage.
PATIENT_FIELDS = ("source_id", "verification_token")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _without_none(**kwargs) -> dict:
    return {k: v for k, v in kwargs.items() if v is not None and v != ""}


class SquareGateway:
    name = "square"

    def __init__(
        self,
        *,
        token: str,
        location_id: str,
        environment: str = "sandbox",
        base_url: str | None = None,
        timeout: float = 20,
        currency: str = "USD",
    ):
        self.location_id = location_id
        self.currency = currency
        env = (
            SquareEnvironment.SANDBOX if environment == "sandbox" else SquareEnvironment.PRODUCTION
        )
        self.client = Square(
            **_without_none(base_url=base_url),
            token=token,
            environment=env,
            version=SQUARE_VERSION,
            timeout=timeout,
        )

    @classmethod
    def from_config(cls, cfg) -> SquareGateway:
        return cls(
            token=str(cfg["SQUARE_ACCESS_TOKEN"]),
            location_id=str(cfg["SQUARE_LOCATION_ID"]),
            environment=cfg["SQUARE_ENVIRONMENT"],
            base_url=cfg.get("SQUARE_BASE_URL") or None,
            timeout=float(cfg["SQUARE_TIMEOUT"]),
            currency=cfg["CURRENCY"],
        )

    # --- payments ---------------------------------------------------------------------------

    def create_payment(self, request: ChargeRequest) -> ChargeResult:
        kwargs = _without_none(
            source_id=request.source_id,
            idempotency_key=request.idempotency_key,
            amount_money={"amount": request.amount_cents, "currency": request.currency},
            location_id=self.location_id,
            reference_id=request.reference_id,
            buyer_email_address=request.buyer_email,
            billing_address={"postal_code": request.postal_code} if request.postal_code else None,
            note=request.note,
        )
        kwargs["autocomplete"] = True
        with _translated_errors():
            response = self.client.payments.create(**kwargs)
        result = _charge_result(response.payment)
        if result.status == "FAILED":
            raise GatewayDeclined("GENERIC_DECLINE", payment_id=result.payment_id)
        if result.status != "COMPLETED":
            # APPROVED/PENDING with autocomplete on: not final; reconciliation settles it.
            raise GatewayUnknown(f"payment {result.payment_id} is {result.status}", result=result)
        return result

    def get_payment(self, payment_id: str) -> ChargeResult:
        with _translated_errors():
            return _charge_result(self.client.payments.get(payment_id).payment)

    def list_payments(self, begin: datetime, end: datetime) -> list[ChargeResult]:
        with _translated_errors():
            pager = self.client.payments.list(
                begin_time=_rfc3339(begin), end_time=_rfc3339(end), location_id=self.location_id
            )
            return [_charge_result(payment) for payment in pager]

    def cancel_by_idempotency_key(self, idempotency_key: str) -> None:
        with _translated_errors():
            self.client.payments.cancel_by_idempotency_key(idempotency_key=idempotency_key)

    # --- refunds ----------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        with _translated_errors():
            response = self.client.refunds.refund_payment(
                **_without_none(
                    idempotency_key=request.idempotency_key,
                    amount_money={"amount": request.amount_cents, "currency": request.currency},
                    payment_id=request.payment_id,
                    reason=request.reason[:192] or None,
                )
            )
        return _refund_result(response.refund)

    def get_refund(self, refund_id: str) -> RefundResult:
        with _translated_errors():
            return _refund_result(self.client.refunds.get(refund_id).refund)

    # --- configuration ----------------------------------------------------------------------

    def check_location(self) -> LocationInfo:
        with _translated_errors():
            location = self.client.locations.get(self.location_id).location
        return LocationInfo(
            id=location.id or self.location_id,
            name=location.name or location.business_name or "",
            status=location.status or "",
            currency=location.currency or "",
            can_take_cards="CREDIT_CARD_PROCESSING" in (location.capabilities or []),
        )


class _translated_errors:
    """Turn SDK and network exceptions into the gateway's three kinds of failure."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, _tb):
        if exc is None:
            return False
        if isinstance(exc, ApiError):
            raise _from_api_error(exc) from None
        if isinstance(exc, httpx.HTTPError):
            log.warning("no answer from Square: %s", type(exc).__name__)
            raise GatewayUnknown(type(exc).__name__) from None
        return False


def _from_api_error(exc: ApiError) -> Exception:
    status = exc.status_code or 0
    error = exc.errors[0] if exc.errors else None
    code = (error.code if error else None) or "UNKNOWN"
    category = (error.category if error else None) or "API_ERROR"
    log.warning("Square answered %s %s/%s", status, category, code)
    if status >= 500 or status in (408, 409):
        return GatewayUnknown(f"HTTP {status} {code}")
    payment = exc.body.get("payment") if isinstance(exc.body, dict) else None
    payment_id = payment.get("id") if isinstance(payment, dict) else None
    field = (error.field if error else None) or None
    if code in CLINIC_ERROR_CODES:
        return GatewayError(code, category, (error.detail if error else "") or "", field=field)
    if category == "PAYMENT_METHOD_ERROR" or code in RETRY_WITH_NEW_CARD or field in PATIENT_FIELDS:
        return GatewayDeclined(code, category, payment_id=payment_id, field=field)
    return GatewayError(code, category, (error.detail if error else "") or "", field=field)


def _charge_result(payment) -> ChargeResult:
    details = payment.card_details
    card = details.card if details else None
    return ChargeResult(
        payment_id=payment.id,
        status=payment.status or "",
        card_brand=card.card_brand if card else None,
        card_last4=card.last4 if card else None,
        avs_status=details.avs_status if details else None,
        cvv_status=details.cvv_status if details else None,
        receipt_number=payment.receipt_number,
        receipt_url=payment.receipt_url,
        amount_cents=payment.amount_money.amount if payment.amount_money else None,
        reference_id=payment.reference_id,
        updated_at=payment.updated_at,
    )


def _refund_result(refund) -> RefundResult:
    return RefundResult(
        refund_id=refund.id,
        payment_id=refund.payment_id or "",
        status=refund.status or "",
        amount_cents=refund.amount_money.amount,
        reason=refund.reason or "",
        updated_at=refund.updated_at,
    )
