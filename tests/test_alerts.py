"""payapp/alerts.py: which alerts each role sees on the staff banner, and failure surges (card
payment failures, message delivery failures, gateway set-up errors) driven through quiet, surge,
recovery and a second surge. Domain level: a plain database session, no app; emails go to a real
outbox folder."""

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlalchemy import func, select

from payapp import alerts, audit, links, notify
from payapp.config import Defaults
from payapp.models import AuditEvent, FailureSurge, Message, Payment, StaffUser
from payapp.states import SurgeKind

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SURGE = {
    "SURGE_WINDOW_MINUTES": 60,
    "SURGE_BASELINE_DAYS": 7,
    "SURGE_RATE_FACTOR": 3,
    "SURGE_MIN_PAYMENT_FAILURES": 3,
    "SURGE_MIN_MESSAGE_FAILURES": 3,
    "SURGE_MIN_GATEWAY_ERRORS": 3,
    "CLINIC_NAME": "Bright Smile Dental",
    "CLINIC_PHONE": "(212) 555-0100",
    "CLINIC_TIMEZONE": "America/New_York",
}


def raise_alert(session, action, when=NOW, detail=""):
    audit.record(session, action, when=when, detail=detail)
    session.commit()


def shown(session, role, now=NOW) -> set[str]:
    return {event.action for event in alerts.active_alerts(session, role, now=now)}


def decline(session, link, when, n, status="failed"):
    session.add(
        Payment(
            link_id=link.id,
            idempotency_key=f"declined-attempt-{n:04d}",
            gateway="demo",
            status=status,
            amount_cents=link.amount_cents,
            currency="USD",
            source_id="cnon:card-nonce-declined",
            error_code="GENERIC_DECLINE",
            created_at=when,
        )
    )
    session.commit()


def count_actions(session, action) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action)
    )


def a_link(session):
    draft = links.LinkDraft(patient_name="Jane Q Doe", email="jane@example.com", amount="40.00")
    return links.create_link(session, draft, links.LinkRules())


# --- who sees what ------------------------------------------------------------------------------


def test_the_old_decline_spike_event_is_no_longer_an_alert():
    assert "declines.spike" not in alerts.ALERT_ACTIONS


def test_front_desk_sees_gateway_and_payment_alerts_but_not_admin_ones(db_session):
    for action in alerts.ALERT_ACTIONS:
        raise_alert(db_session, action)
    assert shown(db_session, "staff") == {
        "gateway.error",
        "payment.paid_twice",
        "payment.unresolved",
    }


def test_admins_see_every_kind_of_alert(db_session):
    for action in alerts.ALERT_ACTIONS:
        raise_alert(db_session, action)
    assert shown(db_session, "admin") == set(alerts.ALERT_ACTIONS)


def test_ordinary_audit_events_are_not_alerts(db_session):
    raise_alert(db_session, "link.created")
    raise_alert(db_session, "user.created")
    assert alerts.active_alerts(db_session, "admin", now=NOW) == []


def test_an_alert_older_than_a_day_is_no_longer_shown(db_session):
    raise_alert(db_session, "gateway.error", when=NOW - timedelta(hours=25))
    raise_alert(db_session, "integrity.alert", when=NOW - timedelta(hours=23))
    assert shown(db_session, "admin") == {"integrity.alert"}


def test_only_the_newest_alert_of_each_kind_is_shown(db_session):
    raise_alert(db_session, "gateway.error", when=NOW - timedelta(hours=3), detail="older")
    raise_alert(db_session, "gateway.error", when=NOW - timedelta(minutes=5), detail="newest")
    [alert] = alerts.active_alerts(db_session, "staff", now=NOW)
    assert alert.detail == "newest"


# --- failure surges -------------------------------------------------------------------------------


class History:
    """Writes attempts of one kind, failed or not, at given times (synthetic histories)."""

    def __init__(self, session, kind):
        self.session, self.kind, self.n = session, kind, 0
        self.link = a_link(session)

    def add(self, when, ok=0, failed=0):
        for outcome in ["ok"] * ok + ["failed"] * failed:
            self.n += 1
            if self.kind == SurgeKind.PAYMENT:
                status = "completed" if outcome == "ok" else "failed"
                decline(self.session, self.link, when, self.n, status=status)
            elif self.kind == SurgeKind.MESSAGE:
                self.session.add(
                    Message(
                        link_id=self.link.id,
                        channel="email",
                        recipient="jane@example.com",
                        status="sent" if outcome == "ok" else "failed",
                        created_at=when,
                    )
                )
                self.session.commit()
            else:  # every attempt is recorded; a set-up error also records gateway.error
                raise_alert(self.session, "payment.attempted", when=when)
                if outcome == "failed":
                    raise_alert(
                        self.session, "gateway.error", when=when, detail="AUTH/UNAUTHORIZED"
                    )


@pytest.fixture
def outbox(tmp_path):
    return tmp_path / "outbox"


@pytest.fixture
def transports(outbox):
    return notify.Transports(
        mail=notify.OutboxMail(str(outbox)),
        sms=notify.OutboxSms(str(outbox)),
        mail_from="payments@brightsmile.example",
    )


@pytest.fixture
def admins(db_session):
    """Two active admins (emailed), one deactivated admin and one front-desk user (not)."""
    db_session.execute(StaffUser.__table__.delete().where(StaffUser.role == "admin"))
    for email, role, active in (
        ("owner@brightsmile.example", "admin", True),
        ("manager@brightsmile.example", "admin", True),
        ("former@brightsmile.example", "admin", False),
        ("desk2@brightsmile.example", "staff", True),
    ):
        db_session.add(StaffUser(email=email, password_hash="x", role=role, active=active))
    db_session.commit()
    return {"owner@brightsmile.example", "manager@brightsmile.example"}


def emails(outbox) -> list:
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted(outbox.glob("surge-*.eml"))
    ]


def incidents(session) -> list[FailureSurge]:
    return list(session.scalars(select(FailureSurge).order_by(FailureSurge.id)))


@pytest.mark.parametrize("kind", list(SurgeKind))
def test_quiet_surge_recovery_and_a_second_surge(db_session, transports, outbox, admins, kind):
    history = History(db_session, kind)
    # The usual week: 1 failure in 20 (5%), so a surge needs >= 15% and >= 3 failures.
    for day in range(1, 6):
        history.add(NOW - timedelta(days=day), ok=4 if day > 1 else 3, failed=1 if day == 1 else 0)
    history.add(NOW - timedelta(days=1, hours=2), ok=1)

    # Quiet: one failure in ten in the last hour.
    history.add(NOW - timedelta(minutes=30), ok=9, failed=1)
    assert alerts.check_surges(db_session, SURGE, transports, now=NOW) == []
    assert incidents(db_session) == [] and emails(outbox) == []

    # Surge: half the attempts of the last hour fail.
    t1 = NOW + timedelta(hours=2)
    history.add(t1 - timedelta(minutes=20), ok=5, failed=5)
    assert alerts.check_surges(db_session, SURGE, transports, now=t1) == [(kind, "started")]
    history.add(t1 + timedelta(minutes=1), failed=3)
    # Still surging on the next checks: the same incident, no new email.
    assert alerts.check_surges(db_session, SURGE, transports, now=t1 + timedelta(minutes=2)) == []
    assert alerts.check_surges(db_session, SURGE, transports, now=t1 + timedelta(minutes=30)) == []
    [incident] = incidents(db_session)
    assert incident.kind == kind and incident.recovered_at is None
    started = emails(outbox)
    assert {m["To"] for m in started} == admins and len(started) == 2
    assert all(m["Subject"] == f"Bright Smile Dental: surge of {kind.label}" for m in started)
    assert "5 " + kind.label in started[0].get_content()
    assert alerts.banner_incidents(db_session, now=t1) == [incident]

    # Recovery: a clean hour.
    t2 = t1 + timedelta(hours=3)
    history.add(t2 - timedelta(minutes=10), ok=10)
    assert alerts.check_surges(db_session, SURGE, transports, now=t2) == [(kind, "recovered")]
    assert alerts.check_surges(db_session, SURGE, transports, now=t2 + timedelta(minutes=1)) == []
    db_session.refresh(incident)
    assert incident.recovered_at == t2 and incident.open_kind is None
    recovered = [m for m in emails(outbox) if "back to normal" in m["Subject"]]
    assert {m["To"] for m in recovered} == admins and len(recovered) == 2
    assert recovered[0]["Subject"] == f"Bright Smile Dental: {kind.label} back to normal"
    assert len(emails(outbox)) == 4
    assert alerts.banner_incidents(db_session, now=t2) == [incident]  # the recovery notice

    # A second surge is a new incident with its own email.
    t3 = t2 + timedelta(hours=2)
    history.add(t3 - timedelta(minutes=5), ok=1, failed=4)
    assert alerts.check_surges(db_session, SURGE, transports, now=t3) == [(kind, "started")]
    first, second = incidents(db_session)
    assert second.recovered_at is None and second.started_at == t3
    assert len(emails(outbox)) == 6
    assert count_actions(db_session, "surge.started") == 2
    assert count_actions(db_session, "surge.recovered") == 1


@pytest.mark.parametrize("kind", list(SurgeKind))
def test_a_usual_failure_rate_is_no_surge_however_many_fail(db_session, transports, admins, kind):
    history = History(db_session, kind)
    history.add(NOW - timedelta(days=2), ok=60, failed=40)  # usually 40% fail
    history.add(NOW - timedelta(minutes=10), ok=10, failed=10)  # 50% now: less than 3x
    assert alerts.check_surges(db_session, SURGE, transports, now=NOW) == []


@pytest.mark.parametrize("kind", list(SurgeKind))
def test_fewer_failures_than_the_minimum_are_no_surge(db_session, transports, admins, kind):
    history = History(db_session, kind)
    history.add(NOW - timedelta(days=2), ok=100)
    history.add(NOW - timedelta(minutes=10), failed=2)  # 100% but only two
    assert alerts.check_surges(db_session, SURGE, transports, now=NOW) == []
    history.add(NOW - timedelta(minutes=61), failed=5)  # outside the window
    assert alerts.check_surges(db_session, SURGE, transports, now=NOW) == []


def test_each_kind_is_its_own_incident(db_session, transports, outbox, admins):
    History(db_session, SurgeKind.PAYMENT).add(NOW - timedelta(minutes=5), failed=3)
    History(db_session, SurgeKind.MESSAGE).add(NOW - timedelta(minutes=5), failed=3)
    changes = alerts.check_surges(db_session, SURGE, transports, now=NOW)
    assert changes == [(SurgeKind.PAYMENT, "started"), (SurgeKind.MESSAGE, "started")]
    assert len(emails(outbox)) == 4


def test_acknowledging_hides_the_alert_until_the_recovery_notice(db_session, transports, admins):
    history = History(db_session, SurgeKind.PAYMENT)
    history.add(NOW - timedelta(minutes=5), failed=3)
    alerts.check_surges(db_session, SURGE, transports, now=NOW)
    [incident] = incidents(db_session)
    owner = db_session.scalar(select(StaffUser).where(StaffUser.email.like("owner@%")))
    alerts.acknowledge(db_session, incident, owner.id, now=NOW + timedelta(minutes=1))
    assert alerts.banner_incidents(db_session, now=NOW + timedelta(minutes=2)) == []
    ack = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "surge.acknowledged"))
    assert ack.staff_id == owner.id and ack.detail.startswith("alert: card payment failures")

    later = NOW + timedelta(hours=2)
    alerts.check_surges(db_session, SURGE, transports, now=later)  # a quiet hour: recovered
    assert alerts.banner_incidents(db_session, now=later) == [incident]
    alerts.acknowledge(db_session, incident, owner.id, now=later + timedelta(minutes=1))
    assert alerts.banner_incidents(db_session, now=later + timedelta(minutes=2)) == []


def test_an_unacknowledged_recovery_notice_leaves_the_banner_after_a_day(
    db_session, transports, admins
):
    History(db_session, SurgeKind.GATEWAY).add(NOW - timedelta(minutes=5), failed=3)
    alerts.check_surges(db_session, SURGE, transports, now=NOW)
    alerts.check_surges(db_session, SURGE, transports, now=NOW + timedelta(hours=2))
    assert len(alerts.banner_incidents(db_session, now=NOW + timedelta(hours=3))) == 1
    assert alerts.banner_incidents(db_session, now=NOW + timedelta(hours=27)) == []


def test_a_second_process_cannot_open_the_same_incident(db_session, transports, outbox, admins):
    History(db_session, SurgeKind.PAYMENT).add(NOW - timedelta(minutes=5), failed=3)
    counts = alerts.count_failures(db_session, SurgeKind.PAYMENT, SURGE, NOW)
    assert alerts._start(db_session, SurgeKind.PAYMENT, counts, 0.0, NOW) is True
    # A racing check that read "no open incident" before the first committed:
    assert alerts._start(db_session, SurgeKind.PAYMENT, counts, 0.0, NOW) is False
    assert len(incidents(db_session)) == 1


def test_the_default_settings_are_the_issues_rule():
    assert Defaults.SURGE_WINDOW_MINUTES == 60
    assert Defaults.SURGE_BASELINE_DAYS == 7
    assert Defaults.SURGE_RATE_FACTOR == 3
