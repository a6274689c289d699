"""The data model (docs/developer.md, "Data model"). Money is integer cents; times are aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .states import LINK_PAID_STATES, LinkStatus, MessageStatus, PaymentStatus, RefundStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (SQLite has no time zones) and always hands back aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class StaffUser(Base):
    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10))  # admin | staff
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    # Admins can always refund; staff only when an admin gives them this permission.
    can_refund: Mapped[bool] = mapped_column(default=False, server_default=false())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # After a few failures each try must wait until this time; after more, locked_at locks the
    # account until an admin clears it (accounts.py).
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by an admin who gives a temporary password: the user picks their own at next login.
    password_must_change: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The TOTP second factor counts as on once confirmed with a code; totp_secret alone may be an
    # enrolment in progress.
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The time step of the last TOTP code accepted: that code and older ones are refused.
    totp_last_counter: Mapped[int | None] = mapped_column(Integer)
    # SHA-256 digests of the unused recovery codes, one a line (mfa.py).
    recovery_codes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Kept in each session at login; bumping it ends every session of this user.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def mfa_enabled(self) -> bool:
        return self.mfa_enabled_at is not None and bool(self.totp_secret)


# The staff search's full-text index (migration 0013) is no model: on SQLite an FTS5 table with
# its shadow tables, kept by triggers; on PostgreSQL a trigram index on an expression.
LINK_SEARCH_OBJECTS = ("payment_link_search", "ix_payment_link_search_trgm")


def described_by_models(name: str | None, type_: str, parent_names) -> bool:
    """Alembic's ``include_name``: every schema object except the search index's."""
    return not (name and type_ in ("table", "index") and name.startswith(LINK_SEARCH_OBJECTS))


class PaymentLink(Base):
    __tablename__ = "payment_link"
    # The dashboard's filters (metrics.py, migration 0006).
    __table_args__ = (
        Index(
            "ix_payment_link_created_funnel",
            "created_at",
            "status",
            "sent_at",
            "first_viewed_at",
            "paid_at",
        ),
        Index("ix_payment_link_paid_at", "paid_at", "first_sent_at"),
        Index("ix_payment_link_expires_at", "expires_at", "status"),
        # Outstanding and today's expiries are counted live, from this index alone (0012, 0019).
        Index(
            "ix_payment_link_status_expires",
            "status",
            "expires_at",
            "paid_at",
            "amount_cents",
            "paid_cents",
        ),
        # The staff list's order, within a status or over all (links.py, migration 0013).
        Index("ix_payment_link_status_created", "status", "created_at", "id", "expires_at"),
        Index("ix_payment_link_created_id", "created_at", "id"),
        # Pay by statement number (lookup.py, migration 0016): the typed number, any case.
        Index("ix_payment_link_reference_lower", text("lower(reference)"), "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    patient_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    reference: Mapped[str] = mapped_column(String(40), default="")
    description: Mapped[str] = mapped_column(String(200), default="")  # staff-only, never sent
    status: Mapped[str] = mapped_column(String(20), default=LinkStatus.OPEN.value, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The first time a message went out (sent_at is the latest): the dashboard's time to pay.
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decline_count: Mapped[int] = mapped_column(Integer, default=0)
    # Set while a charge is in flight: the conditional update on it stops a second charge.
    claim_key: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reissued_from_id: Mapped[int | None] = mapped_column(ForeignKey("payment_link.id"))
    # Reminders (reminders.py): claimed by one conditional UPDATE on these two before sending.
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when the patient or staff stopped reminders for this link.
    reminders_stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the patient reads the pay page in (states.Language; migration 0018).
    language: Mapped[str] = mapped_column(String(2), server_default="en")
    # The patient's 5-digit ZIP code, optional: /pay finds the link by statement number and
    # ZIP as well as by last name (lookup.py; migration 0021).
    postal_code: Mapped[str | None] = mapped_column(String(10))
    # Paying part now (migration 0019): the smallest part the patient may pay (NULL: only the
    # whole balance), and the sum of the completed charges (added in the settling UPDATE; a
    # refund leaves it, so a refunded part is never owed again on this link).
    min_payment_cents: Mapped[int | None] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(Integer, server_default="0")

    created_by: Mapped[StaffUser | None] = relationship()
    payments: Mapped[list[Payment]] = relationship(
        back_populates="link", order_by="Payment.id", lazy="selectin"
    )
    # Loaded when read (only the staff link page does): every other page that loads a link,
    # the patient's above all, would pay a query for rows it never shows.
    messages: Mapped[list[Message]] = relationship(order_by="Message.id", lazy="select")

    @property
    def first_name(self) -> str:
        parts = self.patient_name.split()
        return parts[0] if parts else ""

    @property
    def balance_cents(self) -> int:
        """What is left to pay (never below zero: a link paid twice holds more)."""
        return max(0, self.amount_cents - (self.paid_cents or 0))

    @property
    def part_paid(self) -> bool:
        """Open with some of it paid: the pages say what is left."""
        return self.status == LinkStatus.OPEN and (self.paid_cents or 0) > 0

    def balance_after(self, payment: Payment) -> int:
        """What was left to pay once this completed payment was in (its receipt says so)."""
        upto = sum(
            p.amount_cents
            for p in self.payments
            if p.status == PaymentStatus.COMPLETED
            and (p.completed_at or p.created_at, p.id)
            <= (payment.completed_at or payment.created_at, payment.id)
        )
        return max(0, self.amount_cents - upto)

    @property
    def completed_payment(self) -> Payment | None:
        """The charge that completed the link (its receipt is the paid page): the only one, the
        last part of one paid in parts, the first of one paid twice that still holds money."""
        # A link becomes paid in the transaction of its last payment (payments._settle_completed):
        # an unpaid link's page need not load its payments.
        if self.status not in LINK_PAID_STATES:
            return None
        done = sorted(
            (p for p in self.payments if p.status == PaymentStatus.COMPLETED),
            key=lambda p: (p.completed_at or p.created_at, p.id),
        )
        # First by what each still holds (a link paid twice whose first charge was refunded
        # shows the one kept), then by what each took (a refunded link shows its refund).
        for held in (lambda p: p.refundable_cents, lambda p: p.amount_cents):
            total = 0
            for payment in done:
                total += held(payment)
                if total >= self.amount_cents:
                    return payment
        return done[-1] if done else None


class Payment(Base):
    __tablename__ = "payment"
    __table_args__ = (
        Index("ix_payment_status_completed", "status", "completed_at", "amount_cents"),
        Index("ix_payment_status_created", "status", "created_at", "error_code"),
        Index("ix_payment_created_at", "created_at"),
        # A day's first attempts for the dashboard rollup, from the index alone (0012).
        Index("ix_payment_created_link", "created_at", "link_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("payment_link.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(45), unique=True)
    gateway: Mapped[str] = mapped_column(String(10))  # demo | square
    # Square's documented maximum lengths (its refund ids are longer than 64 characters).
    gateway_payment_id: Mapped[str | None] = mapped_column(String(192), index=True)
    # PaymentStatus: pending -> completed | failed | unknown ; unknown -> ... | cancelled
    status: Mapped[str] = mapped_column(String(12), default=PaymentStatus.PENDING.value, index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    # Kept so an unknown outcome can be resolved by re-sending the identical request.
    source_id: Mapped[str] = mapped_column(String(255))
    postal_code: Mapped[str] = mapped_column(String(12), default="")
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    # states.Wallet when an Apple Pay / Google Pay button made the token (0020), for the receipt.
    wallet: Mapped[str | None] = mapped_column(String(16))
    avs_status: Mapped[str | None] = mapped_column(String(32))
    cvv_status: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    receipt_number: Mapped[str | None] = mapped_column(String(32))
    receipt_url: Mapped[str | None] = mapped_column(String(500))
    # Sum of refunds not failed; the conditional update on it keeps refunds within the charge.
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The gateway's updated_at of the state we hold: webhooks older than this change nothing.
    gateway_updated_at: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    link: Mapped[PaymentLink] = relationship(back_populates="payments")
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="payment", order_by="Refund.id", lazy="selectin"
    )

    @property
    def refundable_cents(self) -> int:
        return self.amount_cents - self.refunded_cents


class Refund(Base):
    __tablename__ = "refund"
    __table_args__ = (Index("ix_refund_created_at", "created_at", "status", "amount_cents"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payment.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(45), unique=True)
    gateway_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(192), default="")
    # pending -> completed | failed | rejected ; unknown while the gateway has not answered
    status: Mapped[str] = mapped_column(String(12), default=RefundStatus.PENDING.value)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    gateway_updated_at: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    created_by: Mapped[StaffUser | None] = relationship()


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (Index("ix_message_link_sent", "link_id", "status", "sent_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("payment_link.id"), index=True)
    channel: Mapped[str] = mapped_column(String(5))  # email | sms
    kind: Mapped[str] = mapped_column(
        String(8), default="link", server_default="link"
    )  # link | reminder | receipt | refund
    recipient: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(8), default=MessageStatus.QUEUED.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Texts sent through Twilio: its message id (SM...), what its status callbacks last said
    # (sent, delivered, undelivered, failed) and the error code they gave.
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(8))
    # Receipts and refund notices: the payment or refund they are for, and when run-jobs tries
    # a failed one again (NULL: it will not be retried).
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"))
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class SmsOptOut(Base):
    """A mobile number (E.164) that replied STOP: nothing is texted to it until it replies START."""

    __tablename__ = "sms_opt_out"

    phone: Mapped[str] = mapped_column(String(16), primary_key=True)
    keyword: Mapped[str] = mapped_column(String(16))
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ProblemReport(Base):
    __tablename__ = "problem_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_link.id"), index=True)
    category: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    callback_phone: Mapped[str | None] = mapped_column(String(32))  # E.164, as the patient gave it
    note: Mapped[str] = mapped_column(String(1000), default="", server_default="")

    link: Mapped[PaymentLink | None] = relationship()
    resolved_by: Mapped[StaffUser | None] = relationship()


class LinkRequest(Base):
    """A patient's "Send me a new link" on an expired or locked link: a front-desk task."""

    __tablename__ = "link_request"
    # At most one open request per link, kept by the database (a second insert fails).
    __table_args__ = (
        Index(
            "uq_link_request_open_link",
            "link_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("payment_link.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    new_link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_link.id"))

    link: Mapped[PaymentLink] = relationship(foreign_keys=[link_id])
    handled_by: Mapped[StaffUser | None] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_event"
    # Every staff page's alert banner reads the newest event of a few actions (alerts.py, 0015).
    __table_args__ = (Index("ix_audit_event_action_created", "action", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(20))  # staff | patient | system | square
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))
    action: Mapped[str] = mapped_column(String(40), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("payment_link.id"), index=True)
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)

    staff: Mapped[StaffUser | None] = relationship(lazy="joined")


class WebhookEvent(Base):
    __tablename__ = "webhook_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CspReport(Base):
    """A Content-Security-Policy violation a browser reported (POST /csp-report)."""

    __tablename__ = "csp_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_uri: Mapped[str] = mapped_column(String(500), default="")
    violated_directive: Mapped[str] = mapped_column(String(200), default="")
    blocked_uri: Mapped[str] = mapped_column(String(500), default="")
    raw: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class SiteSetting(Base):
    """Small per-site values kept by the app itself, e.g. the recorded integrity baseline."""

    __tablename__ = "site_setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FailureSurge(Base):
    """One incident of a failure surge (alerts.py): open from the check that found it until a
    check finds the rate back under its threshold. ``open_kind`` is the kind while open and NULL
    after: its unique constraint lets only one incident per kind be open, however checks race."""

    __tablename__ = "failure_surge"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    open_kind: Mapped[str | None] = mapped_column(String(10), unique=True)
    failures: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    # The usual failure rate (trailing days) and the rate that counts as a surge (x factor).
    baseline_rate: Mapped[float] = mapped_column(Float)
    threshold_rate: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    recovered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_user.id"))


# The dashboard's rollup (metrics.py, "The rollup"; migration 0012). Triggers on payment_link,
# payment and refund mark the UTC hours a write touched in dashboard_dirty; metrics.refresh
# recomputes the clinic-local days overlapping them. The zone the days are in is the site
# setting "dashboard_zone".


class DashboardDirty(Base):
    """A UTC hour ('YYYY-MM-DD HH') whose days need recomputing; ``n`` counts the marks, so a
    refresh deletes the mark only if no write marked it again meanwhile."""

    __tablename__ = "dashboard_dirty"

    hour: Mapped[str] = mapped_column(String(13), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class DashboardDay(Base):
    """Every additive figure of one clinic-local day (metrics.py says what each counts)."""

    __tablename__ = "dashboard_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    created: Mapped[int] = mapped_column(Integer)
    sent: Mapped[int] = mapped_column(Integer)
    opened: Mapped[int] = mapped_column(Integer)
    attempted: Mapped[int] = mapped_column(Integer)
    paid: Mapped[int] = mapped_column(Integer)
    cancelled: Mapped[int] = mapped_column(Integer)
    paid_count: Mapped[int] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(Integer)
    refunded_cents: Mapped[int] = mapped_column(Integer)
    waits: Mapped[int] = mapped_column(Integer)
    first_attempts: Mapped[int] = mapped_column(Integer)
    first_attempt_successes: Mapped[int] = mapped_column(Integer)
    unknown_outcomes: Mapped[int] = mapped_column(Integer)
    # Links expiring that day, unpaid, open or expired: exact once the day is over.
    expired_unpaid: Mapped[int] = mapped_column(Integer)


class DashboardDayDecline(Base):
    __tablename__ = "dashboard_day_decline"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    code: Mapped[str] = mapped_column(String(80), primary_key=True)  # '' for none
    n: Mapped[int] = mapped_column(Integer)


class DashboardDayWait(Base):
    """Time to pay of the links paid that day, counted per coarse bucket (its first minute)."""

    __tablename__ = "dashboard_day_wait"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class DashboardDayWaitMinute(Base):
    """The same per whole minute: read only inside the bucket a percentile falls in."""

    __tablename__ = "dashboard_day_wait_minute"
    __table_args__ = (Index("ix_dashboard_day_wait_minute_minutes", "minutes", "day", "n"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    minutes: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
