"""Charging a link: one idempotency key per attempt, stored before the gateway call; the link is
claimed with a conditional update so two submits can never both charge."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import case, literal, select, update
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
from .models import AuditEvent, Payment, PaymentLink, utcnow
from .money import format_cents
from .plaintext import patient_text
from .states import LINK_PAID_STATES, AuditAction, LinkStatus, PaymentStatus, Wallet

log = logging.getLogger(__name__)

# session.info key: payments whose link this session marked paid, for notify to send receipts
# for once the transaction is committed (never inside it; a failed send cannot touch the money).
RECEIPTS_DUE = "payapp.receipts_due"

ATTEMPT_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
POSTAL_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{1,10}$")

# Square error code -> what the patient reads. Anything unlisted gets the generic decline text.
DECLINE_MESSAGES = {
    "GENERIC_DECLINE": patient_text(
        "Your card was declined by your bank. Try another card, or call your bank."
    ),
    "CARD_DECLINED": patient_text(
        "Your card was declined by your bank. Try another card, or call your bank."
    ),
    "CVV_FAILURE": patient_text(
        "The security code (CVV) did not match. Check the 3 or 4 digits on your card and try again."
    ),
    "ADDRESS_VERIFICATION_FAILURE": patient_text(
        "The ZIP code did not match the one your bank has on file. Check it and try again."
    ),
    "INVALID_POSTAL_CODE": patient_text("The ZIP code is not valid. Check it and try again."),
    "INVALID_EXPIRATION": patient_text(
        "The expiration date did not match. Check it and try again."
    ),
    "CARD_EXPIRED": patient_text("This card has expired. Please use another card."),
    "INSUFFICIENT_FUNDS": patient_text(
        "The card was declined for insufficient funds. Try another card."
    ),
    "CARD_TOKEN_USED": patient_text("Please enter your card details again and retry."),
    "CARD_TOKEN_EXPIRED": patient_text("Please enter your card details again and retry."),
    "INVALID_CARD_DATA": patient_text("Please enter your card details again and retry."),
    # Only a card token Square does not know reaches here as a decline (field source_id).
    "NOT_FOUND": patient_text("Please enter your card details again and retry."),
    "CARD_DECLINED_VERIFICATION_REQUIRED": patient_text(
        "Your bank needs to verify this payment. Enter your "
        "card again and follow your bank's prompt, or try another card."
    ),
    "CARD_NOT_SUPPORTED": patient_text(
        "This type of card is not accepted. Please use another card."
    ),
    "PAN_FAILURE": patient_text("The card number is not valid. Check it and try again."),
    "TEMPORARY_ERROR": patient_text(
        "The payment system had a temporary problem. Please try again in a minute."
    ),
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
        self.values: dict[str, str] = {}

    @classmethod
    def declined(cls, code: str, payment=None):
        return cls("declined", decline_message(code), code=code, payment=payment)

    @classmethod
    def in_progress(cls):
        return cls(
            "in_progress",
            patient_text(
                "A payment is already in progress for this link. Wait a moment "
                "and reload the page to see the result."
            ),
        )

    @classmethod
    def unknown(cls, payment=None):
        return cls(
            "unknown",
            patient_text(
                "We're confirming this payment with the bank. You will not be "
                "charged twice. If you don't get a receipt within an hour, call the clinic."
            ),
            payment=payment,
        )

    @classmethod
    def unavailable(cls, code: str | None = None):
        return cls(
            "unavailable",
            patient_text(
                "Online payment is not available right now. Nothing was "
                "charged. Please call the clinic to pay."
            ),
            code=code,
        )

    @classmethod
    def bad_request(cls, message: str):
        return cls("bad_request", message)

    @classmethod
    def bad_amount(cls, message: str, **values):
        """The amount the patient chose cannot be charged (422; nothing changed). ``values``
        fill the message's placeholders once it is translated."""
        error = cls("bad_amount", message)
        error.values = values
        return error


def decline_message(code: str | None) -> str:
    return DECLINE_MESSAGES.get(code or "", GENERIC_DECLINE_MESSAGE)


# What a patient may type for "Pay another amount": dollars, optionally cents ("50", "$1,050.5").
PATIENT_AMOUNT = re.compile(r"^\$?\s*(\d{1,3}(?:,\d{3})+|\d{1,9})(?:\.(\d{1,2}))?$", re.ASCII)


def parse_patient_amount(text: str | None) -> int:
    """The cents of what the patient typed as "another amount", or PaymentError (bad_amount)."""
    match = PATIENT_AMOUNT.match((text or "").strip())
    if not match:
        raise PaymentError.bad_amount(
            patient_text("Enter the amount you want to pay in dollars, for example 50.00.")
        )
    return int(match[1].replace(",", "")) * 100 + int((match[2] or "0").ljust(2, "0"))


def check_amount(link: PaymentLink, amount_cents: int) -> None:
    """Raise PaymentError (bad_amount) unless the link takes this amount now: its whole balance,
    or (part payment allowed) at least the minimum and at most the balance. A balance below the
    minimum can only be paid whole."""
    balance = link.balance_cents
    money = partial(format_cents, currency=link.currency)
    if amount_cents > balance:
        if amount_cents == link.amount_cents or link.paid_cents:
            raise PaymentError.bad_amount(
                patient_text(
                    "The balance is now %(balance)s. Reload the page to pay what is left."
                ),
                balance=money(balance),
            )
        raise PaymentError.bad_amount(
            patient_text("You can pay at most %(balance)s, the balance."), balance=money(balance)
        )
    if amount_cents == balance:
        return
    if link.min_payment_cents is None:
        raise PaymentError.bad_amount(
            patient_text("This bill can only be paid in full: %(balance)s."), balance=money(balance)
        )
    if amount_cents < link.min_payment_cents:
        raise PaymentError.bad_amount(
            patient_text("Pay at least %(minimum)s, or the full %(balance)s."),
            minimum=money(link.min_payment_cents),
            balance=money(balance),
        )


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
    wallet: str = "",
    amount_cents: int | None = None,
    max_declines: int = 5,
    now: datetime | None = None,
) -> Payment:
    """Charge the link once: ``amount_cents`` (the patient's choice, checked against the link by
    check_amount) or, when None, the link's whole balance. Returns the completed Payment or
    raises PaymentError (or LinkError when the link cannot be paid). Repeating an attempt key
    replays its result; the same key with another card or another amount is refused.
    ``wallet`` is the wallet button that made the token ("apple_pay", "google_pay"), kept only
    to name it on the receipt (anything else is ignored)."""
    now = now or utcnow()
    if not ATTEMPT_KEY.match(attempt_key or ""):
        raise PaymentError.bad_request(
            patient_text("This page is out of date. Reload it and try again.")
        )
    if not source_id or len(source_id) > 255:
        raise PaymentError.bad_request(patient_text("Enter your card details, then press Pay."))
    postal_code = (postal_code or "").strip()
    if postal_code and not POSTAL_CODE.match(postal_code):
        raise PaymentError.bad_request(patient_text("Enter your ZIP code, for example 94103."))

    key = idempotency_key_for(link, attempt_key)
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if existing is not None:
        if existing.source_id != source_id or (
            amount_cents is not None and existing.amount_cents != amount_cents
        ):
            # A stale page re-using its attempt key with a new card or a new amount: Square
            # would refuse the card too, and the stored request is the one that gets re-sent.
            raise PaymentError.bad_request(
                patient_text("This page is out of date. Reload it and try again.")
            )
        return replay(existing)

    links.ensure_payable(link, now)
    amount = link.balance_cents if amount_cents is None else amount_cents
    check_amount(link, amount)
    # Under the cap and within the balance in the same statement: however many submits race,
    # at most max_declines attempts can ever hold the claim, so at most that many reach the
    # gateway, and none for more than is left to pay.
    claimed = session.execute(
        update(PaymentLink)
        .where(
            PaymentLink.id == link.id,
            PaymentLink.status == LinkStatus.OPEN,
            PaymentLink.claim_key.is_(None),
            PaymentLink.expires_at > now,
            PaymentLink.decline_count < max_declines,
            PaymentLink.amount_cents - PaymentLink.paid_cents >= amount,
        )
        .values(claim_key=key, claimed_at=now)
    ).rowcount
    if not claimed:
        session.rollback()
        session.refresh(link)
        links.ensure_payable(link, now)
        if link.decline_count >= max_declines:  # e.g. MAX_DECLINES lowered since it counted
            raise links.LinkError.locked()
        if link.claim_key is None:  # another payment went in first: the balance changed
            check_amount(link, amount)
        raise PaymentError.in_progress()

    payment = Payment(
        link_id=link.id,
        idempotency_key=key,
        gateway=gateway.name,
        status=PaymentStatus.PENDING,
        amount_cents=amount,
        currency=link.currency,
        source_id=source_id,
        postal_code=postal_code,
        wallet=Wallet.lookup(wallet),
        created_at=now,
    )
    session.add(payment)
    audit.record(session, AuditAction.PAYMENT_ATTEMPTED, actor="patient", link_id=link.id, when=now)
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
        payment.status = PaymentStatus.UNKNOWN
        audit.record(
            session,
            AuditAction.PAYMENT_UNKNOWN,
            link_id=link.id,
            detail="no answer from the gateway; reconcile with run-jobs",
        )
        session.commit()
        raise PaymentError.unknown(payment) from None

    _settle_completed(session, payment, result, actor="patient")
    return payment


def _settle_completed(session, payment: Payment, result: ChargeResult, *, actor: str) -> bool:
    """Record a completed charge and add it to its link (one transaction).

    One UPDATE adds the charge to ``paid_cents`` and, only when that reaches the amount, marks
    the link paid (a CASE in SQL, never a value read earlier), releasing the claim. A charge
    the link did not need (it was paid
    already, or this one takes it over its amount, e.g. an unknown attempt reconciled after the
    patient paid again) is still recorded, the money was taken, and staff get a
    ``payment.paid_twice`` alert to refund it.

    The payment's own step to completed is a conditional UPDATE in the same transaction: when a
    webhook and a reconciliation settle one payment at once, only the first adds its amount to
    the link; the other changes nothing and returns False.
    """
    now = utcnow()
    moved = session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status != PaymentStatus.COMPLETED)
        .values(status=PaymentStatus.COMPLETED)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        session.rollback()
        session.refresh(payment)
        return False
    payment.status = PaymentStatus.COMPLETED
    payment.gateway_payment_id = result.payment_id
    payment.card_brand = result.card_brand
    payment.card_last4 = result.card_last4
    payment.avs_status = result.avs_status
    payment.cvv_status = result.cvv_status
    payment.receipt_number = result.receipt_number
    payment.receipt_url = result.receipt_url
    payment.gateway_updated_at = result.updated_at
    payment.completed_at = now
    card = f"{card_brand_name(result.card_brand)} ending {result.card_last4 or '????'}"
    new_paid = PaymentLink.paid_cents + payment.amount_cents
    becomes_paid = (PaymentLink.status.not_in(LINK_PAID_STATES)) & (
        new_paid >= PaymentLink.amount_cents
    )
    paid_cents, amount_cents, status = session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id)
        .values(
            paid_cents=new_paid,
            status=case((becomes_paid, LinkStatus.PAID.value), else_=PaymentLink.status),
            # Typed as the column, so the time is stored as naive UTC like every other write
            # (an untyped aware datetime would be shifted by PostgreSQL's session time zone).
            paid_at=case(
                (becomes_paid, literal(now, PaymentLink.paid_at.type)), else_=PaymentLink.paid_at
            ),
            claim_key=case(
                (becomes_paid | (PaymentLink.claim_key == payment.idempotency_key), None),
                else_=PaymentLink.claim_key,
            ),
            claimed_at=case(
                (becomes_paid | (PaymentLink.claim_key == payment.idempotency_key), None),
                else_=PaymentLink.claimed_at,
            ),
        )
        .returning(PaymentLink.paid_cents, PaymentLink.amount_cents, PaymentLink.status)
    ).one()
    audit.record(
        session,
        AuditAction.PAYMENT_COMPLETED,
        actor=actor,
        link_id=payment.link_id,
        when=now,
        detail=card
        if paid_cents == payment.amount_cents and paid_cents >= amount_cents
        else f"{card}, {format_cents(payment.amount_cents, payment.currency)}; "
        f"{format_cents(min(paid_cents, amount_cents), payment.currency)} of "
        f"{format_cents(amount_cents, payment.currency)} paid",
    )
    if paid_cents > amount_cents:
        audit.record(
            session,
            AuditAction.PAYMENT_PAID_TWICE,
            link_id=payment.link_id,
            when=now,
            detail=f"a second charge of {payment.amount_cents / 100:.2f} {payment.currency} "
            f"({card}, Square payment {result.payment_id}); "
            f"{format_cents(paid_cents - amount_cents, payment.currency)} more than the link's "
            f"{format_cents(amount_cents, payment.currency)}; refund one",
        )
        log.error("link %s was paid twice (payment %s)", payment.link_id, payment.id)
    session.commit()
    # One receipt per completed charge: a patient charged twice gets a receipt for each (each
    # with its own number), as their card statement shows both until staff refund one; a part
    # payment's receipt says what is left.
    session.info.setdefault(RECEIPTS_DUE, []).append(payment.id)
    session.refresh(payment.link)
    return True


def duplicate_charges(link: PaymentLink) -> list[Payment]:
    """The link's completed payments that still hold money, when together they hold more than
    the link's amount: the patient paid twice and staff should refund the excess (empty when all
    is well, as for a link paid in parts)."""
    holding = [
        p for p in link.payments if p.status == PaymentStatus.COMPLETED and p.refundable_cents > 0
    ]
    held = sum(p.refundable_cents for p in holding)
    return holding if len(holding) > 1 and held > link.amount_cents else []


def _attempt_for(session: Session, result: ChargeResult) -> Payment | None:
    """The local attempt a gateway payment we never heard back about belongs to, if any."""
    statuses = [PaymentStatus.UNKNOWN, PaymentStatus.PENDING]
    if result.status == "COMPLETED":
        statuses += [PaymentStatus.CANCELLED, PaymentStatus.FAILED]
    candidates = session.scalars(
        select(Payment)
        .join(PaymentLink)
        .where(
            PaymentLink.public_id == result.reference_id,
            Payment.gateway_payment_id.is_(None),
            Payment.status.in_(statuses),
        )
        .order_by(Payment.id.desc())
    ).all()
    # Square always sends amount_money; a different amount is not one of our attempts.
    candidates = [p for p in candidates if result.amount_cents in (None, p.amount_cents)]
    # Newest first within: unresolved, then voided by us, then failed without a Square payment.
    rank = {
        PaymentStatus.UNKNOWN: 0,
        PaymentStatus.PENDING: 0,
        PaymentStatus.CANCELLED: 1,
        PaymentStatus.FAILED: 2,
    }
    candidates.sort(key=lambda p: rank[p.status])
    return candidates[0] if candidates else None


def _settle_declined(session, payment: Payment, declined: GatewayDeclined, max_declines: int):
    """Record the decline, free the link, and count it toward the cap. The count is raised and
    the lock decided in one UPDATE from the stored value, never from a copy read earlier: a
    racing request can neither lose a decline nor lower the count."""
    link = payment.link
    payment.status = PaymentStatus.FAILED
    payment.error_code = declined.code
    payment.gateway_payment_id = declined.payment_id
    values = {"claim_key": None, "claimed_at": None}
    if declined.counts_toward_lock:
        values["decline_count"] = PaymentLink.decline_count + 1
        values["status"] = case(
            (PaymentLink.decline_count + 1 >= max_declines, LinkStatus.LOCKED),
            else_=PaymentLink.status,
        )
    count = session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == link.id)
        .values(values)
        .returning(PaymentLink.decline_count)
    ).scalar_one()
    detail = declined.code if not declined.field else f"{declined.code} ({declined.field})"
    audit.record(
        session, AuditAction.PAYMENT_DECLINED, actor="patient", link_id=link.id, detail=detail
    )
    if declined.counts_toward_lock and count - 1 < max_declines <= count:
        audit.record(
            session, AuditAction.LINK_LOCKED, link_id=link.id, detail=f"{count} declined attempts"
        )
    session.commit()
    session.refresh(link)


def _settle_gateway_error(session, payment: Payment, error: GatewayError):
    """Nothing was charged; free the link and leave staff a trail (the patient sees no detail).
    Only errors the clinic's own set-up causes raise the staff banner (``gateway.error``); any
    other refusal is recorded on the link as ``gateway.rejected``, so no patient can fake an
    outage."""
    log.error("gateway error on payment %s: %s/%s", payment.id, error.category, error.code)
    payment.status = PaymentStatus.FAILED
    payment.error_code = error.code
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id)
        .values(claim_key=None, claimed_at=None)
    )
    detail = f"{error.category}/{error.code}"
    if error.clinic_must_fix:
        audit.record(session, AuditAction.GATEWAY_ERROR, link_id=payment.link_id, detail=detail)
    else:
        detail += f" ({error.field})" if error.field else ""
        audit.record(session, AuditAction.GATEWAY_REJECTED, link_id=payment.link_id, detail=detail)
    session.commit()


def replay(payment: Payment) -> Payment:
    """The result an earlier submit of the same attempt got."""
    if payment.status == PaymentStatus.COMPLETED:
        return payment
    if payment.status == PaymentStatus.FAILED:
        raise PaymentError.declined(payment.error_code or "GENERIC_DECLINE", payment)
    if payment.status == PaymentStatus.UNKNOWN:
        raise PaymentError.unknown(payment)
    raise PaymentError.in_progress()


# --- reconciliation -----------------------------------------------------------------------------

RECONCILE_AFTER = timedelta(minutes=2)
# Attempts recorded cancelled without a Square payment are looked up again for this long, in a
# window this long after they started (Square creates the payment while our request runs).
RECHECK_CANCELLED_FOR = timedelta(days=30)
CHARGE_WINDOW = timedelta(hours=1)
# Answers to a re-sent request that do not prove the first one never charged: if Square had
# forgotten the key, a nonce the first request spent would be "used", "expired" or unknown now.
UNPROVEN_ON_RESEND = {"CARD_TOKEN_USED", "CARD_TOKEN_EXPIRED", "NOT_FOUND"}


def reconcile_unknown_payments(
    session: Session,
    gateway: Gateway,
    *,
    max_declines: int = 5,
    now: datetime | None = None,
    older_than: timedelta = RECONCILE_AFTER,
) -> dict[str, int]:
    """Settle attempts whose outcome is unknown (timeouts, crashes between charge and commit).

    Each is decided by re-sending the identical CreatePayment with the same idempotency key.
    Square documents that a repeated request returns the original payment when the first one
    was processed; when it was not, this request is processed now and becomes the one and
    only charge for the attempt (the patient asked to pay). Either way the answer is what
    Square holds, so: COMPLETED -> the link is paid; a card decline -> nothing was charged,
    the link opens again; an uncaptured (APPROVED) payment -> voided, and the link opens only
    once a read shows it CANCELED. Anything else (no answer, 5xx, an error that does not prove
    "no charge") leaves the payment unknown, the link claimed and an alert for staff.

    Cancel-by-idempotency-key is never asked whether a charge exists: Square documents only
    that it succeeds when no payment has the key; what it answers for a COMPLETED payment is
    undocumented (it may be a 200 too). Attempts younger than ``older_than`` are left alone,
    since the original request may still be in flight.
    """
    now = now or utcnow()
    stmt = select(Payment).where(
        Payment.status.in_((PaymentStatus.UNKNOWN, PaymentStatus.PENDING)),
        Payment.created_at <= now - older_than,
    )
    counts = {"paid": 0, "reopened": 0, "declined": 0, "still_unknown": 0}
    for payment in session.scalars(stmt).all():
        counts[_reconcile_one(session, gateway, payment, max_declines)] += 1
    voided = select(Payment).where(
        Payment.status == PaymentStatus.CANCELLED,
        Payment.gateway_payment_id.is_(None),
        Payment.created_at >= now - RECHECK_CANCELLED_FOR,
        Payment.created_at <= now - older_than,
    )
    for payment in session.scalars(voided).all():
        counts["paid"] += _recheck_cancelled(session, gateway, payment)
    return counts


def _recheck_cancelled(session: Session, gateway: Gateway, payment: Payment) -> int:
    """Look (read-only, ListPayments) for a charge behind an attempt recorded cancelled without
    a Square payment: earlier releases took cancel-by-key's 200 to mean "no charge", which it
    does not. A completed payment for the link, of the attempt's amount, that no local attempt
    holds, is this attempt's charge: recorded, and the link paid (or flagged as paid twice).
    Never re-sends the charge: for an attempt that really was not charged, that would charge."""
    try:
        listed = gateway.list_payments(
            payment.created_at - timedelta(minutes=1), payment.created_at + CHARGE_WINDOW
        )
    except (GatewayError, GatewayUnknown) as exc:
        log.warning("could not list payments to recheck payment %s: %s", payment.id, exc)
        return 0
    mine = [
        found
        for found in listed
        if found.status == "COMPLETED"
        and found.reference_id == payment.link.public_id
        and found.amount_cents == payment.amount_cents
    ]
    held = set(
        session.scalars(
            select(Payment.gateway_payment_id).where(
                Payment.gateway_payment_id.in_([found.payment_id for found in mine])
            )
        )
    )
    for found in mine:
        if found.payment_id not in held:
            if _settle_completed(session, payment, found, actor="system"):
                _record_reconciled(session, payment, "a charge recorded as voided had gone through")
            return 1
    return 0


def _reconcile_one(session: Session, gateway: Gateway, payment: Payment, max_declines: int) -> str:
    try:
        result = gateway.create_payment(charge_request(payment))
    except GatewayDeclined as declined:
        if declined.code in UNPROVEN_ON_RESEND:
            return _still_unknown(session, payment, f"re-sent request answered {declined.code}")
        _settle_declined(session, payment, declined, max_declines)
        _record_reconciled(session, payment, f"declined ({declined.code}); nothing was charged")
        return "declined"
    except GatewayUnknown as unknown:
        if unknown.result is not None and unknown.result.status == "APPROVED":
            return _void_uncaptured(session, gateway, payment, unknown.result)
        return _still_unknown(session, payment, f"no answer from the gateway ({unknown})")
    except GatewayError as error:
        return _still_unknown(session, payment, f"{error.category}/{error.code}")
    if _settle_completed(session, payment, result, actor="system"):
        _record_reconciled(session, payment, "the charge had gone through; payment added")
    return "paid"


def _void_uncaptured(session, gateway: Gateway, payment: Payment, approved: ChargeResult) -> str:
    """Void an authorized-but-not-captured charge, then believe only a read of the payment."""
    try:
        gateway.cancel_by_idempotency_key(payment.idempotency_key)
        current = gateway.get_payment(approved.payment_id)
    except (GatewayError, GatewayUnknown) as exc:
        return _still_unknown(session, payment, f"could not void the authorization ({exc})")
    if current.status == "COMPLETED":
        if _settle_completed(session, payment, current, actor="system"):
            _record_reconciled(session, payment, "the charge had gone through; payment added")
        return "paid"
    if current.status != "CANCELED":
        return _still_unknown(session, payment, f"authorization is {current.status}")
    payment.status = PaymentStatus.CANCELLED
    payment.gateway_payment_id = current.payment_id
    payment.gateway_updated_at = current.updated_at
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id, PaymentLink.claim_key == payment.idempotency_key)
        .values(claim_key=None, claimed_at=None)
    )
    _record_reconciled(session, payment, "the authorization was voided; link open again")
    return "reopened"


def _record_reconciled(session, payment: Payment, detail: str) -> None:
    audit.record(session, AuditAction.PAYMENT_RECONCILED, link_id=payment.link_id, detail=detail)
    session.commit()


def _still_unknown(session, payment: Payment, why: str) -> str:
    """Keep the attempt unknown and its link claimed; tell staff once per attempt."""
    log.warning("payment %s is still unknown: %s", payment.id, why)
    payment.status = PaymentStatus.UNKNOWN
    detail = f"attempt {payment.id}: {why}"
    already = session.scalar(
        select(AuditEvent.id).where(
            AuditEvent.action == AuditAction.PAYMENT_UNRESOLVED,
            AuditEvent.link_id == payment.link_id,
            AuditEvent.detail.startswith(f"attempt {payment.id}:"),
        )
    )
    if already is None:
        audit.record(
            session, AuditAction.PAYMENT_UNRESOLVED, link_id=payment.link_id, detail=detail
        )
    session.commit()
    return "still_unknown"


def apply_gateway_payment(session: Session, result: ChargeResult) -> str:
    """Bring local state up to date with the gateway's view of a payment (webhooks).

    Matches by gateway payment id; otherwise by the link's public id (Square's reference_id)
    over that link's attempts that Square never named a payment for, the amount confirming it.
    An unresolved attempt is preferred; a COMPLETED payment may also match an attempt recorded
    cancelled or failed (a charge that went through after all): it becomes completed, and if the
    link was meanwhile paid by another attempt, staff are alerted to refund one. Older news than
    what we hold changes nothing.
    """
    payment = session.scalar(select(Payment).where(Payment.gateway_payment_id == result.payment_id))
    if payment is None and result.reference_id:
        payment = _attempt_for(session, result)
    if payment is None:
        return "unknown_payment"
    if is_stale(result.updated_at, payment.gateway_updated_at):
        return "stale"
    if result.status == "COMPLETED" and payment.status != PaymentStatus.COMPLETED:
        _settle_completed(session, payment, result, actor="square")
        return "completed"
    if result.status in ("CANCELED", "FAILED") and payment.status in (
        PaymentStatus.UNKNOWN,
        PaymentStatus.PENDING,
    ):
        payment.status = (
            PaymentStatus.CANCELLED if result.status == "CANCELED" else PaymentStatus.FAILED
        )
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
