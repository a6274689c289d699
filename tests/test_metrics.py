"""The dashboard's figures (payapp/metrics.py) over a known history, asserted exactly.

The history sits on the end of daylight saving time in New York (2026-11-01: that day is 25
hours), with partial and full refunds, a pending and a failed refund, a cancelled and reissued
link, expired links, declines, an unknown outcome and problem reports.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from payapp import metrics
from payapp.models import (
    DashboardDay,
    DashboardDirty,
    Message,
    Payment,
    PaymentLink,
    ProblemReport,
    Refund,
    SiteSetting,
)
from payapp.states import LinkStatus, MessageStatus, PaymentStatus, RefundStatus

TZ = "America/New_York"
NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 30, tzinfo=UTC)
_ids = itertools.count(1)


def at(month, day, hour, minute=0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def add_link(
    session,
    created,
    cents,
    *,
    status=LinkStatus.OPEN,
    expires=LATER,
    viewed=None,
    paid=None,
    reissued_from=None,
    sent=(),
) -> PaymentLink:
    link = PaymentLink(
        public_id=f"pub{next(_ids)}",
        patient_name="Pat Example",
        amount_cents=cents,
        status=status,
        expires_at=expires,
        created_at=created,
        first_viewed_at=viewed,
        paid_at=paid,
        reissued_from_id=reissued_from,
    )
    session.add(link)
    session.flush()
    for when, state in sent:
        session.add(
            Message(
                link_id=link.id,
                channel="email",
                recipient="p@example.com",
                status=state,
                created_at=when,
                sent_at=when if state == MessageStatus.SENT else None,
            )
        )
        if state == MessageStatus.SENT:
            link.sent_at = when
            link.first_sent_at = link.first_sent_at or when
    return link


def add_payment(session, link, created, status, *, completed=None, code=None) -> Payment:
    payment = Payment(
        link_id=link.id,
        idempotency_key=f"key{next(_ids)}",
        gateway="demo",
        amount_cents=link.amount_cents,
        currency="USD",
        source_id="tok",
        status=status,
        created_at=created,
        completed_at=completed,
        error_code=code,
    )
    session.add(payment)
    session.flush()
    return payment


def add_refund(session, payment, created, cents, status) -> None:
    session.add(
        Refund(
            payment_id=payment.id,
            idempotency_key=f"r{next(_ids)}",
            amount_cents=cents,
            status=status,
            created_at=created,
        )
    )


@pytest.fixture
def history(db_session):
    s = db_session
    sent = MessageStatus.SENT
    # L1: a failed message, first send, a reminder; declined once, then paid; $30 refunded.
    l1 = add_link(
        s,
        at(10, 31, 14),
        10000,
        status=LinkStatus.PARTIALLY_REFUNDED,
        viewed=at(10, 31, 15),
        paid=at(10, 31, 15, 10),
        sent=[
            (at(10, 31, 13), MessageStatus.FAILED),
            (at(10, 31, 14), sent),
            (at(10, 31, 15), sent),
        ],
    )
    add_payment(s, l1, at(10, 31, 15, 5), PaymentStatus.FAILED, code="CARD_DECLINED")
    p1 = add_payment(
        s, l1, at(10, 31, 15, 9), PaymentStatus.COMPLETED, completed=at(10, 31, 15, 10)
    )
    add_refund(s, p1, at(11, 1, 12), 3000, RefundStatus.COMPLETED)
    # L2: paid 23:30 EST on Nov 1 (04:30 UTC Nov 2), fully refunded 15 minutes later.
    l2 = add_link(
        s,
        at(10, 31, 20),
        5000,
        status=LinkStatus.REFUNDED,
        viewed=at(10, 31, 21),
        paid=at(11, 2, 4, 30),
        sent=[(at(10, 31, 20), sent)],
    )
    p2 = add_payment(s, l2, at(11, 2, 4, 29), PaymentStatus.COMPLETED, completed=at(11, 2, 4, 30))
    add_refund(s, p2, at(11, 2, 4, 45), 5000, RefundStatus.COMPLETED)
    # L3 cancelled and reissued as L4, which is paid 4 hours after its send.
    l3 = add_link(s, at(11, 1, 13), 7500, status=LinkStatus.CANCELLED, sent=[(at(11, 1, 13), sent)])
    l4 = add_link(
        s,
        at(11, 1, 13, 5),
        7500,
        status=LinkStatus.PAID,
        viewed=at(11, 1, 14),
        paid=at(11, 1, 17, 5),
        reissued_from=l3.id,
        sent=[(at(11, 1, 13, 5), sent)],
    )
    add_payment(s, l4, at(11, 1, 17, 4), PaymentStatus.COMPLETED, completed=at(11, 1, 17, 5))
    # L5 expired (not yet stored so) after a decline; L6 expired and stored so.
    l5 = add_link(
        s,
        at(10, 31, 10),
        2000,
        expires=at(11, 1, 10),
        viewed=at(10, 31, 11),
        sent=[(at(10, 31, 10), sent)],
    )
    add_payment(s, l5, at(10, 31, 11), PaymentStatus.FAILED, code="INSUFFICIENT_FUNDS")
    add_link(
        s,
        at(10, 31, 11),
        3333,
        status=LinkStatus.EXPIRED,
        expires=at(11, 1, 20),
        sent=[(at(10, 31, 11), sent)],
    )
    # L7: never sent, an attempt with an unknown outcome, still open.
    l7 = add_link(s, at(11, 1, 9), 1234, expires=at(11, 20, 0))
    add_payment(s, l7, at(11, 1, 9, 30), PaymentStatus.UNKNOWN)
    # Outside the period: an older open link, one created 01:00 EST Nov 2, and an older payment
    # with a pending refund (counts: made in the period) and a failed one (does not).
    add_link(s, at(10, 20, 12), 20000)
    add_link(s, at(11, 2, 6), 500, expires=at(11, 10, 0))
    l9 = add_link(s, at(10, 1, 12), 8000, status=LinkStatus.PAID, paid=at(10, 2, 12))
    p9 = add_payment(s, l9, at(10, 2, 12), PaymentStatus.COMPLETED, completed=at(10, 2, 12))
    add_refund(s, p9, at(10, 31, 16), 1000, RefundStatus.PENDING)
    add_refund(s, p9, at(10, 31, 17), 500, RefundStatus.FAILED)
    s.add_all(
        [
            ProblemReport(category="amount", created_at=at(11, 1, 10)),
            ProblemReport(category="declined", created_at=at(11, 1, 11)),
            ProblemReport(category="other", created_at=at(10, 1, 11), resolved_at=at(10, 2, 9)),
        ]
    )
    s.commit()
    return s


def two_days():
    return metrics.period_for("custom", NOW, TZ, "2026-10-31", "2026-11-01")[1]


def test_period_ends_are_local_midnights_across_the_dst_change():
    period = two_days()
    assert period.start == at(10, 31, 4)  # midnight EDT
    assert period.end == at(11, 2, 5)  # midnight EST: the two days are 49 hours
    assert period.midnight(date(2026, 11, 1)) == at(11, 1, 4)


def test_presets_end_today_in_the_clinics_time_zone():
    # 02:00 UTC on Nov 6 is still Nov 5 in New York.
    choice, period = metrics.period_for("7", at(11, 6, 2), TZ)
    assert (choice, period.first, period.last) == ("7", date(2026, 10, 30), date(2026, 11, 5))
    assert metrics.period_for("today", at(11, 6, 2), TZ)[1].days == [date(2026, 11, 5)]
    assert metrics.period_for("nonsense", NOW, TZ)[0] == "30"


@pytest.mark.parametrize(
    "first,last", [("2026-11-02", "2026-11-01"), ("", "2026-11-01"), ("2025-01-01", "2026-11-01")]
)
def test_bad_custom_periods_are_refused(first, last):
    with pytest.raises(metrics.PeriodError):
        metrics.period_for("custom", NOW, TZ, first, last)


def test_every_figure_of_a_known_history(history):
    d = metrics.dashboard(history, two_days(), NOW)
    f = d.funnel
    assert (f.created, f.sent, f.opened, f.attempted, f.paid, f.cancelled) == (7, 6, 4, 5, 3, 1)
    assert d.completion_rate == pytest.approx(3 / 6)
    assert [(label, n) for label, n, _ in f.steps()][-1] == ("Paid", 3)
    assert d.paid_cents == 22500
    assert d.refunded_cents == 9000  # 30.00 + 50.00 completed + 10.00 pending; not the failed
    assert d.collected_cents == 13500
    assert (d.outstanding_count, d.outstanding_cents) == (3, 21734)
    assert (d.time_to_pay_count, d.median_seconds, d.p90_seconds) == (3, 14400, 117000)
    assert (d.first_attempts, d.first_attempt_successes) == (5, 2)
    assert d.declines == [("Not enough funds on the card", 1), ("The card's bank refused it", 1)]
    assert d.unknown_outcomes == 1
    assert d.expired_unpaid == 2
    assert d.open_problem_reports == 2
    assert [(t.day, t.count, t.cents) for t in d.trend] == [
        (date(2026, 10, 31), 1, 10000),
        (date(2026, 11, 1), 2, 12500),  # includes 23:30 EST, which is 04:30 UTC Nov 2
    ]


def test_the_day_after_the_change_starts_at_local_midnight(history):
    period = metrics.period_for("custom", NOW, TZ, "2026-11-02", "2026-11-02")[1]
    d = metrics.dashboard(history, period, NOW)
    assert d.funnel.created == 1  # 01:00 EST on Nov 2
    assert d.paid_cents == 0 and d.refunded_cents == 0
    assert d.time_to_pay_count == 0 and d.median_seconds is None
    assert d.completion_rate == 0.0
    assert d.first_attempt_rate is None


def test_refunds_can_make_a_day_collect_less_than_nothing(history):
    period = metrics.period_for("custom", NOW, TZ, "2026-11-01", "2026-11-01")[1]
    d = metrics.dashboard(history, period, NOW)
    assert d.paid_cents == 12500 and d.refunded_cents == 8000
    period = metrics.period_for("custom", NOW, TZ, "2026-10-30", "2026-10-30")[1]
    assert metrics.dashboard(history, period, NOW).collected_cents == 0


def test_expired_unpaid_counts_only_expiries_up_to_now(history):
    # At 15:00 UTC Nov 1, L5 has expired but L6 (20:00 UTC) not yet.
    d = metrics.dashboard(history, two_days(), at(11, 1, 15))
    assert d.expired_unpaid == 1


def test_median_of_an_even_count_is_the_lower_middle(history):
    period = metrics.period_for("custom", NOW, TZ, "2026-10-31", "2026-10-31")[1]
    assert metrics.time_to_pay(history, period) == (1, 4200, 4200)
    later = metrics.period_for("custom", NOW, TZ, "2026-11-01", "2026-11-01")[1]
    assert metrics.time_to_pay(history, later) == (2, 14400, 117000)


def test_seed_demo_makes_every_state_and_a_dashboard(db_session):
    from payapp.cli import seed_demo

    assert seed_demo(db_session, 3000, NOW) == 3000
    states = set(db_session.scalars(select(PaymentLink.status).distinct()))
    assert states == set(LinkStatus)
    assert db_session.scalar(select(func.count()).select_from(ProblemReport)) > 0
    d = metrics.dashboard(db_session, metrics.period_for("90", NOW, TZ)[1], NOW)
    # 90 local days start at a midnight: the oldest hours of the 90 x 24 h spread fall before.
    assert 2900 < d.funnel.created <= 3000 and d.paid_cents > d.refunded_cents > 0
    assert d.declines and d.unknown_outcomes > 0 and d.expired_unpaid > 0
    # Screenshots and demos show a list of different patients, not one name repeated.
    names = set(db_session.scalars(select(PaymentLink.patient_name).distinct()))
    assert len(names) >= 10 and "Demo Patient" not in names


# --- The rollup (metrics.refresh): what dashboard() sums instead of the raw tables ------------


def rollup_days(session) -> dict:
    return {
        row.day: (row.created, row.paid_cents, row.refunded_cents)
        for row in session.scalars(select(DashboardDay))
    }


def test_the_known_history_is_read_from_the_rollup(history):
    d = metrics.dashboard(history, two_days(), NOW)
    assert history.scalar(select(func.count()).select_from(DashboardDirty)) == 0
    days = rollup_days(history)
    assert days[date(2026, 10, 31)] == (4, 10000, 1000)
    assert days[date(2026, 11, 1)] == (3, 12500, 8000)
    # The figures come from those rows: change one and the dashboard follows.
    history.execute(
        update(DashboardDay).where(DashboardDay.day == date(2026, 11, 1)).values(created=103)
    )
    history.commit()
    assert metrics.dashboard(history, two_days(), NOW).funnel.created == d.funnel.created + 100


def test_an_old_link_paid_refunded_and_cancelled_today_changes_its_creation_day_at_once(history):
    old_day = metrics.period_for("custom", NOW, TZ, "2026-10-20", "2026-10-20")[1]
    today = metrics.period_for("today", NOW, TZ)[1]
    before = metrics.dashboard(history, old_day, NOW)
    assert (before.funnel.created, before.funnel.attempted, before.funnel.paid) == (1, 0, 0)
    old = history.scalars(select(PaymentLink).where(PaymentLink.amount_cents == 20000)).one()

    payment = add_payment(history, old, NOW, PaymentStatus.COMPLETED, completed=NOW)
    old.status, old.paid_at = LinkStatus.PAID, NOW
    history.commit()
    after = metrics.dashboard(history, old_day, NOW)
    assert (after.funnel.attempted, after.funnel.paid) == (1, 1)
    assert metrics.dashboard(history, today, NOW).paid_cents == 20000

    add_refund(history, payment, NOW, 2500, RefundStatus.COMPLETED)
    history.commit()
    assert metrics.dashboard(history, today, NOW).collected_cents == 17500

    other = history.scalars(select(PaymentLink).where(PaymentLink.amount_cents == 500)).one()
    nov2 = metrics.period_for("custom", NOW, TZ, "2026-11-02", "2026-11-02")[1]
    assert metrics.dashboard(history, nov2, NOW).funnel.cancelled == 0
    other.status = LinkStatus.CANCELLED
    history.commit()
    assert metrics.dashboard(history, nov2, NOW).funnel.cancelled == 1


def test_a_time_zone_change_rebuilds_the_rollup(history):
    metrics.dashboard(history, two_days(), NOW)
    assert rollup_days(history)[date(2026, 11, 1)] == (3, 12500, 8000)
    # In Los Angeles 04:30 UTC Nov 2 (L2's paid $50.00) is 20:30 on Nov 1 and 06:00 UTC Nov 2
    # (a link) 22:00 on Nov 1: the day's totals move with the zone.
    la = metrics.period_for("custom", NOW, "America/Los_Angeles", "2026-11-01", "2026-11-01")[1]
    d = metrics.dashboard(history, la, NOW)
    assert d == metrics.live_dashboard(history, la, NOW)
    assert history.get(SiteSetting, metrics.ZONE_SETTING).value == "America/Los_Angeles"
    back = metrics.dashboard(history, two_days(), NOW)
    assert back.funnel.created == 7 and back.paid_cents == 22500


def test_a_write_during_a_refresh_keeps_its_mark(history, monkeypatch):
    """A write that lands after a day was recomputed, but before the marks are deleted, bumps
    its hour's counter: that mark survives and the next read includes the write."""
    metrics.dashboard(history, two_days(), NOW)
    link = history.scalars(select(PaymentLink).where(PaymentLink.amount_cents == 1234)).one()
    link.first_viewed_at = NOW  # marks its creation hour (Nov 1)
    history.commit()
    recompute = metrics._recompute_day
    writer = Session(history.get_bind())

    def recompute_then_a_racing_write(session, day, tz):
        recompute(session, day, tz)
        session.commit()
        writer.execute(
            update(PaymentLink).where(PaymentLink.id == link.id).values(status=LinkStatus.CANCELLED)
        )
        writer.commit()

    monkeypatch.setattr(metrics, "_recompute_day", recompute_then_a_racing_write)
    raced = metrics.dashboard(history, two_days(), NOW)
    assert raced.funnel.opened == 5 and raced.funnel.cancelled == 1 + 0
    assert "2026-11-01 09" in set(history.scalars(select(DashboardDirty.hour)))
    monkeypatch.setattr(metrics, "_recompute_day", recompute)
    assert metrics.dashboard(history, two_days(), NOW).funnel.cancelled == 2
    writer.close()


def test_the_rollup_agrees_with_the_raw_tables_over_demo_data(db_session):
    from payapp.cli import seed_demo

    seed_demo(db_session, 2000, NOW)
    for choice, first, last in (
        ("today", "", ""),
        ("7", "", ""),
        ("90", "", ""),
        ("custom", "2026-09-01", "2026-11-30"),
        ("custom", "2026-10-31", "2026-11-02"),
    ):
        period = metrics.period_for(choice, NOW, TZ, first, last)[1]
        rolled, live = (
            metrics.dashboard(db_session, period, NOW),
            metrics.live_dashboard(db_session, period, NOW),
        )
        # The rollup keeps whole minutes: the page shows no seconds.
        live.median_seconds = live.median_seconds and live.median_seconds // 60 * 60
        live.p90_seconds = live.p90_seconds and live.p90_seconds // 60 * 60
        assert rolled == live, choice


def test_the_migration_installs_the_marking_triggers(db_session):
    tables = ("payment_link", "payment", "refund")
    if db_session.get_bind().dialect.name == "sqlite":
        names = set(
            db_session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        )
        expected = {
            f"dashboard_mark_{t}_{e}" for t in tables for e in ("insert", "update", "delete")
        }
    else:  # one row trigger per table for INSERT OR UPDATE OR DELETE
        names = set(
            db_session.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
        )
        expected = {f"dashboard_mark_{t}" for t in tables}
    assert expected <= names
    link = add_link(db_session, at(11, 1, 9, 30), 100)
    db_session.commit()
    assert set(db_session.scalars(select(DashboardDirty.hour))) == {
        "2026-11-01 09",
        "2026-11-30 00",
    }
    # A patient opening the link changes only its creation day's funnel: only that hour counts
    # up; a change no figure counts (the decline counter) marks nothing.
    link.first_viewed_at = at(11, 3, 8)
    db_session.commit()
    link.decline_count = 1
    db_session.commit()
    assert dict(db_session.execute(select(DashboardDirty.hour, DashboardDirty.n)).all()) == {
        "2026-11-01 09": 3,  # old and new creation hour: the same hour, counted twice
        "2026-11-30 00": 1,
    }


def test_a_refresh_that_loses_a_race_for_a_day_keeps_its_marks(history, monkeypatch):
    """PostgreSQL: two refreshes inserting the same day; the loser rolls back, marks kept."""
    from sqlalchemy.exc import IntegrityError

    def lose_the_race(session, day, tz):
        raise IntegrityError("INSERT INTO dashboard_day", {}, Exception("duplicate key"))

    monkeypatch.setattr(metrics, "_recompute_day", lose_the_race)
    assert metrics.refresh(history, TZ) == 0
    assert history.scalar(select(func.count()).select_from(DashboardDirty)) > 0
    monkeypatch.undo()
    assert metrics.dashboard(history, two_days(), NOW).paid_cents == 22500


def test_two_first_refreshes_at_once_both_succeed(history):
    """Right after the upgrade two views race to record the zone: the loser carries on."""
    from sqlalchemy import event

    other = Session(history.get_bind())
    raced = []

    def the_other_view_records_the_zone_first(state):
        # Just before this refresh starts writing, after it found no zone recorded.
        if state.is_delete and not raced:
            raced.append(True)
            other.add(SiteSetting(key=metrics.ZONE_SETTING, value=TZ))
            other.commit()

    event.listen(history, "do_orm_execute", the_other_view_records_the_zone_first)
    assert metrics.dashboard(history, two_days(), NOW).paid_cents == 22500
    assert raced
    event.remove(history, "do_orm_execute", the_other_view_records_the_zone_first)
    other.close()
