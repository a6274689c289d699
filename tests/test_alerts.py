"""payapp/alerts.py: which alerts each role sees on the staff banner, and the decline-spike alert
(card testing) raised at most once per window. Domain level: a plain database session, no app."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from payapp import alerts, audit, links
from payapp.models import AuditEvent, Payment

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SPIKE = {"DECLINE_SPIKE_THRESHOLD": 3, "DECLINE_SPIKE_WINDOW_MINUTES": 15}


def raise_alert(session, action, when=NOW, detail=""):
    audit.record(session, action, when=when, detail=detail)
    session.commit()


def shown(session, role, now=NOW) -> set[str]:
    return {event.action for event in alerts.active_alerts(session, role, now=now)}


def decline(session, link, when, n):
    session.add(
        Payment(
            link_id=link.id,
            idempotency_key=f"declined-attempt-{n:04d}",
            gateway="demo",
            status="failed",
            amount_cents=link.amount_cents,
            currency="USD",
            source_id="cnon:card-nonce-declined",
            error_code="GENERIC_DECLINE",
            created_at=when,
        )
    )
    session.commit()


def spike_alerts(session) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "declines.spike")
    )


def a_link(session):
    draft = links.LinkDraft(patient_name="Jane Q Doe", email="jane@example.com", amount="40.00")
    return links.create_link(session, draft, links.LinkRules())


# --- who sees what ------------------------------------------------------------------------------


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


# --- the decline spike ----------------------------------------------------------------------------


def test_declines_below_the_threshold_raise_no_alert(db_session):
    link = a_link(db_session)
    for n in range(2):
        decline(db_session, link, NOW - timedelta(minutes=1), n)
    assert alerts.check_decline_spike(db_session, SPIKE, now=NOW) is False
    assert spike_alerts(db_session) == 0


def test_a_spike_of_declines_raises_one_admin_alert_per_window(db_session):
    link = a_link(db_session)
    for n in range(3):
        decline(db_session, link, NOW - timedelta(minutes=1), n)
    assert alerts.check_decline_spike(db_session, SPIKE, now=NOW) is True
    decline(db_session, link, NOW, 3)
    assert alerts.check_decline_spike(db_session, SPIKE, now=NOW + timedelta(minutes=1)) is False
    assert spike_alerts(db_session) == 1
    assert "declines.spike" in shown(db_session, "admin", now=NOW + timedelta(minutes=1))
    assert "declines.spike" not in shown(db_session, "staff", now=NOW + timedelta(minutes=1))


def test_declines_outside_the_window_do_not_count(db_session):
    link = a_link(db_session)
    for n in range(3):
        decline(db_session, link, NOW - timedelta(minutes=16), n)
    assert alerts.check_decline_spike(db_session, SPIKE, now=NOW) is False


def test_a_new_window_can_raise_a_new_spike_alert(db_session):
    link = a_link(db_session)
    for n in range(3):
        decline(db_session, link, NOW - timedelta(minutes=1), n)
    assert alerts.check_decline_spike(db_session, SPIKE, now=NOW)
    later = NOW + timedelta(minutes=30)
    for n in range(3, 6):
        decline(db_session, link, later - timedelta(minutes=1), n)
    assert alerts.check_decline_spike(db_session, SPIKE, now=later)
    assert spike_alerts(db_session) == 2
