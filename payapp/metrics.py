"""The dashboard's figures, each one SQL aggregate over indexed columns (docs/front-desk.md,
"The dashboard"). Nothing here loads rows into Python: every function returns counts and sums.

A period is a run of whole days in the clinic's time zone; its ends are local midnights turned
into UTC with zoneinfo, so a day with a DST change is 23 or 25 hours long.

What each figure counts:
- funnel (created, sent, opened, attempted, paid) and the completion rate: the links *created*
  in the period; completion = paid / (created - cancelled);
- collected: completed payments completed in the period minus refunds (completed or pending at
  the processor) made in the period, whichever payment they return;
- outstanding: open links not yet expired, now (not tied to the period), by their balance (a
  link paid in part owes the rest); a link counts as paid only once fully paid (paid_at), while
  collected counts every part payment's money;
- time to pay: links paid in the period, from their first sent message to payment; median and
  90th percentile by nearest rank (the value at rank ceil(p * n));
- first-attempt success: first payment attempts of a link made in the period, completed now;
- declines by reason and unknown outcomes: attempts made in the period;
- expired unpaid: links whose expiry fell in the period (up to now) and were never paid;
- open problem reports: not resolved, now.

The rollup: ``dashboard()`` sums one row per clinic-local day (``dashboard_day`` and its decline
and time-to-pay tables) instead of the raw tables, so 90 days cost the same at 1,000,000 links as
at 1,000. Triggers (migration 0012) mark the UTC hour of every timestamp a write to
payment_link, payment or refund touches (old and new values; a payment also marks its link's
creation hour) in ``dashboard_dirty``; ``refresh()``, run first by every ``dashboard()`` and by
``run-jobs``, recomputes the local days overlapping marked hours with the exact one-day queries
of ``live_dashboard()`` and deletes a mark only if its counter did not move meanwhile, so a write
racing a refresh is never lost. Time to pay is kept as a histogram of whole minutes (the page
shows minutes), so its nearest-rank percentiles are exactly the live ones floored to the minute.
Outstanding and open problem reports are "now" figures, counted live; so are the expiries of
today (they happen without a write).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Integer,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from .decline_reasons import describe_code
from .models import (
    DashboardDay,
    DashboardDayDecline,
    DashboardDayWait,
    DashboardDayWaitMinute,
    DashboardDirty,
    Payment,
    PaymentLink,
    ProblemReport,
    Refund,
    SiteSetting,
)
from .plaintext import staff_text
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
            raise PeriodError(staff_text("Enter both dates as YYYY-MM-DD.")) from None
        if end < start:
            raise PeriodError(staff_text("The first day must not be after the last."))
        if (end - start).days + 1 > MAX_DAYS:
            raise PeriodError(staff_text("Choose at most %(max)s days.", max=MAX_DAYS))
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
            (staff_text("Created"), self.created),
            (staff_text("Sent"), self.sent),
            (staff_text("Opened"), self.opened),
            (staff_text("Tried to pay"), self.attempted),
            (staff_text("Paid"), self.paid),
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
    # EXISTS per link: one index probe each, no DISTINCT over every attempt.
    attempted = session.scalar(
        select(func.count()).where(
            _in(link.created_at, period), exists().where(Payment.link_id == link.id)
        )
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


def _expired_unpaid(session: Session, start: datetime, end: datetime) -> int:
    """Links open or expired, never paid, whose expiry fell in [start, end). Counted as all
    minus the paid ones, not "paid_at IS NULL": with that, SQLite's planner picks the paid_at
    index (it takes NULL for a rare value) and reads every unpaid link."""
    if end <= start:
        return 0
    return session.execute(
        select(func.count() - func.count(PaymentLink.paid_at)).where(
            PaymentLink.status.in_((LinkStatus.OPEN, LinkStatus.EXPIRED)),
            PaymentLink.expires_at >= start,
            PaymentLink.expires_at < end,
        )
    ).scalar_one()


def live_dashboard(session: Session, period: Period, now: datetime) -> Dashboard:
    """Every figure of the dashboard for ``period``, as of ``now``, straight from the raw
    tables (the reference the rollup is tested against; cost grows with the period's rows)."""
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
        select(
            func.count(),
            # The balance: a link paid in part owes only the rest (issue 11).
            func.coalesce(func.sum(PaymentLink.amount_cents - PaymentLink.paid_cents), 0),
        ).where(PaymentLink.status == LinkStatus.OPEN, PaymentLink.expires_at > now)
    ).one()
    n_waits, median, p90 = time_to_pay(session, period)
    attempts, successes = first_attempts(session, period)
    unknown = session.scalar(
        select(func.count()).where(
            Payment.status == PaymentStatus.UNKNOWN, _in(Payment.created_at, period)
        )
    )
    expired_unpaid = _expired_unpaid(session, period.start, min(period.end, now))
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


# --- The rollup -------------------------------------------------------------------------------

ZONE_SETTING = "dashboard_zone"
BATCH_DAYS = 3
ROLLUP_TABLES = (DashboardDay, DashboardDayDecline, DashboardDayWait, DashboardDayWaitMinute)
TIMESTAMPS = (
    (PaymentLink, ("created_at", "expires_at", "paid_at")),
    (Payment, ("created_at", "completed_at")),
    (Refund, ("created_at",)),
)


def _bucket_sql(minutes):
    """The coarse time-to-pay bucket (its first minute): minutes under 2 h, hours under 2 days,
    days above; a percentile is found in these, then by the minute inside its one bucket."""
    return case(
        (minutes < 120, minutes),
        (minutes < 2880, minutes // 60 * 60),
        else_=minutes // 1440 * 1440,
    )


def _bucket_width(bucket: int) -> int:
    return 1 if bucket < 120 else 60 if bucket < 2880 else 1440


def _hour_of(session: Session, column):
    if session.get_bind().dialect.name == "sqlite":
        return func.substr(column, 1, 13)
    return func.to_char(column, "YYYY-MM-DD HH24")


def mark_every_hour(session: Session) -> None:
    """Mark every UTC hour holding a timestamp the dashboard counts by (a full rebuild)."""
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as upsert
    else:
        from sqlalchemy.dialects.postgresql import insert as upsert
    for model, columns in TIMESTAMPS:
        for name in columns:
            column = getattr(model, name)
            hour = _hour_of(session, column)
            hours = select(hour, literal(1)).where(column.is_not(None)).group_by(hour)
            session.execute(
                upsert(DashboardDirty)
                .from_select(["hour", "n"], hours)
                .on_conflict_do_update(index_elements=["hour"], set_={"n": DashboardDirty.n + 1})
            )


def _days_of_hour(hour: str, zone: ZoneInfo) -> set[date]:
    start = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=UTC)
    last = start + timedelta(minutes=59, seconds=59, microseconds=999999)
    return {start.astimezone(zone).date(), last.astimezone(zone).date()}


def _recompute_day(session: Session, day: date, tz: str) -> None:
    """Replace the rollup rows of one clinic-local day with the exact one-day figures."""
    period = Period(day, day, tz)
    f = funnel(session, period)
    paid = session.execute(
        select(func.count(), func.coalesce(func.sum(Payment.amount_cents), 0)).where(
            Payment.status == PaymentStatus.COMPLETED, _in(Payment.completed_at, period)
        )
    ).one()
    refunded = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.status.in_(COLLECTED_REFUND_STATES), _in(Refund.created_at, period)
        )
    )
    attempts, successes = first_attempts(session, period)
    unknown = session.scalar(
        select(func.count()).where(
            Payment.status == PaymentStatus.UNKNOWN, _in(Payment.created_at, period)
        )
    )
    expired = _expired_unpaid(session, period.start, period.end)
    declines = session.execute(
        select(Payment.error_code, func.count())
        .where(Payment.status == PaymentStatus.FAILED, _in(Payment.created_at, period))
        .group_by(Payment.error_code)
    ).all()
    link = PaymentLink
    minutes = cast(_seconds_between(session, link.paid_at, link.first_sent_at), Integer) // 60
    wait_filter = (
        _in(link.paid_at, period),
        link.first_sent_at.is_not(None),
        link.first_sent_at <= link.paid_at,
    )
    for model in ROLLUP_TABLES:
        session.execute(delete(model).where(model.day == day))
    # The histograms go from query to table in SQL (thousands of minutes a day at 1 M links).
    fine = DashboardDayWaitMinute
    session.execute(
        insert(fine.__table__).from_select(
            ["day", "minutes", "n"],
            select(literal(day, Date), minutes, func.count()).where(*wait_filter).group_by(minutes),
        )
    )
    bucket = _bucket_sql(fine.minutes)
    session.execute(
        insert(DashboardDayWait.__table__).from_select(
            ["day", "minutes", "n"],
            select(literal(day, Date), bucket, func.sum(fine.n))
            .where(fine.day == day)
            .group_by(bucket),
        )
    )
    n_waits = session.scalar(select(func.coalesce(func.sum(fine.n), 0)).where(fine.day == day))
    session.execute(
        insert(DashboardDay.__table__).values(
            day=day,
            created=f.created,
            sent=f.sent,
            opened=f.opened,
            attempted=f.attempted,
            paid=f.paid,
            cancelled=f.cancelled,
            paid_count=paid[0],
            paid_cents=int(paid[1]),
            refunded_cents=int(refunded or 0),
            waits=int(n_waits),
            first_attempts=attempts,
            first_attempt_successes=successes,
            unknown_outcomes=unknown or 0,
            expired_unpaid=expired or 0,
        )
    )
    if declines:
        session.execute(
            insert(DashboardDayDecline.__table__),
            [{"day": day, "code": code or "", "n": n} for code, n in declines],
        )


def refresh(session: Session, tz: str) -> int:
    """Bring the rollup up to date for time zone ``tz``: recompute every local day that overlaps
    a marked hour (all of them after a time-zone change). Returns the number of days recomputed.
    A few days are replaced in one transaction, a backlog day by day; marks go last, and only
    those no write bumped since they were read."""
    zone = session.get(SiteSetting, ZONE_SETTING)
    if zone is None or zone.value != tz:
        for model in ROLLUP_TABLES:
            session.execute(delete(model))
        mark_every_hour(session)
        if zone is None:
            session.add(SiteSetting(key=ZONE_SETTING, value=tz))
        else:
            zone.value = tz
        try:
            session.commit()
        except IntegrityError:
            # Two first refreshes at once: the other one recorded the zone and the marks.
            session.rollback()
    marks = session.execute(select(DashboardDirty.hour, DashboardDirty.n)).all()
    if not marks:
        return 0
    days: set[date] = set()
    for hour, _ in marks:
        days |= _days_of_hour(hour, ZoneInfo(tz))
    try:
        for day in sorted(days):
            _recompute_day(session, day, tz)
            # A backlog commits day by day, not to hold SQLite's write lock for seconds.
            if len(days) > BATCH_DAYS:
                session.commit()
        session.flush()
    except IntegrityError:
        # PostgreSQL: a concurrent refresh inserted the same day first. Its rows are as exact as
        # ours would be; our marks stay for the next refresh.
        session.rollback()
        return 0
    for hour, n in marks:
        session.execute(
            delete(DashboardDirty).where(DashboardDirty.hour == hour, DashboardDirty.n == n)
        )
    session.commit()
    return len(days)


def _percentiles(session: Session, period: Period, n: int) -> tuple[int | None, int | None]:
    """Nearest-rank median and 90th percentile (seconds, whole minutes) from the histograms."""
    if n == 0:
        return None, None
    in_period = DashboardDayWait.day.between(period.first, period.last)
    buckets = session.execute(
        select(DashboardDayWait.minutes, func.sum(DashboardDayWait.n))
        .where(in_period)
        .group_by(DashboardDayWait.minutes)
        .order_by(DashboardDayWait.minutes)
    ).all()

    def nearest_rank(p: float) -> int:
        rank = max(math.ceil(p * n), 1)
        bucket = buckets[-1][0]
        for start, count in buckets:
            if rank <= count:
                bucket = start
                break
            rank -= count
        fine = DashboardDayWaitMinute
        for minute, count in session.execute(
            select(fine.minutes, func.sum(fine.n))
            .where(
                fine.minutes >= bucket,
                fine.minutes < bucket + _bucket_width(bucket),
                fine.day.between(period.first, period.last),
            )
            .group_by(fine.minutes)
            .order_by(fine.minutes)
        ):
            if rank <= count:
                return int(minute) * 60
            rank -= count
        # Only if a concurrent refresh replaced a day between the two reads: the bucket's start.
        return bucket * 60

    return nearest_rank(0.5), nearest_rank(0.9)


def dashboard(session: Session, period: Period, now: datetime) -> Dashboard:
    """Every figure of the dashboard for ``period``, as of ``now``: the rollup brought up to
    date (``refresh``), its days summed, and the "now" figures counted live."""
    refresh(session, period.tz)
    day = DashboardDay
    in_period = day.day.between(period.first, period.last)
    columns = (
        "created",
        "sent",
        "opened",
        "attempted",
        "paid",
        "cancelled",
        "paid_cents",
        "refunded_cents",
        "waits",
        "first_attempts",
        "first_attempt_successes",
        "unknown_outcomes",
    )
    sums = dict(
        zip(
            columns,
            session.execute(
                select(*[func.coalesce(func.sum(getattr(day, c)), 0) for c in columns]).where(
                    in_period
                )
            ).one(),
            strict=True,
        )
    )
    sums = {name: int(value) for name, value in sums.items()}
    # Expiries: the rollup for the days already over, live for today up to now.
    today = now.astimezone(ZoneInfo(period.tz)).date()
    expired = session.scalar(
        select(func.coalesce(func.sum(day.expired_unpaid), 0)).where(in_period, day.day < today)
    )
    if period.first <= today <= period.last:
        expired += _expired_unpaid(session, period.midnight(today), min(period.end, now))
    words: dict[str, int] = {}
    for code, n in session.execute(
        select(DashboardDayDecline.code, func.sum(DashboardDayDecline.n))
        .where(DashboardDayDecline.day.between(period.first, period.last))
        .group_by(DashboardDayDecline.code)
    ):
        reason = describe_code(code or None)
        words[reason] = words.get(reason, 0) + int(n)
    trend = {
        d: (n, cents)
        for d, n, cents in session.execute(
            select(day.day, day.paid_count, day.paid_cents).where(in_period)
        )
    }
    outstanding = session.execute(
        select(
            func.count(),
            # The balance: a link paid in part owes only the rest (issue 11).
            func.coalesce(func.sum(PaymentLink.amount_cents - PaymentLink.paid_cents), 0),
        ).where(PaymentLink.status == LinkStatus.OPEN, PaymentLink.expires_at > now)
    ).one()
    problems = session.scalar(
        select(func.count()).select_from(ProblemReport).where(ProblemReport.resolved_at.is_(None))
    )
    median, p90 = _percentiles(session, period, sums["waits"])
    return Dashboard(
        period=period,
        funnel=Funnel(*(sums[c] for c in columns[:6])),
        paid_cents=sums["paid_cents"],
        refunded_cents=sums["refunded_cents"],
        outstanding_count=outstanding[0],
        outstanding_cents=int(outstanding[1]),
        time_to_pay_count=sums["waits"],
        median_seconds=median,
        p90_seconds=p90,
        first_attempts=sums["first_attempts"],
        first_attempt_successes=sums["first_attempt_successes"],
        declines=sorted(words.items(), key=lambda item: (-item[1], item[0])),
        unknown_outcomes=sums["unknown_outcomes"],
        expired_unpaid=int(expired),
        open_problem_reports=problems or 0,
        trend=[DayTotal(d, *trend.get(d, (0, 0))) for d in period.days],
    )
