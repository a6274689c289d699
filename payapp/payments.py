"""Charging a link: one idempotency key per attempt, stored before the gateway call; the link is
claimed with a conditional update so two submits can never both charge."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, links
from .gateways import (
    ChargeRequest,
    ChargeResult,
    Gateway,
    GatewayDeclined,
    GatewayError,
    GatewayUnknown,
    is_stale,
)
from .models import Payment, PaymentLink, utcnow

log = logging.getLogger(__name__)

ATTEMPT_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,10}$")

# Square error code -> what the patient reads. Anything unlisted gets the generic decline text.
DECLINE_MESSAGES = {
    "GENERIC_DECLINE": "Your card was declined by your bank. Try another card, or call your bank.",
    "CARD_DECLINED": "Your card was declined by your bank. Try another card, or call your bank.",
    "CVV_FAILURE": "The security code (CVV) did not match. Check the 3 or 4 digits on your card "
    "and try again.",
    "ADDRESS_VERIFICATION_FAILURE": "The ZIP code did not match the one your bank has on file. "
    "Check it and try again.",
    "INVALID_POSTAL_CODE": "The ZIP code is not valid. Check it and try again.",
    "INVALID_EXPIRATION": "The expiration date did not match. Check it and try again.",
    "CARD_EXPIRED": "This card has expired. Please use another card.",
    "INSUFFICIENT_FUNDS": "The card was declined for insufficient funds. Try another card.",
    "CARD_TOKEN_USED": "Please enter your card details again and retry.",
    "CARD_TOKEN_EXPIRED": "Please enter your card details again and retry.",
    "CARD_DECLINED_VERIFICATION_REQUIRED": "Your bank needs to verify this payment. Enter your "
    "card again and follow your bank's prompt, or try another card.",
    "CARD_NOT_SUPPORTED": "This type of card is not accepted. Please use another card.",
    "PAN_FAILURE": "The card number is not valid. Check it and try again.",
    "TEMPORARY_ERROR": "The payment system had a temporary problem. Please try again in a minute.",
}
GENERIC_DECLINE_MESSAGE = DECLINE_MESSAGES["GENERIC_DECLINE"]

# Square's CardBrand values -> how the card's own logo spells it.
CARD_BRAND_NAMES = {
    "VISA": "Visa",
    "MASTERCARD": "Mastercard",
    "AMERICAN_EXPRESS": "American Express",
    "DISCOVER": "Discover",
    "DISCOVER_DINERS": "Diners Club",
    "JCB": "JCB",
    "CHINA_UNIONPAY": "UnionPay",
    "SQUARE_GIFT_CARD": "Square Gift Card",
    "INTERAC": "Interac",
    "EFTPOS": "eftpos",
    "FELICA": "FeliCa",
    "EBT": "EBT",
}


def card_brand_name(brand: str | None) -> str:
    """What a patient calls the card: 'Mastercard', 'American Express'; 'Card' if unknown."""
    if not brand:
        return "Card"
    return CARD_BRAND_NAMES.get(brand, brand.replace("_", " ").title())


class PaymentError(Exception):
    """A charge did not complete; ``kind`` says why, ``message`` is what the patient reads."""

    def __init__(self, kind: str, message: str, *, code: str | None = None, payment=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.payment = payment

    @classmethod
    def declined(cls, code: str, payment=None):
        return cls("declined", decline_message(code), code=code, payment=payment)

    @classmethod
    def in_progress(cls):
        return cls(
            "in_progress",
            "A payment is already in progress for this link. Wait a moment "
            "and reload the page to see the result.",
        )

    @classmethod
    def unknown(cls, payment=None):
        return cls(
            "unknown",
            "We're confirming this payment with the bank. You will not be "
            "charged twice. If you don't get a receipt within an hour, call the clinic.",
            payment=payment,
        )

    @classmethod
    def unavailable(cls, code: str | None = None):
        return cls(
            "unavailable",
            "Online payment is not available right now. Nothing was "
            "charged. Please call the clinic to pay.",
            code=code,
        )

    @classmethod
    def bad_request(cls, message: str):
        return cls("bad_request", message)


def decline_message(code: str | None) -> str:
    return DECLINE_MESSAGES.get(code or "", GENERIC_DECLINE_MESSAGE)


def idempotency_key_for(link: PaymentLink, attempt_key: str) -> str:
    """One key per (link, attempt): 40 hex characters, inside Square's 45-character limit."""
    return hashlib.sha256(f"{link.public_id}:{attempt_key}".encode()).hexdigest()[:40]


def payment_note(link: PaymentLink) -> str:
    """The note Square stores: a statement reference only, never clinical detail."""
    if link.reference:
        return f"Payment for statement {link.reference}"
    return f"Payment link {link.public_id}"


def charge_link(
    session: Session,
    gateway: Gateway,
    link: PaymentLink,
    *,
    attempt_key: str,
    source_id: str,
    postal_code: str = "",
    max_declines: int = 5,
    now: datetime | None = None,
) -> Payment:
    """Charge the link's own amount once. Returns the completed Payment or raises PaymentError
    (or LinkError when the link cannot be paid). Repeating an attempt key replays its result."""
    now = now or utcnow()
    if not ATTEMPT_KEY.match(attempt_key or ""):
        raise PaymentError.bad_request("This page is out of date. Reload it and try again.")
    if not source_id or len(source_id) > 255:
        raise PaymentError.bad_request("Enter your card details, then press Pay.")
    postal_code = (postal_code or "").strip()
    if postal_code and not POSTAL_CODE.match(postal_code):
        raise PaymentError.bad_request("Enter your ZIP code, for example 94103.")

    key = idempotency_key_for(link, attempt_key)
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if existing is not None:
        if existing.source_id != source_id:
            # A stale page re-using its attempt key with a new card: Square would refuse it too.
            raise PaymentError.bad_request("This page is out of date. Reload it and try again.")
        return replay(existing)

    links.ensure_payable(link, now)
    claimed = session.execute(
        update(PaymentLink)
        .where(
            PaymentLink.id == link.id,
            PaymentLink.status == links.OPEN,
            PaymentLink.claim_key.is_(None),
            PaymentLink.expires_at > now,
        )
        .values(claim_key=key, claimed_at=now)
    ).rowcount
    if not claimed:
        session.rollback()
        session.refresh(link)
        links.ensure_payable(link, now)
        raise PaymentError.in_progress()

    payment = Payment(
        link_id=link.id,
        idempotency_key=key,
        gateway=gateway.name,
        status="pending",
        amount_cents=link.amount_cents,
        currency=link.currency,
        source_id=source_id,
        postal_code=postal_code,
        created_at=now,
    )
    session.add(payment)
    audit.record(session, "payment.attempted", actor="patient", link_id=link.id, when=now)
    try:
        session.commit()  # the key is durable before the gateway ever sees it
    except IntegrityError:
        # The same attempt submitted twice at once: the claim rolled back with the insert.
        session.rollback()
        existing = session.scalar(select(Payment).where(Payment.idempotency_key == key))
        if existing is None:
            raise
        return replay(existing)

    return send_to_gateway(session, gateway, payment, max_declines=max_declines)


def charge_request(payment: Payment) -> ChargeRequest:
    """The request for a stored attempt: rebuilt identically every time (idempotency needs it)."""
    link = payment.link
    return ChargeRequest(
        idempotency_key=payment.idempotency_key,
        source_id=payment.source_id,
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        reference_id=link.public_id,
        note=payment_note(link),
        postal_code=payment.postal_code,
        buyer_email=link.email,
    )


def send_to_gateway(session: Session, gateway: Gateway, payment: Payment, *, max_declines: int):
    """Send the stored request and settle the payment and its link from the answer."""
    link = payment.link
    try:
        result = gateway.create_payment(charge_request(payment))
    except GatewayDeclined as declined:
        _settle_declined(session, payment, declined, max_declines)
        raise PaymentError.declined(declined.code, payment) from None
    except GatewayError as error:
        _settle_gateway_error(session, payment, error)
        raise PaymentError.unavailable(error.code) from None
    except GatewayUnknown:
        payment.status = "unknown"
        audit.record(
            session,
            "payment.unknown",
            link_id=link.id,
            detail="no answer from the gateway; reconcile with run-jobs",
        )
        session.commit()
        raise PaymentError.unknown(payment) from None

    _settle_completed(session, payment, result, actor="patient")
    return payment


def _settle_completed(session, payment: Payment, result: ChargeResult, *, actor: str) -> None:
    """Record a completed charge and mark its link paid (one transaction)."""
    now = utcnow()
    payment.status = "completed"
    payment.gateway_payment_id = result.payment_id
    payment.card_brand = result.card_brand
    payment.card_last4 = result.card_last4
    payment.avs_status = result.avs_status
    payment.cvv_status = result.cvv_status
    payment.receipt_number = result.receipt_number
    payment.receipt_url = result.receipt_url
    payment.gateway_updated_at = result.updated_at
    payment.completed_at = now
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id)
        .values(status=links.PAID, paid_at=now, claim_key=None, claimed_at=None)
    )
    audit.record(
        session,
        "payment.completed",
        actor=actor,
        link_id=payment.link_id,
        when=now,
        detail=f"{result.card_brand or 'card'} ending {result.card_last4 or '????'}",
    )
    session.commit()
    session.refresh(payment.link)


def _settle_declined(session, payment: Payment, declined: GatewayDeclined, max_declines: int):
    link = payment.link
    payment.status = "failed"
    payment.error_code = declined.code
    payment.gateway_payment_id = declined.payment_id
    count = link.decline_count + (1 if declined.counts_toward_lock else 0)
    locked = count >= max_declines
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == link.id)
        .values(
            decline_count=count,
            claim_key=None,
            claimed_at=None,
            status=links.LOCKED if locked else links.OPEN,
        )
    )
    audit.record(
        session, "payment.declined", actor="patient", link_id=link.id, detail=declined.code
    )
    if locked:
        audit.record(session, "link.locked", link_id=link.id, detail=f"{count} declined attempts")
    session.commit()
    session.refresh(link)


def _settle_gateway_error(session, payment: Payment, error: GatewayError):
    """Nothing was charged; free the link and leave staff a trail (the patient sees no detail)."""
    log.error("gateway error on payment %s: %s/%s", payment.id, error.category, error.code)
    payment.status = "failed"
    payment.error_code = error.code
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id)
        .values(claim_key=None, claimed_at=None)
    )
    audit.record(
        session, "gateway.error", link_id=payment.link_id, detail=f"{error.category}/{error.code}"
    )
    session.commit()


def replay(payment: Payment) -> Payment:
    """The result an earlier submit of the same attempt got."""
    if payment.status == "completed":
        return payment
    if payment.status == "failed":
        raise PaymentError.declined(payment.error_code or "GENERIC_DECLINE", payment)
    if payment.status == "unknown":
        raise PaymentError.unknown(payment)
    raise PaymentError.in_progress()


# --- reconciliation -----------------------------------------------------------------------------

RECONCILE_AFTER = timedelta(minutes=2)


def reconcile_unknown_payments(
    session: Session,
    gateway: Gateway,
    *,
    max_declines: int = 5,
    now: datetime | None = None,
    older_than: timedelta = RECONCILE_AFTER,
) -> dict[str, int]:
    """Settle attempts whose outcome is unknown (timeouts, crashes between charge and commit).

    For each, first ask the gateway to cancel by idempotency key: if that succeeds, nothing was
    charged (or an uncaptured charge was voided) and the link opens again. If the gateway refuses
    because the payment completed, re-send the identical request with the same key: the gateway
    answers with the original payment, which is recorded and marks the link paid. Never a second
    charge, never a lost one. Attempts younger than ``older_than`` are left alone, since the
    original request may still be in flight.
    """
    now = now or utcnow()
    stmt = select(Payment).where(
        Payment.status.in_(("unknown", "pending")), Payment.created_at <= now - older_than
    )
    counts = {"paid": 0, "reopened": 0, "declined": 0, "still_unknown": 0}
    for payment in session.scalars(stmt).all():
        counts[_reconcile_one(session, gateway, payment, max_declines)] += 1
    return counts


def _reconcile_one(session: Session, gateway: Gateway, payment: Payment, max_declines: int) -> str:
    try:
        gateway.cancel_by_idempotency_key(payment.idempotency_key)
    except GatewayUnknown:
        return "still_unknown"
    except GatewayError:
        pass  # it completed: fetch it by re-sending the identical request below
    else:
        payment.status = "canceled"
        session.execute(
            update(PaymentLink)
            .where(
                PaymentLink.id == payment.link_id, PaymentLink.claim_key == payment.idempotency_key
            )
            .values(claim_key=None, claimed_at=None)
        )
        audit.record(
            session,
            "payment.reconciled",
            link_id=payment.link_id,
            detail="no charge was made; link open again",
        )
        session.commit()
        return "reopened"
    try:
        result = gateway.create_payment(charge_request(payment))
    except GatewayDeclined as declined:
        _settle_declined(session, payment, declined, max_declines)
        return "declined"
    except (GatewayError, GatewayUnknown) as exc:
        log.error("reconciling payment %s failed: %s", payment.id, exc)
        return "still_unknown"
    _settle_completed(session, payment, result, actor="system")
    audit.record(
        session,
        "payment.reconciled",
        link_id=payment.link_id,
        detail="the charge had gone through; link marked paid",
    )
    session.commit()
    return "paid"


def apply_gateway_payment(session: Session, result: ChargeResult) -> str:
    """Bring local state up to date with the gateway's view of a payment (webhooks).

    Matches by gateway payment id, or, for an attempt whose answer never arrived, by the link's
    public id (Square's reference_id). Older news than what we hold changes nothing.
    """
    payment = session.scalar(select(Payment).where(Payment.gateway_payment_id == result.payment_id))
    if payment is None and result.reference_id:
        payment = session.scalar(
            select(Payment)
            .join(PaymentLink)
            .where(
                PaymentLink.public_id == result.reference_id,
                Payment.status.in_(("unknown", "pending")),
            )
            .order_by(Payment.id.desc())
        )
    if payment is None:
        return "unknown_payment"
    if is_stale(result.updated_at, payment.gateway_updated_at):
        return "stale"
    if result.status == "COMPLETED" and payment.status != "completed":
        _settle_completed(session, payment, result, actor="square")
        return "completed"
    if result.status in ("CANCELED", "FAILED") and payment.status in ("unknown", "pending"):
        payment.status = "canceled" if result.status == "CANCELED" else "failed"
        payment.gateway_payment_id = result.payment_id
        session.execute(
            update(PaymentLink)
            .where(
                PaymentLink.id == payment.link_id, PaymentLink.claim_key == payment.idempotency_key
            )
            .values(claim_key=None, claimed_at=None)
        )
    payment.gateway_updated_at = result.updated_at
    session.commit()
    return "updated"
