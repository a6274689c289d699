"""CSV exports for the practice-management system and the accountant: links, and payments with
their refunds, for a range of clinic-local dates.

Streamed: each export is a generator of CSV lines that reads the rows in keyset batches of
``batch_size`` (one short query per batch, ordered by time then id), so a year of data is never
in memory and no cursor stays open while the browser downloads. Every cell goes through
``audit_export.csv_cell`` against formula injection. No description (staff-only, may be
clinical) and no card token are exported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, literal, or_, select
from sqlalchemy.orm import Session

from . import audit
from .audit_export import csv_cell
from .clinic import Clinic
from .models import Payment, PaymentLink, Refund, utcnow
from .money import cents_to_decimal_string
from .payments import card_brand_name
from .plaintext import staff_text
from .states import REFUND_HOLDING_STATES, AuditAction, LinkStatus, PaymentStatus

MAX_DAYS = 366
KINDS = ("links", "payments")

LINK_COLUMNS = (
    "link_id",
    "created",
    "patient_name",
    "email",
    "phone",
    "reference",
    "amount",
    "amount_cents",
    "currency",
    "status",
    "sent",
    "first_opened",
    "paid",
    "expires",
    "reissued_from_link_id",
    # Paying part now (issue 11): what the link's completed charges add up to, and what is left.
    "amount_paid",
    "amount_paid_cents",
    "balance",
    "balance_cents",
)
MONEY_COLUMNS = (
    "type",
    "id",
    "when",
    "link_id",
    "patient_name",
    "reference",
    "amount",
    "amount_cents",
    "currency",
    "status",
    "card",
    "card_last4",
    "receipt_number",
    "square_id",
    "payment_id",
)


class ExportError(ValueError):
    """The date range cannot be exported; the message says why, for staff."""


@dataclass(frozen=True)
class DateRange:
    """Clinic-local dates ``first``..``last`` (both included) and the UTC instants they span."""

    first: date
    last: date
    start: datetime
    end: datetime  # exclusive: midnight after ``last``, clinic time

    @property
    def filename_part(self) -> str:
        return f"{self.first.isoformat()}_to_{self.last.isoformat()}"


def _parse_date(text: str, missing: str, invalid: str) -> date:
    text = (text or "").strip()
    if not text:
        raise ExportError(missing)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportError(staff_text(invalid, text=repr(text[:20]))) from None


def parse_range(first_text: str, last_text: str, clinic: Clinic) -> DateRange:
    """The range staff asked for, checked: both dates, in order, at most MAX_DAYS days.
    Midnights are the clinic's own, daylight saving included."""
    first = _parse_date(
        first_text,
        staff_text("Choose a start date."),
        staff_text(
            "The start date %(text)s is not a date: use year-month-day, for example 2030-03-31."
        ),
    )
    last = _parse_date(
        last_text,
        staff_text("Choose an end date."),
        staff_text(
            "The end date %(text)s is not a date: use year-month-day, for example 2030-03-31."
        ),
    )
    if first > last:
        raise ExportError(staff_text("The start date is after the end date."))
    if (last - first).days + 1 > MAX_DAYS:
        raise ExportError(
            staff_text(
                "Export at most %(max)s days at a time; split a longer period.", max=MAX_DAYS
            )
        )
    zone = ZoneInfo(clinic.timezone)
    start = datetime.combine(first, time(0), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)
    return DateRange(first, last, start, end)


def record_export(session: Session, kind: str, dates: DateRange, *, staff_id: int) -> None:
    """Audit who downloaded what (before the first byte goes out)."""
    audit.record(
        session,
        AuditAction.EXPORT_DOWNLOADED,
        actor="staff",
        staff_id=staff_id,
        detail=f"{kind}, {dates.first.isoformat()} to {dates.last.isoformat()}",
    )
    session.commit()


def _line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_cell(v) for v in values])
    return buffer.getvalue()


def _batches(session: Session, stmt: Select, when, row_id, batch_size: int) -> Iterator:
    """The rows of ``stmt`` ordered by (when, id), read ``batch_size`` at a time by keyset."""
    after = None
    while True:
        page = stmt.order_by(when, row_id).limit(batch_size)
        if after is not None:
            page = page.where(or_(when > after[0], and_(when == after[0], row_id > after[1])))
        rows = session.execute(page).all()
        yield from rows
        if len(rows) < batch_size:
            return
        after = (rows[-1].when, rows[-1].id)


def link_lines(
    session: Session,
    clinic: Clinic,
    dates: DateRange,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
) -> Iterator[str]:
    """CSV lines (header first) of the links created in the range, oldest first."""
    now = now or utcnow()
    local = clinic.local_time
    stmt = select(
        PaymentLink.id,
        PaymentLink.created_at.label("when"),
        PaymentLink.patient_name,
        PaymentLink.email,
        PaymentLink.phone,
        PaymentLink.reference,
        PaymentLink.amount_cents,
        PaymentLink.currency,
        PaymentLink.status,
        PaymentLink.sent_at,
        PaymentLink.first_viewed_at,
        PaymentLink.paid_at,
        PaymentLink.expires_at,
        PaymentLink.reissued_from_id,
        PaymentLink.paid_cents,
    ).where(PaymentLink.created_at >= dates.start, PaymentLink.created_at < dates.end)
    yield _line(LINK_COLUMNS)
    for r in _batches(session, stmt, PaymentLink.created_at, PaymentLink.id, batch_size):
        status = r.status
        if status == LinkStatus.OPEN and now >= r.expires_at:
            status = LinkStatus.EXPIRED
        yield _line(
            (
                r.id,
                local(r.when, "iso"),
                r.patient_name,
                r.email,
                r.phone,
                r.reference,
                cents_to_decimal_string(r.amount_cents),
                r.amount_cents,
                r.currency,
                status,
                local(r.sent_at, "iso"),
                local(r.first_viewed_at, "iso"),
                local(r.paid_at, "iso"),
                local(r.expires_at, "iso"),
                r.reissued_from_id,
                cents_to_decimal_string(r.paid_cents),
                r.paid_cents,
                cents_to_decimal_string(balance := max(0, r.amount_cents - r.paid_cents)),
                balance,
            )
        )


def money_lines(
    session: Session, clinic: Clinic, dates: DateRange, *, batch_size: int = 500
) -> Iterator[str]:
    """CSV lines (header first) of completed payments (by completion time) and of refunds
    Square accepted (by request time) in the range, merged oldest first. Amounts are positive;
    the ``type`` column says which way the money went (a leading minus would read as a formula)."""
    payments = select(
        Payment.id,
        Payment.completed_at.label("when"),
        Payment.link_id,
        PaymentLink.patient_name,
        PaymentLink.reference,
        Payment.amount_cents,
        Payment.currency,
        Payment.status,
        Payment.card_brand,
        Payment.card_last4,
        Payment.receipt_number,
        Payment.gateway_payment_id.label("square_id"),
        literal(None).label("payment_id"),
    ).join(PaymentLink, Payment.link_id == PaymentLink.id)
    payments = payments.where(
        Payment.status == PaymentStatus.COMPLETED,
        Payment.completed_at >= dates.start,
        Payment.completed_at < dates.end,
    )
    refunds = (
        select(
            Refund.id,
            Refund.created_at.label("when"),
            Payment.link_id,
            PaymentLink.patient_name,
            PaymentLink.reference,
            Refund.amount_cents,
            Payment.currency,
            Refund.status,
            Payment.card_brand,
            Payment.card_last4,
            Payment.receipt_number,
            Refund.gateway_refund_id.label("square_id"),
            Refund.payment_id,
        )
        .join(Payment, Refund.payment_id == Payment.id)
        .join(PaymentLink, Payment.link_id == PaymentLink.id)
        .where(
            Refund.status.in_(REFUND_HOLDING_STATES),
            Refund.created_at >= dates.start,
            Refund.created_at < dates.end,
        )
    )
    streams = [
        ("payment", _batches(session, payments, Payment.completed_at, Payment.id, batch_size)),
        ("refund", _batches(session, refunds, Refund.created_at, Refund.id, batch_size)),
    ]
    yield _line(MONEY_COLUMNS)
    heads = {kind: next(rows, None) for kind, rows in streams}
    iterators = dict(streams)
    while any(heads.values()):
        kind = min((k for k in heads if heads[k]), key=lambda k: (heads[k].when, k))
        r = heads[kind]
        heads[kind] = next(iterators[kind], None)
        yield _line(
            (
                kind,
                r.id,
                clinic.local_time(r.when, "iso"),
                r.link_id,
                r.patient_name,
                r.reference,
                cents_to_decimal_string(r.amount_cents),
                r.amount_cents,
                r.currency,
                r.status,
                card_brand_name(r.card_brand) if r.card_brand else "",
                r.card_last4,
                r.receipt_number,
                r.square_id,
                r.payment_id,
            )
        )
