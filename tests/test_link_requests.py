"""Patients' "Send me a new link" on an expired or locked link, and the front desk's task."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from payapp import link_requests
from payapp.db import get_session
from payapp.links import LinkRules, cancel_link
from payapp.models import LinkRequest, Message, PaymentLink, utcnow
from payapp.states import AuditAction, LinkRequestState, LinkStatus, MessageStatus

from .conftest import audit_actions, csrf_from, staff_post, stored_user, submit_card


def closed_link(app, link_factory, how: str, **fields):
    """A link that is expired (made 60 days ago), locked or cancelled."""
    if how == "expired":
        with time_machine.travel(utcnow() - timedelta(days=60)):
            return link_factory(**fields)
    link = link_factory(**fields)
    with app.app_context():
        session = get_session()
        row = session.get(PaymentLink, link.id)
        if how == "locked":
            row.status = LinkStatus.LOCKED
        else:
            cancel_link(session, row, staff_id=stored_user(app).id)
        session.commit()
    return link


def ask(client, link, extra=None):
    """Press "Send me a new link" on the closed page, like a browser."""
    page = client.get(link.path)
    assert page.status_code == 410, page.status_code
    return client.post(
        link.path + "/new-link", data={"csrf_token": csrf_from(page.text), **(extra or {})}
    )


def tasks(app) -> list[LinkRequest]:
    with app.app_context():
        return list(get_session().scalars(select(LinkRequest).order_by(LinkRequest.id)))


def links_count(app) -> int:
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(PaymentLink))


def outbox(app, pattern: str) -> list[email.message.EmailMessage]:
    folder = Path(app.config["OUTBOX_DIR"])
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in sorted(folder.glob(pattern))
    ]


def link_emails_to(app, address: str) -> list[email.message.EmailMessage]:
    return [m for m in outbox(app, "*-email.eml") if m["To"] == address]


# --- masking ----------------------------------------------------------------------------------


def test_the_hint_shows_only_a_masked_email_and_the_last_four_digits():
    link = PaymentLink(email="jane@example.com", phone="+12125550123")
    assert link_requests.contact_hint(link) == "j•••@example.com and •••-•••-0123"


# --- which pages offer it ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["expired", "locked"])
def test_an_expired_or_locked_page_offers_the_button_with_a_masked_hint(
    app, client, link_factory, how
):
    link = closed_link(app, link_factory, how, email="jane@example.com")
    html = client.get(link.path).text
    assert "Send me a new link" in html
    assert f'action="{link.path}/new-link"' in html
    assert "j•••@example.com" in html
    assert "jane@example.com" not in html


def test_a_cancelled_page_says_call_us_and_refuses_a_forged_request(app, client, link_factory):
    link = closed_link(app, link_factory, "cancelled")
    html = client.get(link.path).text
    assert "Send me a new link" not in html
    assert "ask for a new link or to pay by phone" in html
    response = ask(client, link)
    assert response.status_code == 303
    assert not tasks(app)
    assert "call us" in client.get(link.path).text


def test_an_open_or_paid_link_has_no_button_and_a_post_makes_no_task(app, client, link_factory):
    open_link, paid = link_factory(), link_factory()
    submit_card(client, paid.path)
    assert "Send me a new link" not in client.get(open_link.path).text
    assert "Send me a new link" not in client.get(paid.path).text
    token = csrf_from(client.get(open_link.path).text)
    for link in (open_link, paid):
        client.post(link.path + "/new-link", data={"csrf_token": token})
    assert not tasks(app)


def test_a_link_without_contact_details_is_not_offered_it(app, client, link_factory):
    link = closed_link(app, link_factory, "expired", email="", send_now=False)
    assert "Send me a new link" not in client.get(link.path).text


# --- asking the front desk (the default) -------------------------------------------------------


def test_a_request_makes_one_task_emails_the_front_desk_and_confirms(app, client, link_factory):
    app.config["FRONT_DESK_EMAIL"] = "desk@clinic.example"
    link = closed_link(app, link_factory, "expired", email="jane@example.com", reference="INV-77")
    response = ask(client, link)
    assert response.status_code == 303
    [task] = tasks(app)
    assert (task.link_id, task.state) == (link.id, LinkRequestState.OPEN)
    [notice] = outbox(app, "*new-link*.eml")
    assert notice["To"] == "desk@clinic.example"
    body = notice.get_content()
    assert "INV-77" in body and "/dashboard" in body
    assert "Jane" not in body and "jane@" not in body and "125" not in body
    assert not link_emails_to(app, "jane@example.com")
    page = client.get(link.path).text
    assert "We&#39;ve asked the front desk to send you a new link to j•••@example.com" in page
    assert "one business day" in page
    assert AuditAction.NEW_LINK_REQUESTED in audit_actions(app)


def test_a_second_request_makes_no_second_task_and_says_so(app, client, link_factory):
    link = closed_link(app, link_factory, "locked")
    ask(client, link)
    page = client.get(link.path).text
    assert "You've asked for a new link" in page and "Send me a new link" not in page
    token = csrf_from(page)
    response = client.post(link.path + "/new-link", data={"csrf_token": token})
    assert response.status_code == 303
    assert len(tasks(app)) == 1
    assert "You&#39;ve already asked" in client.get(link.path).text
    assert len(outbox(app, "*new-link*.eml")) == 1


def test_the_database_refuses_a_second_open_task_for_one_link(app, link_factory):
    link = closed_link(app, link_factory, "expired")
    with app.app_context():
        session = get_session()
        row = session.get(PaymentLink, link.id)
        first = link_requests.request_new_link(
            session, row, mode="ask", rules=LinkRules.from_config(app.config)
        )
        again = link_requests.request_new_link(
            session, row, mode="ask", rules=LinkRules.from_config(app.config)
        )
    assert (first.kind, again.kind) == ("asked", "already_asked")
    assert again.request.id == first.request.id


def test_a_typed_address_is_ignored_and_a_repeated_field_refused(app, client, link_factory):
    link = closed_link(app, link_factory, "expired", email="jane@example.com")
    app.config["NEW_LINK_REQUESTS"] = "reissue"
    ask(client, link, extra={"email": "attacker@evil.example", "phone": "+12125550199"})
    assert not outbox(app, "*.eml") or all(
        "evil" not in (m["To"] or "") for m in outbox(app, "*.eml")
    )
    assert len(link_emails_to(app, "jane@example.com")) == 1  # the new link
    page = client.get(link.path)
    refused = client.post(
        link.path + "/new-link",
        data={"csrf_token": [csrf_from(page.text), csrf_from(page.text)]},
    )
    assert refused.status_code == 400


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATELIMIT_ENABLED": True, "RATELIMIT_NEW_LINK_PER_LINK": "2 per day"}],
)
def test_too_many_requests_for_one_link_get_the_429_page(app, link_factory):
    link = closed_link(app, link_factory, "expired")
    # Different addresses (the per-address limit is not the one being hit).
    codes = []
    for n in range(3):
        client = app.test_client()
        environ = {"REMOTE_ADDR": f"198.51.100.{n + 1}"}
        page = client.get(link.path, environ_base=environ)
        response = client.post(
            link.path + "/new-link", data={"csrf_token": csrf_from(page.text)}, environ_base=environ
        )
        codes.append(response.status_code)
    assert codes == [303, 303, 429]
    assert "Too many attempts" in response.text
    assert len(tasks(app)) == 1  # the second press found the open task


@pytest.mark.parametrize(
    "config_overrides",
    [{"RATELIMIT_ENABLED": True, "RATELIMIT_NEW_LINK_PER_ADDRESS": "2 per day"}],
)
def test_too_many_requests_from_one_address_get_the_429_page(app, client, link_factory):
    made = [closed_link(app, link_factory, "expired") for _ in range(3)]
    assert [ask(client, link).status_code for link in made] == [303, 303, 429]
    assert len(tasks(app)) == 2


# --- automatic mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"NEW_LINK_REQUESTS": "reissue"}])
def test_automatic_mode_reissues_once_and_sends_to_the_contact_on_file(app, client, link_factory):
    link = closed_link(app, link_factory, "expired", email="jane@example.com", amount="80.00")
    before = links_count(app)
    ask(client, link)
    assert links_count(app) == before + 1
    with app.app_context():
        new = get_session().scalars(select(PaymentLink).filter_by(reissued_from_id=link.id)).one()
        assert (new.amount_cents, new.email) == (8000, "jane@example.com")
        new_id = new.id
    [task] = tasks(app)
    assert (task.state, task.new_link_id) == (LinkRequestState.DONE, new_id)
    assert len(link_emails_to(app, "jane@example.com")) == 1
    assert not outbox(app, "*new-link*.eml")  # nothing for the front desk to do
    assert "We&#39;ve sent a new link to j•••@example.com" in client.get(link.path).text
    # Pressing again while the new link is open sends nothing more.
    ask(client, link)
    assert links_count(app) == before + 1
    assert len(link_emails_to(app, "jane@example.com")) == 1
    assert "already sent a new link" in client.get(link.path).text


@pytest.mark.parametrize(
    "config_overrides",
    [{"NEW_LINK_REQUESTS": "reissue", "TEXT_HOURS": "08:00-18:00", "TEXT_DAYS": "Mon-Fri"}],
)
def test_automatic_mode_outside_texting_hours_says_the_text_will_come_not_that_it_came(
    app, client, link_factory
):
    link = closed_link(app, link_factory, "expired", email="", phone="+12125550123")
    # Sunday 3 a.m. in New York: texts wait for the clinic's texting hours.
    with time_machine.travel(datetime(2026, 12, 6, 8, 0, tzinfo=UTC), tick=False):
        ask(client, link)
        page = client.get(link.path).text
    assert "We&#39;ll text a new link to •••-•••-0123 when the clinic opens." in page
    assert "We&#39;ve sent" not in page
    with app.app_context():
        new = get_session().scalars(select(PaymentLink).filter_by(reissued_from_id=link.id)).one()
        [message] = get_session().scalars(select(Message).filter_by(link_id=new.id)).all()
        assert message.status == MessageStatus.QUEUED


@pytest.mark.parametrize("config_overrides", [{"NEW_LINK_REQUESTS": "reissue"}])
def test_automatic_mode_with_the_mail_server_down_says_so_and_gives_the_clinics_number(
    app, client, link_factory
):
    link = closed_link(app, link_factory, "expired", email="jane@example.com")
    app.config["SMTP_URL"] = "smtp://127.0.0.1:1"  # nothing listens there
    ask(client, link)
    page = client.get(link.path).text
    assert "We couldn&#39;t send the new link to j•••@example.com just now." in page
    assert "We&#39;ve sent" not in page and app.config["CLINIC_PHONE"] in page


# --- the front desk's side --------------------------------------------------------------------


def make_task(app, client, link_factory, **fields):
    link = closed_link(app, link_factory, "expired", **fields)
    ask(client, link)
    [task] = tasks(app)
    return link, task


def test_the_dashboard_and_link_page_show_open_requests_with_a_count(
    app, client, staff, link_factory
):
    link, task = make_task(app, client, link_factory, patient_name="Rosa Diaz")
    html = staff.get("/dashboard").text
    assert "Patients asking for a new link" in html
    assert 'id="link-request-count">1<' in html
    assert "Rosa Diaz" in html and f"/link-requests/{task.id}/reissue" in html
    detail = staff.get(f"/links/{link.id}").text
    assert "The patient asked for a new link" in detail
    assert f"/link-requests/{task.id}/dismiss" in detail


def test_reissue_and_send_sends_the_new_link_and_closes_the_task(app, client, staff, link_factory):
    link, task = make_task(app, client, link_factory, email="jane@example.com")
    response = staff_post(staff, f"/link-requests/{task.id}/reissue", page_url="/dashboard")
    assert response.status_code == 303
    [done] = tasks(app)
    assert done.state == LinkRequestState.DONE and done.handled_by_id == stored_user(app).id
    assert response.headers["Location"] == f"/links/{done.new_link_id}"
    assert len(link_emails_to(app, "jane@example.com")) == 1
    assert 'id="link-request-count">0<' in staff.get("/dashboard").text
    again = staff_post(staff, f"/link-requests/{task.id}/reissue", page_url="/dashboard")
    assert again.status_code == 303 and links_count(app) == 2
    assert AuditAction.NEW_LINK_SENT in audit_actions(app)


def test_dismiss_closes_the_task_and_sends_nothing(app, client, staff, link_factory):
    link, task = make_task(app, client, link_factory, email="jane@example.com")
    response = staff_post(staff, f"/link-requests/{task.id}/dismiss", page_url="/dashboard")
    assert response.status_code == 303
    [done] = tasks(app)
    assert done.state == LinkRequestState.DISMISSED
    assert links_count(app) == 1
    assert not link_emails_to(app, "jane@example.com")
    # The patient may ask again afterwards (a new task).
    ask(client, link)
    assert [t.state for t in tasks(app)] == [LinkRequestState.DISMISSED, LinkRequestState.OPEN]


def test_reissuing_a_request_whose_link_was_paid_meanwhile_keeps_it_open(
    app, client, staff, link_factory
):
    link, task = make_task(app, client, link_factory)
    with app.app_context():
        session = get_session()
        session.get(PaymentLink, link.id).status = LinkStatus.PAID
        session.commit()
    response = staff_post(staff, f"/link-requests/{task.id}/reissue", page_url="/dashboard")
    assert response.status_code == 303
    assert tasks(app)[0].state == LinkRequestState.OPEN
    assert links_count(app) == 1


def test_reissuing_from_the_link_page_also_closes_the_patients_request(
    app, client, staff, link_factory
):
    link, task = make_task(app, client, link_factory)
    response = staff_post(staff, f"/links/{link.id}/reissue", page_url=f"/links/{link.id}")
    assert response.status_code == 303
    [done] = tasks(app)
    assert done.state == LinkRequestState.DONE
    assert response.headers["Location"] == f"/links/{done.new_link_id}"
    assert 'id="link-request-count">0<' in staff.get("/dashboard").text


def test_an_unknown_new_link_mode_refuses_to_start(tmp_path, monkeypatch):
    from payapp import create_app
    from payapp.config import ConfigError

    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    with pytest.raises(ConfigError, match="NEW_LINK_REQUESTS"):
        create_app({"TESTING": True, "NEW_LINK_REQUESTS": "automatic"})
