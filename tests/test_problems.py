"""Problem reports: the patient's "Problem paying?" form, the front desk's email, the staff list."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from payapp import problems
from payapp.db import get_session
from payapp.links import cancel_link
from payapp.models import PaymentLink, ProblemReport
from payapp.states import AuditAction, ProblemCategory

from .conftest import audit_actions, csrf_from, log_in, staff_post, submit_card

GOOD = {
    "category": "amount_wrong",
    "text": "I already paid this at the desk.",
    "callback_phone": "",
}


def report_problem(client, link, data=None, *, csrf=True):
    """Open the form from the link's page and post it like a browser."""
    page = client.get(link.path + "/problem")
    assert page.status_code == 200, page.status_code
    payload = {**GOOD, **(data or {})}
    if csrf:
        payload["csrf_token"] = csrf_from(page.text)
    return client.post(link.path + "/problem", data=payload)


def stored_reports(app) -> list[ProblemReport]:
    with app.app_context():
        return list(get_session().scalars(select(ProblemReport).order_by(ProblemReport.id)))


def same_page(html: str) -> str:
    """The page without what differs per response (CSP nonces, the CSRF token)."""
    return re.sub(r'(nonce|content)="[^"]*"', "", html)


def outbox_emails(app) -> list[email.message.EmailMessage]:
    folder = Path(app.config["OUTBOX_DIR"])
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(folder.glob("*problem*.eml"))
    ]


# --- the patient's side ---------------------------------------------------------------------------


def test_the_pay_page_offers_problem_paying_and_the_form_asks_no_clinical_detail(
    client, link_factory
):
    link = link_factory()
    html = client.get(link.path).text
    assert f'href="{link.path}/problem"' in html and "Problem paying?" in html
    form = client.get(link.path + "/problem").text
    for category in ProblemCategory:
        assert f'type="radio" value="{category.value}"' in form
        assert category.label.replace("'", "&#39;") in form
    assert re.search(r"don(&#39;|')t include medical information", form)
    assert 'name="csrf_token"' in form
    form = form[form.index("<form") : form.index("</form>")]
    assert set(re.findall(r'\sname="([^"]+)"', form)) == {
        "csrf_token",
        "category",
        "text",
        "callback_phone",
    }


def test_a_report_is_stored_confirmed_and_audited_without_its_text(app, client, link_factory):
    link = link_factory()
    response = report_problem(client, link, {"callback_phone": "(212) 555-0123"})
    assert response.status_code == 303
    assert response.headers["Location"] == link.path + "/problem/sent"
    thanks = client.get(response.headers["Location"])
    assert thanks.status_code == 200
    assert "Bright Smile Dental has your report" in thanks.text
    [report] = stored_reports(app)
    assert (report.link_id, report.category) == (link.id, ProblemCategory.AMOUNT_WRONG)
    assert report.text == GOOD["text"]
    assert report.callback_phone == "+12125550123"
    assert report.resolved_at is None
    assert AuditAction.PROBLEM_REPORTED in audit_actions(app)
    with app.app_context():
        from payapp.models import AuditEvent

        event = (
            get_session()
            .scalars(select(AuditEvent).where(AuditEvent.action == AuditAction.PROBLEM_REPORTED))
            .one()
        )
    assert event.detail == "The amount looks wrong"  # the category, never the patient's text
    assert event.actor == "patient"


def test_the_front_desk_is_emailed_the_category_and_the_staff_page_but_not_the_text(
    app, client, link_factory, config_overrides
):
    app.config["FRONT_DESK_EMAIL"] = "desk@clinic.example.com"
    link = link_factory()
    report_problem(client, link, {"category": "card_declined", "callback_phone": "212-555-0123"})
    [notice] = outbox_emails(app)
    assert notice["To"] == "desk@clinic.example.com"
    assert "My card was declined" in notice["Subject"]
    body = notice.get_content()
    [report] = stored_reports(app)
    assert f"http://localhost/problems?state=open#problem-{report.id}" in body
    assert "INV-1001" in body
    assert "already paid" not in body  # the free text stays behind the staff login
    assert "555" not in body and "Jane" not in body


def test_without_a_front_desk_address_the_notice_goes_to_mail_from(app, client, link_factory):
    report_problem(client, link_factory())
    [notice] = outbox_emails(app)
    assert notice["To"] == app.config["MAIL_FROM"]


def test_a_notice_that_cannot_be_sent_keeps_the_report_and_is_audited(app, client, link_factory):
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"  # nothing listens there
    app.config["SMTP_TIMEOUT"] = 2
    response = report_problem(client, link_factory())
    assert response.status_code == 303
    assert len(stored_reports(app)) == 1
    assert AuditAction.PROBLEM_NOTICE_FAILED in audit_actions(app)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"category": "refund_me_now"}, "category", "Choose what went wrong."),
        ({"category": ""}, "category", "Choose what went wrong."),
        ({"text": "x" * 1001}, "text", "Keep it under 1000 characters"),
        ({"text": "x" * 5000}, "text", "too long"),
        ({"text": "fine\u202eenif"}, "text", "invisible or control characters"),
        ({"text": "zero\u200bwidth"}, "text", "invisible or control characters"),
        ({"callback_phone": "555-not-a-number"}, "callback_phone", "phone number we can call"),
        ({"callback_phone": "123"}, "callback_phone", "phone number we can call"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_is_stored(
    app, client, link_factory, data, field, message
):
    response = report_problem(client, link_factory(), data)
    assert response.status_code == 422
    assert message in response.text
    assert not stored_reports(app)
    assert not outbox_emails(app)


def test_line_breaks_in_the_text_are_kept(app, client, link_factory):
    report_problem(client, link_factory(), {"text": "line one\r\nline two"})
    assert stored_reports(app)[0].text == "line one\r\nline two"


def test_a_report_without_the_csrf_token_is_refused(app, client, link_factory):
    response = report_problem(client, link_factory(), csrf=False)
    assert response.status_code == 400
    assert not stored_reports(app)


@pytest.mark.parametrize("suffix", ["/problem", "/problem/sent"])
def test_a_tampered_token_gets_the_pay_pages_generic_404(client, link_factory, suffix):
    link = link_factory()
    tampered = link.path[:-2] + ("AA" if not link.path.endswith("AA") else "BB")
    pay_404 = client.get(tampered)
    response = client.get(tampered + suffix)
    assert pay_404.status_code == response.status_code == 404
    assert same_page(response.text) == same_page(pay_404.text)
    assert client.get("/pay/not-a-token" + suffix).status_code == 404


def test_posting_to_a_tampered_token_is_a_404_and_stores_nothing(app, client, link_factory):
    link = link_factory()
    page = client.get(link.path + "/problem")
    response = client.post(
        link.path[:-2] + "zz/problem", data={**GOOD, "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 404
    assert not stored_reports(app)


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATELIMIT_ENABLED": True, "RATELIMIT_PROBLEM_REPORT": "2 per hour"}],
)
def test_a_flood_of_reports_from_one_address_is_refused(app, client, link_factory):
    link = link_factory()
    assert [report_problem(client, link).status_code for _ in range(2)] == [303, 303]
    assert report_problem(client, link).status_code == 429
    assert len(stored_reports(app)) == 2


def test_an_expired_link_can_still_report_a_problem(app, client, link_factory):
    link = link_factory()
    with time_machine.travel(datetime.now(UTC) + timedelta(days=30)):
        closed = client.get(link.path)
        assert closed.status_code == 410
        assert f'href="{link.path}/problem"' in closed.text
        assert report_problem(client, link).status_code == 303
    assert len(stored_reports(app)) == 1


def test_a_cancelled_or_paid_link_can_still_report_a_problem(app, client, link_factory):
    cancelled, paid = link_factory(), link_factory()
    with app.app_context():
        cancel_link(get_session(), get_session().get(PaymentLink, cancelled.id), staff_id=1)
    assert f'href="{cancelled.path}/problem"' in client.get(cancelled.path).text
    assert submit_card(client, paid.path).status_code == 200
    assert f'href="{paid.path}/problem"' in client.get(paid.path).text
    for link in (cancelled, paid):
        assert report_problem(client, link).status_code == 303
    assert [r.link_id for r in stored_reports(app)] == [cancelled.id, paid.id]


# --- the staff side -------------------------------------------------------------------------------


def test_staff_see_open_reports_with_everything_needed_to_call_back(
    app, client, staff, link_factory
):
    link = link_factory(reference="STMT-77")
    with time_machine.travel(datetime(2027, 3, 6, 3, 30, tzinfo=UTC), tick=False):
        report_problem(
            client, link, {"text": "Charged <b>twice</b>?", "callback_phone": "2125550123"}
        )
    html = staff.get("/problems").text
    for expected in (
        "The amount looks wrong",
        "Jane Q Doe",
        "STMT-77",
        "+12125550123",
        "Charged &lt;b&gt;twice&lt;/b&gt;?",  # the patient's text is escaped, never markup
        "Mar 5, 2027, 10:30 PM EST",  # clinic time
        "Mark resolved",
        f'href="/links/{link.id}"',
    ):
        assert expected in html, expected
    assert 'href="/problems"' in staff.get("/links").text  # the menu links here


def test_resolving_records_who_when_and_the_note_and_moves_it_to_resolved(
    app, client, staff, link_factory
):
    link = link_factory()
    report_problem(client, link)
    [report] = stored_reports(app)
    response = staff_post(
        staff,
        f"/problems/{report.id}/resolve?state=open",
        {"note": "Called back: paid at the desk, link cancelled."},
        page_url="/problems",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/problems?state=open"
    [report] = stored_reports(app)
    assert report.resolved_at is not None
    assert report.note == "Called back: paid at the desk, link cancelled."
    assert "No open problem reports." in staff.get("/problems").text
    resolved = staff.get("/problems?state=resolved").text
    assert "frontdesk@example.com" in resolved
    assert "Called back: paid at the desk" in resolved
    assert "Mark resolved" not in resolved
    assert AuditAction.PROBLEM_RESOLVED in audit_actions(app)


def test_a_report_cannot_be_resolved_twice(app, client, staff, link_factory):
    report_problem(client, link_factory())
    [report] = stored_reports(app)
    url = f"/problems/{report.id}/resolve"
    staff_post(staff, url, {"note": "first"}, page_url="/problems")
    staff_post(staff, url, {"note": "second"}, page_url="/problems?state=all")
    assert stored_reports(app)[0].note == "first"
    assert "already resolved" in staff.get("/problems").text
    assert audit_actions(app).count(AuditAction.PROBLEM_RESOLVED) == 1


def test_a_note_with_invisible_characters_is_refused(app, client, staff, link_factory):
    report_problem(client, link_factory())
    [report] = stored_reports(app)
    staff_post(staff, f"/problems/{report.id}/resolve", {"note": "ok\u202e"}, page_url="/problems")
    assert stored_reports(app)[0].resolved_at is None
    assert "invisible or control characters" in staff.get("/problems").text


def test_resolving_an_unknown_report_is_a_404(staff):
    assert staff_post(staff, "/problems/999/resolve", page_url="/problems").status_code == 404


def test_problem_reports_are_for_staff_only(app, client, link_factory):
    report_problem(client, link_factory())
    [report] = stored_reports(app)
    page = client.get("/problems")
    assert page.status_code in (302, 303) and "/login" in page.headers["Location"]
    csrf = csrf_from(client.get("/login").text)
    post = client.post(f"/problems/{report.id}/resolve", data={"csrf_token": csrf})
    assert post.status_code in (302, 303, 401)
    assert stored_reports(app)[0].resolved_at is None
    assert log_in(client).status_code == 303
    assert client.get("/problems").status_code == 200


# --- the domain, without HTTP ---------------------------------------------------------------------


def test_counts_split_open_and_resolved_within_a_period(app, link_factory):
    link = link_factory()
    t0 = datetime(2027, 3, 1, 12, tzinfo=UTC)
    with app.app_context():
        session = get_session()
        row = session.get(PaymentLink, link.id)
        made = [
            problems.create_report(
                session, row, problems.ProblemDraft(category="other"), now=t0 + timedelta(days=d)
            )
            for d in (0, 1, 2)
        ]
        staff_id = session.scalars(select(PaymentLink.created_by_id)).first() or 1
        problems.resolve_report(session, made[0].id, staff_id, now=t0 + timedelta(days=3))
        assert problems.count_reports(session) == problems.ProblemCounts(open=2, resolved=1)
        assert problems.count_reports(
            session, since=t0 + timedelta(hours=1), until=t0 + timedelta(days=2)
        ) == problems.ProblemCounts(open=1, resolved=0)


def test_the_links_history_shows_the_report_with_its_category(app, client, staff, link_factory):
    link = link_factory()
    report_problem(client, link, {"category": "card_declined", "text": "secret words"})
    html = staff.get(f"/links/{link.id}").text
    assert "Patient reported a problem" in html
    assert "My card was declined" in html
    assert "secret words" not in html  # the text stays on the Problems page


def test_the_front_desk_gets_one_email_per_link_per_quiet_period(app, client, link_factory):
    first, second = link_factory(), link_factory()
    start = datetime(2027, 3, 1, 15, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        report_problem(client, first)
        report_problem(client, first)  # the same link again: stored, not emailed
        report_problem(client, second)
    with time_machine.travel(start + timedelta(minutes=61), tick=False):
        report_problem(client, first)
    assert len(stored_reports(app)) == 4
    assert len(outbox_emails(app)) == 3
