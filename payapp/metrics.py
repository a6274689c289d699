"""The dashboard's figures, each one SQL aggregate over indexed columns (docs/front-desk.md,
"The dashboard"). Nothing here loads rows into Python: every function returns counts and sums.

A period is a run of whole days in the clinic's time zone; its ends are local midnights turned
into UTC with zoneinfo, so a day with a DST change is 23 or 25 hours long.

What each figure counts:
- funnel (created, sent, opened, attempted, paid) and the completion rate: the links *created*
  in the period; completion = paid / (created - cancelled);
- collected: completed payments completed in the period minus refunds (completed or pending at
  the processor) made in the period, whichever payment they return;
- outstanding: open links not yet expired, now (not tied to the period);
- time to pay: links paid in the period, from their first sent message to payment; median and
  90th percentile by nearest rank (the value at rank ceil(p * n));
- first-attempt success: first payment attempts of a link made in the period, completed now;
- declines by reason and unknown outcomes: attempts made in the period;
- expired unpaid: links whose expiry fell in the period (up to now) and were never paid;
- open problem reports: not resolved, now.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from .decline_reasons import describe_code
from .models import Payment, PaymentLink, ProblemReport, Refund
from .states import LinkStatus, PaymentStatus, RefundStatus

PRESETS = {"today": 1, "7": 7, "30": 30, "90": 90}
MAX_DAYS = 366
# Refunds that take money back out of what was collected (the processor has or will return it).
COLLECTED_REFUND_STATES = (RefundStatus.COMPLETED, RefundStatus.PENDING)


class PeriodError(ValueError):
    """A period staff asked for that cannot be shown (bad dates, reversed, too long)."""


@dataclass(frozen=True)
class Period:
    """Whole clinic-local days ``first`` .. ``last`` (inclusive) in time zone ``tz``."""

    first: date
    last: date
    tz: str

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def midnight(self, day: date) -> datetime:
        """The local midnight starting ``day``, in UTC."""
        return datetime.combine(day, time(0), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.midnight(self.first)

    @property
    def end(self) -> datetime:
        return self.midnight(self.last + timedelta(days=1))


def period_for(
    choice: str, now: datetime, tz: str, first: str = "", last: str = ""
) -> tuple[str, Period]:
    """The period for a preset ("today", "7", "30", "90": that many days ending today) or
    "custom" with ISO dates ``first``..``last``. Returns the choice actually used (an unknown
    preset falls back to "30") and the period; raises PeriodError for bad custom dates."""
    today = now.astimezone(ZoneInfo(tz)).date()
    if choice == "custom":
        try:
            start, end = date.fromisoformat(first), date.fromisoformat(last)
        except ValueError:
            raise PeriodError("Enter both dates as YYYY-MM-DD.") from None
        if end < start:
            raise PeriodError("The first day must not be after the last.")
        if (end - start).days + 1 > MAX_DAYS:
            raise PeriodError(f"Choose at most {MAX_DAYS} days.")
        return "custom", Period(start, end, tz)
    if choice not in PRESETS:
        choice = "30"
    return choice, Period(today - timedelta(days=PRESETS[choice] - 1), today, tz)


@dataclass
class Funnel:
    created: int = 0
    sent: int = 0
    opened: int = 0
    attempted: int = 0
    paid: int = 0
    cancelled: int = 0

    def steps(self) -> list[tuple[str, int, float | None]]:
        """(label, count, share of created) in funnel order."""
        rows = [
            ("Created", self.created),
            ("Sent", self.sent),
            ("Opened", self.opened),
            ("Tried to pay", self.attempted),
            ("Paid", self.paid),
        ]
        return [(label, n, ratio(n, self.created)) for label, n in rows]

    @property
    def completion_rate(self) -> float | None:
        return ratio(self.paid, self.created - self.cancelled)


@dataclass
class DayTotal:
    day: date
    count: int
    cents: int


@dataclass
class Dashboard:
    period: Period
    funnel: Funnel
    paid_cents: int
    refunded_cents: int
    outstanding_count: int
    outstanding_cents: int
    time_to_pay_count: int
    median_seconds: int | None
    p90_seconds: int | None
    first_attempts: int
    first_attempt_successes: int
    declines: list[tuple[str, int]] = field(default_factory=list)
    unknown_outcomes: int = 0
    expired_unpaid: int = 0
    open_problem_reports: int = 0
    trend: list[DayTotal] = field(default_factory=list)

    @property
    def collected_cents(self) -> int:
        return self.paid_cents - self.refunded_cents

    @property
    def completion_rate(self) -> float | None:
        return self.funnel.completion_rate

    @property
    def first_attempt_rate(self) -> float | None:
        return ratio(self.first_attempt_successes, self.first_attempts)

    @property
    def declines_total(self) -> int:
        return sum(n for _, n in self.declines)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _in(column, period: Period):
    return and_(column >= period.start, column < period.end)


def funnel(session: Session, period: Period) -> Funnel:
    """Counts of the links created in the period that reached each step."""
    link = PaymentLink
    row = session.execute(
        select(
            func.count(),
            func.count(link.sent_at),
            func.count(link.first_viewed_at),
            func.count(link.paid_at),
            func.coalesce(func.sum(case((link.status == LinkStatus.CANCELLED, 1), else_=0)), 0),
        ).where(_in(link.created_at, period))
    ).one()
    attempted = session.scalar(
        select(func.count(func.distinct(Payment.link_id)))
        .join(link, link.id == Payment.link_id)
        .where(_in(link.created_at, period))
    )
    return Funnel(row[0], row[1], row[2], attempted or 0, row[3], row[4])


def _seconds_between(session: Session, later, earlier):
    if session.get_bind().dialect.name == "sqlite":
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400)
    return func.round(func.extract("epoch", later - earlier))


def time_to_pay(session: Session, period: Period) -> tuple[int, int | None, int | None]:
    """(n, median, p90) seconds from a link's first sent message to its payment, for the links
    paid in the period; percentiles by nearest rank, found with ORDER BY ... LIMIT 1 OFFSET."""
    link = PaymentLink
    secs = _seconds_between(session, link.paid_at, link.first_sent_at)
    known = (
        _in(link.paid_at, period),
        link.first_sent_at.is_not(None),
        link.first_sent_at <= link.paid_at,
    )
    n = session.scalar(select(func.count()).where(*known)) or 0
    if n == 0:
        return 0, None, None

    def nearest_rank(p: float) -> int:
        offset = max(math.ceil(p * n) - 1, 0)
        return int(
            session.scalar(select(secs).where(*known).order_by(secs).limit(1).offset(offset))
        )

    return n, nearest_rank(0.5), nearest_rank(0.9)


def first_attempts(session: Session, period: Period) -> tuple[int, int]:
    """(first attempts made in the period, of which completed)."""
    earlier = aliased(Payment)
    row = session.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(case((Payment.status == PaymentStatus.COMPLETED, 1), else_=0)), 0
            ),
        ).where(
            _in(Payment.created_at, period),
            ~exists().where(earlier.link_id == Payment.link_id, earlier.id < Payment.id),
        )
    ).one()
    return row[0], row[1]


def declines_by_reason(session: Session, period: Period) -> list[tuple[str, int]]:
    """Declined attempts made in the period, in plain words, most frequent first."""
    rows = session.execute(
        select(Payment.error_code, func.count())
        .where(Payment.status == PaymentStatus.FAILED, _in(Payment.created_at, period))
        .group_by(Payment.error_code)
    ).all()
    words: dict[str, int] = {}
    for code, n in rows:
        reason = describe_code(code)
        words[reason] = words.get(reason, 0) + n
    return sorted(words.items(), key=lambda item: (-item[1], item[0]))


def daily_paid(session: Session, period: Period) -> list[DayTotal]:
    """Completed payments per clinic-local day of the period (count, cents).

    Summed per UTC hour in SQL (at most 24 a day), then each hour goes to its local day: every
    local midnight of a zone with whole-hour offsets (all US zones) starts a UTC hour. Other
    zones are bucketed by a CASE over the day boundaries instead."""
    days = period.days
    where = (Payment.status == PaymentStatus.COMPLETED, _in(Payment.completed_at, period))
    midnights = [period.midnight(d) for d in days]
    totals = [[0, 0] for _ in days]
    if all(m.minute == 0 and m.second == 0 for m in midnights):
        if session.get_bind().dialect.name == "sqlite":
            hour = func.substr(Payment.completed_at, 1, 13)
        else:
            hour = func.to_char(Payment.completed_at, "YYYY-MM-DD HH24")
        rows = session.execute(
            select(hour, func.count(), func.sum(Payment.amount_cents)).where(*where).group_by(hour)
        ).all()
        for text, n, cents in rows:
            start = datetime.strptime(str(text)[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
            i = bisect.bisect_right(midnights, start) - 1
            totals[i][0] += n
            totals[i][1] += int(cents or 0)
    else:
        bucket = case(
            *[
                (Payment.completed_at >= m, literal(i))
                for i, m in reversed(list(enumerate(midnights)))
            ],
            else_=literal(-1),
        )
        for i, n, cents in session.execute(
            select(bucket, func.count(), func.sum(Payment.amount_cents))
            .where(*where)
            .group_by(bucket)
        ).all():
            totals[int(i)] = [n, int(cents or 0)]
    return [DayTotal(d, n, cents) for d, (n, cents) in zip(days, totals, strict=True)]


def dashboard(session: Session, period: Period, now: datetime) -> Dashboard:
    """Every figure of the dashboard for ``period``, as of ``now``."""
    paid_cents = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.status == PaymentStatus.COMPLETED, _in(Payment.completed_at, period)
        )
    )
    refunded_cents = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.status.in_(COLLECTED_REFUND_STATES), _in(Refund.created_at, period)
        )
    )
    outstanding = session.execute(
        select(func.count(), func.coalesce(func.sum(PaymentLink.amount_cents), 0)).where(
            PaymentLink.status == LinkStatus.OPEN, PaymentLink.expires_at > now
        )
    ).one()
    n_waits, median, p90 = time_to_pay(session, period)
    attempts, successes = first_attempts(session, period)
    unknown = session.scalar(
        select(func.count()).where(
            Payment.status == PaymentStatus.UNKNOWN, _in(Payment.created_at, period)
        )
    )
    expired_unpaid = session.scalar(
        select(func.count()).where(
            PaymentLink.expires_at >= period.start,
            PaymentLink.expires_at < min(period.end, now),
            PaymentLink.paid_at.is_(None),
            PaymentLink.status.in_((LinkStatus.OPEN, LinkStatus.EXPIRED)),
        )
    )
    problems = session.scalar(
        select(func.count()).select_from(ProblemReport).where(ProblemReport.resolved_at.is_(None))
    )
    return Dashboard(
        period=period,
        funnel=funnel(session, period),
        paid_cents=int(paid_cents),
        refunded_cents=int(refunded_cents),
        outstanding_count=outstanding[0],
        outstanding_cents=int(outstanding[1]),
        time_to_pay_count=n_waits,
        median_seconds=median,
        p90_seconds=p90,
        first_attempts=attempts,
        first_attempt_successes=successes,
        declines=declines_by_reason(session, period),
        unknown_outcomes=unknown or 0,
        expired_unpaid=expired_unpaid or 0,
        open_problem_reports=problems or 0,
        trend=daily_paid(session, period),
    )
