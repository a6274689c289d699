"""The surge banner and its acknowledgment through the staff pages (Flask test client, CSRF on):
admins see an open surge until one of them acknowledges it, then the recovery notice."""

from datetime import timedelta

import time_machine
from sqlalchemy import select

from payapp import alerts
from payapp.db import get_session
from payapp.models import AuditEvent, FailureSurge, StaffUser, utcnow

from .conftest import ADMIN_EMAIL, csrf_from


def fail_card_payments(app, link_factory, n=3):
    """n failed charge attempts on one link, recorded as the decline path records them."""
    from payapp.models import Payment

    link = link_factory()
    with app.app_context():
        session = get_session()
        for i in range(n):
            session.add(
                Payment(
                    link_id=link.id,
                    idempotency_key=f"surge-page-{i}",
                    gateway="demo",
                    status="failed",
                    amount_cents=100,
                    currency="USD",
                    source_id="x",
                )
            )
        session.commit()
        return alerts.check_surges(session, {**app.config, "SURGE_MIN_PAYMENT_FAILURES": n})


def acknowledge(client, incident_id):
    token = csrf_from(client.get("/links").text)
    return client.post(f"/alerts/{incident_id}/acknowledge", data={"csrf_token": token})


def test_admins_acknowledge_a_surge_and_then_see_its_recovery_notice(
    app, admin, staff, link_factory
):
    assert fail_card_payments(app, link_factory)
    page = admin.get("/links").text
    assert "Surge of card payment failures" in page and "Acknowledge" in page
    assert "Surge of card payment failures" not in staff.get("/links").text
    with app.app_context():
        incident = get_session().scalar(select(FailureSurge))
        admin_id = get_session().scalar(select(StaffUser.id).where(StaffUser.email == ADMIN_EMAIL))

    assert acknowledge(staff, incident.id).status_code == 403  # front desk cannot
    assert admin.post(f"/alerts/{incident.id}/acknowledge").status_code == 400  # no CSRF token
    response = acknowledge(admin, incident.id)
    assert response.status_code == 303
    assert "Surge of card payment failures" not in admin.get("/links").text
    with app.app_context():
        ack = get_session().scalar(select(AuditEvent).filter_by(action="surge.acknowledged"))
        assert ack.staff_id == admin_id

    # A window later with no failures, run-jobs finds it over: the recovery notice. (A 5-minute
    # window here, so the admin's session outlives the wait.)
    with time_machine.travel(utcnow() + timedelta(minutes=10), tick=False):
        with app.app_context():
            short_window = {**app.config, "SURGE_WINDOW_MINUTES": 5}
            assert alerts.check_surges(get_session(), short_window) == [("payment", "recovered")]
        page = admin.get("/links").text
        assert "Back to normal: card payment failures" in page
        assert acknowledge(admin, incident.id).status_code == 303
        assert "Back to normal" not in admin.get("/links").text


def test_acknowledging_an_unknown_alert_is_404(app, admin):
    assert acknowledge(admin, 999).status_code == 404
