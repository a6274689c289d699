"""Refunds: all or part of a completed payment, idempotent, never more than was charged."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .gateways import (
    Gateway,
    GatewayError,
    GatewayUnknown,
    RefundRequest,
    RefundResult,
    is_stale,
)
from .models import Payment, PaymentLink, Refund, StaffUser, utcnow
from .money import format_cents
from .plaintext import LINE_BREAKS, has_invisible_characters, invisible_message, staff_text
from .states import (
    LINK_PAID_STATES,
    REFUND_HOLDING_STATES,
    AuditAction,
    LinkStatus,
    PaymentStatus,
    RefundStatus,
)

log = logging.getLogger(__name__)

REASON_MAX = 192  # Square's RefundPaymentRequest.reason limit
# session.info key: refunds that completed in this session, for notify to tell the patient about
# once committed (a pending refund may still be rejected: the patient hears when it is done).
NOTICES_DUE = "payapp.refund_notices_due"


class RefundError(Exception):
    """A refund cannot be made as asked; the message says why, for staff."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code


def can_refund(user: StaffUser | None) -> bool:
    return user is not None and (user.role == "admin" or user.can_refund)


def refund_key_for(payment: Payment, request_key: str) -> str:
    """One key per refund form submission, so a double click makes one refund."""
    return hashlib.sha256(f"refund:{payment.id}:{request_key}".encode()).hexdigest()[:40]


def refund_payment(
    session: Session,
    gateway: Gateway,
    payment: Payment,
    *,
    amount_cents: int,
    reason: str,
    staff_id: int,
    request_key: str,
    now: datetime | None = None,
) -> Refund:
    """Refund part or all of a completed payment through the gateway (committed)."""
    now = now or utcnow()
    if has_invisible_characters(reason or "", allow=LINE_BREAKS):
        raise RefundError(invisible_message("reason"))
    reason = " ".join((reason or "").split())
    if not reason:
        raise RefundError(
            staff_text("Give a short reason for the refund (the patient does not see it).")
        )
    if len(reason) > REASON_MAX:
        raise RefundError(
            staff_text("The reason can be at most %(max)s characters.", max=REASON_MAX)
        )
    if not request_key or len(request_key) > 64:
        raise RefundError(staff_text("This form is out of date. Reload the page and try again."))
    key = refund_key_for(payment, request_key)
    existing = session.scalar(select(Refund).where(Refund.idempotency_key == key))
    if existing is not None:
        return existing  # the same submission again (double click): one refund
    if payment.status != PaymentStatus.COMPLETED:
        raise RefundError(staff_text("Only a completed payment can be refunded."))
    if amount_cents <= 0:
        raise RefundError(staff_text("Enter an amount above zero."))
    if amount_cents > payment.refundable_cents:
        raise RefundError(
            staff_text(
                "You can refund at most %(amount)s of this payment (%(refunded)s already "
                "refunded).",
                amount=format_cents(payment.refundable_cents, payment.currency),
                refunded=format_cents(payment.refunded_cents, payment.currency),
            )
        )
    # Reserve the amount with a conditional update, so two refunds at once cannot over-refund.
    reserved = session.execute(
        update(Payment)
        .where(
            Payment.id == payment.id, Payment.refunded_cents + amount_cents <= Payment.amount_cents
        )
        .values(refunded_cents=Payment.refunded_cents + amount_cents)
    ).rowcount
    if not reserved:
        session.rollback()
        raise RefundError(
            staff_text("Another refund just changed this payment. Reload and check the amount.")
        )
    refund = Refund(
        payment_id=payment.id,
        idempotency_key=key,
        amount_cents=amount_cents,
        reason=reason,
        status=RefundStatus.PENDING,
        created_by_id=staff_id,
        created_at=now,
    )
    session.add(refund)
    audit.record(
        session,
        AuditAction.REFUND_REQUESTED,
        actor="staff",
        staff_id=staff_id,
        link_id=payment.link_id,
        detail=f"{format_cents(amount_cents, payment.currency)}: {reason}",
        when=now,
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.scalar(select(Refund).where(Refund.idempotency_key == key))
        if existing is None:
            raise
        return existing
    session.refresh(payment)
    return send_refund(session, gateway, refund)


def send_refund(session: Session, gateway: Gateway, refund: Refund) -> Refund:
    """Send a stored refund (again, with the same key if it is being reconciled)."""
    payment = refund.payment
    request = RefundRequest(
        idempotency_key=refund.idempotency_key,
        payment_id=payment.gateway_payment_id or "",
        amount_cents=refund.amount_cents,
        currency=payment.currency,
        reason=refund.reason,
    )
    try:
        result = gateway.refund(request)
    except GatewayUnknown:
        refund.status = RefundStatus.UNKNOWN
        session.commit()
        raise RefundError(
            staff_text(
                "No answer from the payment processor. The refund will be confirmed "
                "automatically within a few minutes; don't refund again."
            )
        ) from None
    except GatewayError as error:
        _release(session, refund, RefundStatus.FAILED)
        audit.record(
            session,
            AuditAction.REFUND_FAILED,
            link_id=payment.link_id,
            detail=f"{error.category}/{error.code}",
        )
        session.commit()
        raise RefundError(_refund_error_message(error), error.code) from None
    _apply_result(session, refund, result)
    audit.record(
        session,
        AuditAction.REFUND_CREATED,
        link_id=payment.link_id,
        staff_id=refund.created_by_id,
        actor="staff" if refund.created_by_id else "square",
        detail=f"{format_cents(refund.amount_cents, payment.currency)}, {result.status.lower()}",
    )
    session.commit()
    if refund.status == RefundStatus.COMPLETED:
        session.info.setdefault(NOTICES_DUE, []).append(refund.id)
    return refund


def _refund_error_message(error: GatewayError) -> str:
    if error.code == "REFUND_AMOUNT_INVALID":
        return staff_text(
            "The payment processor refused the amount: it is more than can still be refunded."
        )
    if error.category == "AUTHENTICATION_ERROR":
        return staff_text(
            "The payment processor rejected payapp's credentials; ask your administrator."
        )
    return staff_text(
        "The payment processor refused the refund (%(code)s). Nothing was refunded.",
        code=str(error.code),
    )


def _release(session: Session, refund: Refund, status: str) -> None:
    """A refund that will not happen gives its amount back to what can be refunded."""
    if refund.status in REFUND_HOLDING_STATES:
        session.execute(
            update(Payment)
            .where(Payment.id == refund.payment_id)
            .values(refunded_cents=Payment.refunded_cents - refund.amount_cents)
        )
    refund.status = status


def _apply_result(session: Session, refund: Refund, result: RefundResult) -> None:
    refund.gateway_refund_id = result.refund_id
    refund.gateway_updated_at = result.updated_at
    # Square's refund statuses (PENDING, COMPLETED, REJECTED, FAILED) are ours in lower case.
    status = result.status.lower()
    if status in (RefundStatus.FAILED, RefundStatus.REJECTED):
        _release(session, refund, status)
    else:
        refund.status = status
    session.flush()
    _update_link_status(session, refund.payment)


def _update_link_status(session: Session, payment: Payment) -> None:
    """A paid link's state from all its completed charges: refunded when every cent of them is,
    partly when some of the bill is (refunding only what a link paid twice took beyond its amount
    leaves it paid). A link still open for a balance (paid in part) stays open: a refund
    never reopens or closes a balance (the front desk sends a new link if it is owed again)."""
    session.refresh(payment)
    charges = (
        select(
            func.coalesce(func.sum(Payment.amount_cents), 0),
            func.coalesce(func.sum(Payment.refunded_cents), 0),
        )
        .where(Payment.link_id == payment.link_id, Payment.status == PaymentStatus.COMPLETED)
        .subquery()
    )
    paid, refunded = charges.c
    session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == payment.link_id, PaymentLink.status.in_(LINK_PAID_STATES))
        .values(
            status=select(
                case(
                    (refunded <= 0, LinkStatus.PAID.value),
                    # Only an excess went back (a link paid twice): the bill is still paid.
                    (paid - refunded >= PaymentLink.amount_cents, LinkStatus.PAID.value),
                    (refunded >= paid, LinkStatus.REFUNDED.value),
                    else_=LinkStatus.PARTIALLY_REFUNDED.value,
                )
            ).scalar_subquery()
        )
    )


def apply_gateway_refund(session: Session, result: RefundResult) -> str:
    """Bring local state up to date with the gateway's view of a refund (webhooks). A refund
    made in Square's own dashboard appears here for the first time."""
    refund = session.scalar(select(Refund).where(Refund.gateway_refund_id == result.refund_id))
    # The patient hears of a refund once: when Square first tells us it completed.
    was_completed = refund is not None and refund.status == RefundStatus.COMPLETED
    if refund is None:
        payment = session.scalar(
            select(Payment).where(Payment.gateway_payment_id == result.payment_id)
        )
        if payment is None:
            return "unknown_payment"
        refund = Refund(
            payment_id=payment.id,
            idempotency_key="square:" + result.refund_id[:38],
            amount_cents=result.amount_cents,
            reason=result.reason[:REASON_MAX],
            status=RefundStatus.PENDING,
            created_by_id=None,
        )
        session.add(refund)
        session.execute(
            update(Payment)
            .where(Payment.id == payment.id)
            .values(refunded_cents=Payment.refunded_cents + result.amount_cents)
        )
        session.flush()
        audit.record(
            session,
            AuditAction.REFUND_CREATED,
            actor="square",
            link_id=payment.link_id,
            detail=f"{format_cents(result.amount_cents, payment.currency)}, "
            "made in Square's dashboard",
        )
    elif is_stale(result.updated_at, refund.gateway_updated_at):
        return "stale"
    _apply_result(session, refund, result)
    session.commit()
    if not was_completed and refund.status == RefundStatus.COMPLETED:
        session.info.setdefault(NOTICES_DUE, []).append(refund.id)
    return "updated"


def reconcile_unknown_refunds(session: Session, gateway: Gateway) -> int:
    """Re-send refunds that got no answer; the same key makes the gateway return the original."""
    settled = 0
    for refund in session.scalars(
        select(Refund).where(Refund.status == RefundStatus.UNKNOWN)
    ).all():
        try:
            send_refund(session, gateway, refund)
            settled += 1
        except RefundError as exc:
            log.warning("refund %s still unsettled: %s", refund.id, exc.message)
    return settled
