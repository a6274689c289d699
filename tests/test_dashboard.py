"""The dashboard page: staff only, the landing page after login, the period form with and
without htmx, and the figures of a small history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select, update

from payapp.db import get_session
from payapp.models import DashboardDay, DashboardDirty, Payment, PaymentLink, ProblemReport
from payapp.states import LinkStatus, PaymentStatus
from payapp.views.dashboard import _duration

NBSP = "\u00a0"


def test_dashboard_needs_a_login(client):
    response = client.get("/dashboard")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_root_leads_staff_to_the_dashboard(staff):
    assert staff.get("/").headers["Location"] == "/dashboard"
    assert 'href="/dashboard"' in staff.get("/links").text


def test_dashboard_shows_the_periods_figures(app, staff, link_factory):
    now = datetime.now(UTC) - timedelta(seconds=1)
    day = now.astimezone(ZoneInfo("America/New_York")).date()
    paid = link_factory(amount="125.50")
    link_factory(amount="10.00")
    with app.app_context():
        session = get_session()
        session.add(
            Payment(
                link_id=paid.id,
                idempotency_key="k1",
                gateway="demo",
                amount_cents=12550,
                currency="USD",
                source_id="t",
                status=PaymentStatus.COMPLETED,
                completed_at=now,
            )
        )
        session.execute(
            update(PaymentLink)
            .where(PaymentLink.id == paid.id)
            .values(status=LinkStatus.PAID, paid_at=now)
        )
        session.add(ProblemReport(category="other"))
        session.commit()
    html = staff.get("/dashboard?period=7").text
    assert '<p class="dash-figure" id="dash-collected">$125.50</p>' in html
    assert '<p class="dash-figure" id="dash-outstanding">$10.00</p>' in html
    assert '<p class="dash-figure" id="dash-completion">50.0%</p>' in html
    assert '<span id="dash-problems">1</span>' in html
    cells = '<td class="num">1</td><td class="num">$125.50</td>'
    row = f'<th scope="row">{day.isoformat()}</th>{cells}'
    assert row in html
    assert f"<title>{day:%b} {day.day}: $125.50</title>" in html
    assert '<option value="7" selected>' in html


def test_htmx_gets_only_the_panels(staff):
    response = staff.get("/dashboard?period=90", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="dash-collected"' in response.text
    assert "<form" not in response.text and "<html" not in response.text
    assert "HX-Request" in response.headers["Vary"]


def test_plain_form_get_works_without_htmx(staff):
    response = staff.get("/dashboard?period=custom&from=2026-10-31&to=2026-11-01")
    assert response.status_code == 200
    assert "October 31, 2026 – November 1, 2026 (America/New_York)" in response.text
    assert "<form" in response.text


def test_a_reversed_custom_period_is_explained(staff):
    response = staff.get("/dashboard?period=custom&from=2026-11-02&to=2026-11-01")
    assert response.status_code == 422
    assert "The first day must not be after the last." in response.text


def test_resending_keeps_the_first_send_for_time_to_pay(app, staff, link_factory):
    from tests.conftest import staff_post

    link = link_factory()
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with time_machine.travel(first, tick=False):
        staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    with time_machine.travel(first + timedelta(minutes=5), tick=False):
        staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    with app.app_context():
        stored = get_session().get(PaymentLink, link.id)
        assert stored.first_sent_at == first
        assert stored.sent_at == first + timedelta(minutes=5)


def test_a_payment_made_after_a_view_shows_on_the_next_view(app, staff, link_factory):
    link = link_factory(amount="42.00")
    assert '<p class="dash-figure" id="dash-collected">$0.00</p>' in staff.get("/dashboard").text
    with app.app_context():
        session = get_session()
        session.add(
            Payment(
                link_id=link.id,
                idempotency_key="k-after",
                gateway="demo",
                amount_cents=4200,
                currency="USD",
                source_id="t",
                status=PaymentStatus.COMPLETED,
                completed_at=datetime.now(UTC),
            )
        )
        session.commit()
    assert '<p class="dash-figure" id="dash-collected">$42.00</p>' in staff.get("/dashboard").text


def test_run_jobs_brings_the_dashboard_rollup_up_to_date(app, runner, link_factory):
    link_factory(amount="10.00")
    with app.app_context():
        session = get_session()
        assert session.scalar(select(func.count()).select_from(DashboardDirty)) > 0
        result = runner.invoke(args=["run-jobs"])
        assert result.exit_code == 0, result.output
        assert "Dashboard: " in result.output and "day(s) recomputed." in result.output
        session.expire_all()
        assert session.scalar(select(func.count()).select_from(DashboardDirty)) == 0
        today = datetime.now(UTC).astimezone(ZoneInfo("America/New_York")).date()
        assert session.get(DashboardDay, today).created == 1


def test_seed_demo_leaves_the_rollup_built(app, runner):
    with app.app_context():
        result = runner.invoke(args=["seed-demo", "--links", "60"])
        assert result.exit_code == 0, result.output
        session = get_session()
        assert session.scalar(select(func.count()).select_from(DashboardDirty)) == 0
        built = session.scalar(select(func.sum(DashboardDay.created)))
        assert built == session.scalar(select(func.count()).select_from(PaymentLink)) == 60


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "—"),
        (12 * 60 + 59, "12 min"),
        (5 * 3600 + 10 * 60, "5 h 10 min"),
        (2 * 3600, "2 h"),  # not "2 h 0 min"
        (3 * 86400, "3 days"),  # not "3 d 0 h"
        (3 * 86400 + 59 * 60, "3 days"),
        (86400 + 4 * 3600, "1 day 4 h"),
        (2 * 86400 + 3 * 3600, "2 days 3 h"),
    ],
)
def test_time_to_pay_reads_naturally_and_each_number_stays_with_its_unit(seconds, words):
    shown = _duration(seconds)
    assert shown.replace(NBSP, " ") == words
    # Every number is tied to its unit by a no-break space; the only breakable spaces are
    # between the parts ("2 days|3 h"), never inside one.
    assert not re.search(r"\d ", shown)
    assert shown.count(" ") == max(len(words.split()) // 2 - 1, 0)


def test_the_time_to_pay_card_never_breaks_a_duration(app, staff, link_factory):
    html = staff.get("/dashboard").text
    assert '<p class="dash-figure dash-duration" id="dash-median">' in html
    assert '<span class="dash-duration" id="dash-p90">' in html


def test_dashboard_tables_name_each_cell_for_the_phone_layout(staff):
    # Phones show table rows as cards whose cells print their data-label before the value.
    html = staff.get("/dashboard").text
    funnel = html[
        html.index('id="dash-funnel"') : html.index("</table>", html.index("dash-funnel"))
    ]
    assert funnel.count('<td class="num" data-label="Links">') == 5
    assert funnel.count('<td class="num" data-label="Of created">') == 5
    assert "<td>" not in funnel and "<td " in funnel
