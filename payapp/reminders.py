"""Payment reminders: which open links are due one, and claim-then-send (run by run-jobs).

A link gets a reminder ``REMINDER_AFTER_SEND_DAYS`` after it was (last) sent and another
``REMINDER_BEFORE_EXPIRY_DAYS`` before it expires, at most ``REMINDER_MAX``, never two on one
clinic-local day, and only inside the clinic's hours. Payment, cancellation, expiry, a lock or an
opt-out (patient or staff) stop them. Each reminder goes on the channels the link was sent on.

run-jobs runs every minute and two runs may overlap: each reminder is first *claimed* with one
conditional UPDATE on the link's counter, and only the run whose UPDATE changed the row sends.
A reminder whose delivery fails still counts (a Message row says why): a broken address is not
retried every minute.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jinja2
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from . import audit, notify
from .clinic import Clinic
from .models import Message, PaymentLink, utcnow
from .plaintext import patient_text
from .states import AuditAction, LinkStatus, MessageStatus

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPT_OUT_SALT = "payapp.reminder-opt-out.v1"  # noqa: S105 - a salt, not a secret
# The opt-out link in a reminder works a week past the link's expiry: a late reader can still
# say "stop", though nothing is sent after expiry anyway.
OPT_OUT_GRACE = timedelta(days=7)


class ReminderError(Exception):
    """A reminder setting or request that makes no sense; the text is safe to show."""

    @classmethod
    def bad_setting(cls, name: str, value: object, expected: str) -> ReminderError:
        return cls(f"{name} = {value!r} is not valid: expected {expected}.")


class OptOutError(Exception):
    """A reminder opt-out link that cannot be used; the text is safe to show the patient."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def invalid(cls) -> OptOutError:
        return cls("invalid", patient_text("This link to stop reminders is not valid."))

    @classmethod
    def expired(cls) -> OptOutError:
        return cls("expired", patient_text("This link to stop reminders has expired."))


@dataclass(frozen=True)
class Schedule:
    after_send: timedelta
    before_expiry: timedelta
    max_reminders: int
    opens: time
    closes: time
    days: frozenset[int]  # 0 = Monday

    @classmethod
    def from_config(cls, cfg) -> Schedule:
        opens, closes = parse_hours(cfg["CLINIC_HOURS"])
        return cls(
            after_send=timedelta(days=int(cfg["REMINDER_AFTER_SEND_DAYS"])),
            before_expiry=timedelta(days=int(cfg["REMINDER_BEFORE_EXPIRY_DAYS"])),
            max_reminders=int(cfg["REMINDER_MAX"]),
            opens=opens,
            closes=closes,
            days=parse_days(cfg["CLINIC_DAYS"]),
        )


def parse_hours(value: object) -> tuple[time, time]:
    """'08:00-18:00' -> (08:00, 18:00); the clinic is open from the first up to the second."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(value))
    if not match:
        raise ReminderError.bad_setting("CLINIC_HOURS", value, 'a range like "08:00-18:00"')
    h1, m1, h2, m2 = (int(x) for x in match.groups())
    if not (h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60) or (h1, m1) >= (h2, m2):
        raise ReminderError.bad_setting("CLINIC_HOURS", value, "an opening before the closing")
    return time(h1, m1), time(h2, m2)


def parse_days(value: object) -> frozenset[int]:
    """'Mon-Fri', 'Mon-Sat' or 'Mon,Wed,Fri' -> weekday numbers (Monday 0)."""
    days: set[int] = set()
    for part in str(value).lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first[:3] not in DAY_NAMES or (last and last[:3] not in DAY_NAMES):
            raise ReminderError.bad_setting("CLINIC_DAYS", value, 'days like "Mon-Fri"')
        start, end = DAY_NAMES.index(first[:3]), DAY_NAMES.index((last or first)[:3])
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    return frozenset(days)


def within_clinic_hours(now: datetime, schedule: Schedule, clinic: Clinic) -> bool:
    """Whether ``now`` is on an open day and inside opening hours, in the clinic's time zone."""
    local = now.astimezone(ZoneInfo(clinic.timezone))
    return local.weekday() in schedule.days and schedule.opens <= local.time() < schedule.closes


def local_day_start(now: datetime, clinic: Clinic) -> datetime:
    """Midnight of the clinic's current day, as aware UTC (correct across DST changes)."""
    zone = ZoneInfo(clinic.timezone)
    local = now.astimezone(zone)
    return datetime.combine(local.date(), time(0), tzinfo=zone).astimezone(UTC)


def is_due(link: PaymentLink, now: datetime, schedule: Schedule) -> bool:
    """Whether the schedule asks for a reminder now (the stop conditions and the one-a-day rule
    are in ``due_links``' query and the claim)."""
    if link.sent_at is None or link.reminders_sent >= schedule.max_reminders:
        return False
    if link.reminders_sent == 0 and now >= link.sent_at + schedule.after_send:
        return True
    window = link.expires_at - schedule.before_expiry
    # One reminder in the last days, unless the link was sent (or reminded) inside them already.
    latest = max(link.sent_at, link.last_reminder_at or link.sent_at)
    return now >= window and latest < window


def due_links(session: Session, now: datetime, schedule: Schedule, clinic: Clinic) -> list[int]:
    """Ids of the links due a reminder now: open, sent, unexpired, not opted out, under the
    maximum, not reminded today, no charge in flight, and due by the schedule."""
    day_start = local_day_start(now, clinic)
    stmt = (
        select(PaymentLink)
        .where(
            PaymentLink.status == LinkStatus.OPEN,
            PaymentLink.sent_at.is_not(None),
            PaymentLink.expires_at > now,
            PaymentLink.reminders_stopped_at.is_(None),
            PaymentLink.claim_key.is_(None),
            PaymentLink.reminders_sent < schedule.max_reminders,
            or_(PaymentLink.last_reminder_at.is_(None), PaymentLink.last_reminder_at < day_start),
            or_(
                and_(
                    PaymentLink.reminders_sent == 0,
                    PaymentLink.sent_at <= now - schedule.after_send,
                ),
                PaymentLink.expires_at <= now + schedule.before_expiry,
            ),
        )
        .order_by(PaymentLink.id)
    )
    return [link.id for link in session.scalars(stmt) if is_due(link, now, schedule)]


def claim(session: Session, link_id: int, seen: int, now: datetime, clinic: Clinic) -> bool:
    """Take the reminder for this link: one conditional UPDATE, committed. True for the one run
    that changed the row; an overlapping run (or a payment meanwhile) gets False."""
    result = session.execute(
        update(PaymentLink)
        .where(
            PaymentLink.id == link_id,
            PaymentLink.reminders_sent == seen,
            PaymentLink.status == LinkStatus.OPEN,
            PaymentLink.reminders_stopped_at.is_(None),
            or_(
                PaymentLink.last_reminder_at.is_(None),
                PaymentLink.last_reminder_at < local_day_start(now, clinic),
            ),
        )
        .values(reminders_sent=PaymentLink.reminders_sent + 1, last_reminder_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return result.rowcount == 1


def sent_channels(session: Session, link_id: int) -> list[str]:
    """The channels the link itself went out on (not reminders), email first."""
    stmt = select(Message.channel).where(
        Message.link_id == link_id,
        Message.kind == "link",
        Message.status == MessageStatus.SENT,
    )
    found = set(session.scalars(stmt))
    return [c for c in ("email", "sms") if c in found]


def send_due_reminders(
    session: Session,
    templates: jinja2.Environment,
    transports: notify.Transports,
    schedule: Schedule,
    clinic: Clinic,
    url_for_link: Callable[[PaymentLink], str],
    *,
    opt_out_url_for: Callable[[PaymentLink], str] | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """One pass: claim and send every due reminder. Returns counts: sent, failed, skipped
    (claimed by another run meanwhile) and whether the clinic is closed (0/1)."""
    now = now or utcnow()
    counts = {"sent": 0, "failed": 0, "skipped": 0, "closed": 0}
    if not within_clinic_hours(now, schedule, clinic):
        counts["closed"] = 1
        return counts
    ids = due_links(session, now, schedule, clinic)
    session.commit()  # end the read: each claim starts its own write transaction
    for link_id in ids:
        link = session.get(PaymentLink, link_id)
        if link is None or not claim(session, link_id, link.reminders_sent, now, clinic):
            counts["skipped"] += 1
            continue
        session.refresh(link)
        messages = notify.send_reminder(
            session,
            templates,
            transports,
            link,
            url_for_link(link),
            clinic,
            sent_channels(session, link_id),
            number=link.reminders_sent,
            opt_out_url=opt_out_url_for(link) if opt_out_url_for else "",
            now=now,
        )
        ok = any(m.status == MessageStatus.SENT for m in messages)
        counts["sent" if ok else "failed"] += 1
    return counts


def stop_reminders(
    session: Session,
    link: PaymentLink,
    *,
    by_patient: bool,
    staff_id: int | None = None,
    detail: str = "",
) -> bool:
    """Stop reminders for this link (the patient's "Don't remind me" or a staff action).
    Returns False when they were already stopped; recorded on the link's timeline once."""
    now = utcnow()
    result = session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == link.id, PaymentLink.reminders_stopped_at.is_(None))
        .values(reminders_stopped_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.rollback()
        return False
    audit.record(
        session,
        AuditAction.REMINDERS_OPTED_OUT if by_patient else AuditAction.REMINDERS_STOPPED,
        actor="patient" if by_patient else "staff",
        staff_id=staff_id,
        link_id=link.id,
        detail=detail,
        when=now,
    )
    session.commit()
    session.refresh(link)
    return True


# --- the opt-out link inside reminders ------------------------------------------------------------


def sign_opt_out(link: PaymentLink, secret_key: str) -> str:
    """The token of a reminder's "stop reminders" link: the link's random public id and expiry,
    signed with a salt of its own (a pay-page token is not an opt-out token, nor the reverse)."""
    serializer = URLSafeSerializer(secret_key, salt=OPT_OUT_SALT)
    return serializer.dumps([link.public_id, int(link.expires_at.timestamp())])


def opt_out_url(public_base_url: str, link: PaymentLink, secret_key: str) -> str:
    return f"{public_base_url.rstrip('/')}/reminders/stop/{sign_opt_out(link, secret_key)}"


def resolve_opt_out(
    session: Session, token: str, secret_key: str, *, now: datetime | None = None
) -> PaymentLink:
    """The link an opt-out token names; OptOutError.invalid() for anything forged, mangled or
    unknown, OptOutError.expired() once ``OPT_OUT_GRACE`` past the link's expiry."""
    if not token or len(token) > 200:
        raise OptOutError.invalid()
    try:
        public_id, expires_ts = URLSafeSerializer(secret_key, salt=OPT_OUT_SALT).loads(token)
    except (BadData, ValueError, TypeError):
        raise OptOutError.invalid() from None
    if not isinstance(public_id, str) or not isinstance(expires_ts, int):
        raise OptOutError.invalid()
    link = session.scalar(select(PaymentLink).where(PaymentLink.public_id == public_id))
    if link is None or int(link.expires_at.timestamp()) != expires_ts:
        raise OptOutError.invalid()
    # Only the exact spelling we issued (base64 forgives padding and unused bits).
    if not hmac.compare_digest(token.encode(), sign_opt_out(link, secret_key).encode()):
        raise OptOutError.invalid()
    if (now or utcnow()) >= link.expires_at + OPT_OUT_GRACE:
        raise OptOutError.expired()
    return link
