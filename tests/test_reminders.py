"""Reminders (issue 9): the schedule, clinic hours and DST, the maximum, the stop conditions, one a
day, what they say, and two overlapping run-jobs passes that never double-send.

The clinic is in New York, open Mon-Fri 08:00-18:00. A link is sent on Monday 1 March 2027 at
10:00 EST and expires 14 days later (Monday 15 March, 10:00 EST = 11:00 EDT: DST starts on Sunday
14 March), so by default reminder 1 is due from Thursday 4 March 10:00 EST, and reminder 2 from
Saturday 13 March 10:00 EST, which is the weekend: it goes on Monday 15 March from 08:00 EDT.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select, update

from payapp import cli, links, notify, reminders
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.models import Message, PaymentLink

from .conftest import audit_actions, csrf_from, open_pay_page, staff_post, submit_card

SENT = datetime(2027, 3, 1, 15, 0, tzinfo=UTC)  # Monday 10:00 EST


def at(day: int, hour_utc: int, minute: int = 0) -> datetime:
    return datetime(2027, 3, day, hour_utc, minute, tzinfo=UTC)


@pytest.fixture
def send_link(app, link_factory):
    """Create a link and send it (email, and text when it has a phone) at ``when``."""

    def make(when=SENT, **fields):
        fields.setdefault("description", "Root canal follow-up")  # staff-only: never sent
        with time_machine.travel(when, tick=False):
            made = link_factory(**fields)
            with app.app_context():
                session = get_session()
                notify.send_link(
                    session,
                    app.jinja_env,
                    notify.Transports.from_config(app.config),
                    session.get(PaymentLink, made.id),
                    f"http://localhost{made.path}",
                    Clinic.from_config(app.config),
                    now=when,
                )
        return made

    return make


def run(app, when: datetime) -> str:
    """run-jobs' reminder step, as the timer would run it at ``when``."""
    with time_machine.travel(when, tick=False), app.app_context():
        return cli.send_reminders(get_session())


def reminders_of(app, link_id: int | None = None) -> list[tuple[str, str, datetime]]:
    with app.app_context():
        stmt = select(Message).where(Message.kind == "reminder").order_by(Message.id)
        if link_id is not None:
            stmt = stmt.where(Message.link_id == link_id)
        return [(m.channel, m.status, m.created_at) for m in get_session().scalars(stmt)]


def stored(app, link_id: int) -> PaymentLink:
    with app.app_context():
        return get_session().get(PaymentLink, link_id)


def outbox(app) -> list[Path]:
    return sorted(Path(app.config["OUTBOX_DIR"]).glob("*reminder*"))


# --- the schedule -----------------------------------------------------------------------------


def test_first_reminder_goes_three_days_after_the_link_was_sent(app, send_link):
    link = send_link()
    assert run(app, at(4, 14, 59)) == "Reminders: 0 sent, 0 could not be delivered."
    assert run(app, at(4, 15, 0)) == "Reminders: 1 sent, 0 could not be delivered."
    assert [(c, s) for c, s, _ in reminders_of(app, link.id)] == [("email", "sent")]
    assert stored(app, link.id).reminders_sent == 1


def test_second_reminder_goes_two_days_before_expiry_on_the_next_business_day_after_dst(
    app, send_link
):
    link = send_link()
    run(app, at(4, 15))
    for day in range(5, 13):  # every day until the window opens: nothing more
        run(app, at(day, 15))
    assert len(reminders_of(app, link.id)) == 1
    assert run(app, at(13, 15)).endswith("the clinic is closed.")  # Saturday
    assert run(app, at(14, 15)).endswith("the clinic is closed.")  # Sunday, now EDT
    # Monday 07:30 EDT is 11:30 UTC; under EST it would have been 06:30: still closed either way.
    assert run(app, at(15, 11, 30)).endswith("the clinic is closed.")
    # Monday 08:30 EDT = 12:30 UTC (in EST that would be 07:30, closed): DST-correct hours.
    assert run(app, at(15, 12, 30)) == "Reminders: 1 sent, 0 could not be delivered."
    assert [t for *_, t in reminders_of(app, link.id)] == [at(4, 15), at(15, 12, 30)]


def test_clinic_hours_are_read_in_the_clinic_time_zone_across_the_dst_change():
    schedule = reminders.Schedule.from_config(
        {
            "REMINDER_AFTER_SEND_DAYS": 3,
            "REMINDER_BEFORE_EXPIRY_DAYS": 2,
            "REMINDER_MAX": 2,
            "CLINIC_HOURS": "08:00-18:00",
            "CLINIC_DAYS": "Mon-Fri",
        }
    )
    clinic = Clinic("X", "1", "America/New_York")
    assert not reminders.within_clinic_hours(at(12, 12, 30), schedule, clinic)  # Fri 07:30 EST
    assert reminders.within_clinic_hours(at(12, 13, 0), schedule, clinic)  # Fri 08:00 EST
    assert reminders.within_clinic_hours(at(15, 12, 0), schedule, clinic)  # Mon 08:00 EDT
    assert not reminders.within_clinic_hours(at(15, 22, 0), schedule, clinic)  # Mon 18:00 EDT
    assert reminders.within_clinic_hours(at(15, 21, 59), schedule, clinic)
    assert not reminders.within_clinic_hours(at(13, 15), schedule, clinic)  # Saturday
    # The clinic's day starts at its own midnight: 05:00 UTC in EST, 04:00 UTC in EDT.
    assert reminders.local_day_start(at(12, 15), clinic) == at(12, 5)
    assert reminders.local_day_start(at(15, 15), clinic) == at(15, 4)


def test_clinic_hours_and_days_settings_are_checked():
    assert reminders.parse_days("Mon-Sat") == frozenset(range(6))
    assert reminders.parse_days("mon, wed,Fri") == frozenset({0, 2, 4})
    assert reminders.parse_days("Sat-Mon") == frozenset({5, 6, 0})
    for bad in ("Mon-Funday", "weekdays"):
        with pytest.raises(reminders.ReminderError):
            reminders.parse_days(bad)
    for bad in ("18:00-08:00", "8-6", "08:00-25:00"):
        with pytest.raises(reminders.ReminderError):
            reminders.parse_hours(bad)


def test_reminders_wait_for_business_hours_then_go(app, send_link):
    link = send_link()
    # Thursday 4 March 19:00 EST: due, but the clinic has closed; Friday 08:00 EST it goes.
    assert run(app, at(5, 0)).endswith("the clinic is closed.")
    assert reminders_of(app, link.id) == []
    assert run(app, at(5, 13)) == "Reminders: 1 sent, 0 could not be delivered."


@pytest.mark.parametrize(
    ("config_overrides", "expected"), [({"REMINDER_MAX": 1}, 1), ({"REMINDER_MAX": 0}, 0)]
)
def test_never_more_than_reminder_max(app, send_link, expected):
    link = send_link()
    for day in range(2, 16):
        for hour in (13, 15, 20):
            run(app, at(day, hour))
    assert len(reminders_of(app, link.id)) == expected


@pytest.mark.parametrize("config_overrides", [{"CLINIC_HOURS": "9 to 5"}])
def test_run_jobs_says_which_reminder_setting_is_wrong(app, runner, send_link):
    send_link()
    with time_machine.travel(at(4, 15), tick=False), app.app_context():
        result = runner.invoke(args=["run-jobs"])
    assert result.exit_code == 1
    assert "Reminders not sent: CLINIC_HOURS = '9 to 5' is not valid" in result.output
    assert "Expired 0 link(s)." in result.output  # the other jobs ran first


def test_at_most_two_reminders_by_default_however_often_run_jobs_runs(app, send_link):
    link = send_link()
    for day in range(1, 16):
        for hour in (13, 15, 17, 21):
            run(app, at(day, hour))
    assert len(reminders_of(app, link.id)) == 2
    assert stored(app, link.id).reminders_sent == 2


def test_never_two_reminders_on_one_clinic_day(app, send_link):
    link = send_link(when=at(1, 14))  # Monday 09:00 EST
    # Expiry Saturday 15:00 EST: the before-expiry window opens Thursday 15:00 EST, the same day
    # the after-send reminder went at 09:30.
    with app.app_context():
        get_session().execute(
            update(PaymentLink).where(PaymentLink.id == link.id).values(expires_at=at(6, 20))
        )
        get_session().commit()
    assert run(app, at(4, 14, 30)).startswith("Reminders: 1 sent")
    assert run(app, at(4, 20, 30)).startswith("Reminders: 0 sent")  # Thu 15:30, same day
    assert run(app, at(4, 23, 30)).endswith("the clinic is closed.")  # 18:30
    assert run(app, at(5, 13, 30)).startswith("Reminders: 1 sent")  # Friday 08:30
    assert [t for *_, t in reminders_of(app, link.id)] == [at(4, 14, 30), at(5, 13, 30)]


def test_a_link_never_sent_gets_no_reminder(app, link_factory):
    with time_machine.travel(SENT, tick=False):
        link = link_factory()
    run(app, at(4, 15))
    run(app, at(15, 13))
    assert reminders_of(app, link.id) == []


# --- stop conditions --------------------------------------------------------------------------


def test_payment_stops_reminders(app, client, send_link):
    link = send_link()
    with time_machine.travel(at(2, 15), tick=False):
        assert submit_card(client, link.path).status_code == 200
    assert stored(app, link.id).status == "paid"
    run(app, at(4, 15))
    run(app, at(15, 13))
    assert reminders_of(app, link.id) == []


def test_cancellation_stops_reminders(app, send_link):
    link = send_link()
    with app.app_context():
        links.cancel_link(get_session(), get_session().get(PaymentLink, link.id), staff_id=None)
    run(app, at(4, 15))
    assert reminders_of(app, link.id) == []


def test_expiry_stops_reminders(app, send_link):
    link = send_link(expires_in_days="3")  # expires Thursday 10:00 EST, when the first is due
    assert run(app, at(4, 15)) == "Reminders: 0 sent, 0 could not be delivered."
    run(app, at(5, 15))
    assert reminders_of(app, link.id) == []


def test_patient_opt_out_on_the_pay_page_stops_reminders(app, client, staff, send_link):
    link = send_link()
    page = open_pay_page(client, link.path)
    assert "Don't remind me about this payment" in page.html
    response = client.post(f"{link.path}/reminders/stop", data={"csrf_token": page.csrf})
    assert response.status_code == 303
    assert "won&#39;t send you reminders" in client.get(link.path).text
    assert "Don't remind me" not in client.get(link.path).text
    run(app, at(4, 15))
    assert reminders_of(app, link.id) == []
    assert audit_actions(app).count("reminders.opted_out") == 1
    timeline = staff.get(f"/links/{link.id}").text
    assert "Patient asked for no more reminders: on the payment page" in timeline


def test_patient_opt_out_needs_the_csrf_token_and_a_real_link(app, client, send_link):
    link = send_link()
    assert client.post(f"{link.path}/reminders/stop").status_code == 400
    assert stored(app, link.id).reminders_stopped_at is None
    page = open_pay_page(client, link.path)
    forged = client.post("/pay/not-a-token.abcdefgh/reminders/stop", data={"csrf_token": page.csrf})
    assert forged.status_code == 404


def test_staff_can_stop_reminders_for_a_link(app, staff, send_link):
    link = send_link()
    detail = staff.get(f"/links/{link.id}").text
    assert "Stop reminders" in detail
    response = staff_post(staff, f"/links/{link.id}/reminders/stop", page_url=f"/links/{link.id}")
    assert response.status_code == 303
    page = staff.get(f"/links/{link.id}").text
    assert "Reminders stopped for this link." in page
    assert "Reminders stopped by staff" in page  # on the timeline
    run(app, at(4, 15))
    assert reminders_of(app, link.id) == []


# --- channels and content ---------------------------------------------------------------------


def test_reminder_goes_on_the_channels_the_link_was_sent_on_and_says_nothing_clinical(
    app, send_link
):
    link = send_link(phone="(212) 555-0123")
    run(app, at(4, 15))
    assert [(c, s) for c, s, _ in reminders_of(app, link.id)] == [
        ("email", "sent"),
        ("sms", "sent"),
    ]
    eml, txt = outbox(app)
    email = message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert email["To"] == "jane@example.com"
    assert (
        " ".join(email["Subject"].split())
        == "Bright Smile Dental: reminder of your payment request for statement INV-1001"
    )
    body = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    text = txt.read_text()
    for content in (body, html, text):
        assert "Bright Smile Dental" in content
        assert "$125.00" in content
        assert f"http://localhost{link.path}" in content
        assert "Root canal" not in content and "root canal" not in content.lower()
    assert "+12125550123" in text
    assert len(text.split("\n\n", 1)[1].strip()) <= 320
    # On the link's timeline, with the channels in words.
    with app.app_context():
        from payapp import audit

        [event] = [
            e for e in audit.link_timeline(get_session(), link.id) if e.action == "reminder.sent"
        ]
        assert event.detail == "reminder 1 by email and text message"


def test_a_text_only_link_is_reminded_by_text_only(app, send_link):
    link = send_link(email="", phone="(212) 555-0123")
    run(app, at(4, 15))
    assert [c for c, *_ in reminders_of(app, link.id)] == ["sms"]


def test_a_failed_reminder_is_recorded_and_counts(app, send_link, monkeypatch):
    link = send_link()

    def broken(self, message, name):
        raise notify.DeliveryError("SMTP delivery to mail:587 failed: refused")

    monkeypatch.setattr(notify.OutboxMail, "send", broken)
    assert run(app, at(4, 15)) == "Reminders: 0 sent, 1 could not be delivered."
    assert [(c, s) for c, s, _ in reminders_of(app, link.id)] == [("email", "failed")]
    assert "reminder.failed" in audit_actions(app)
    assert run(app, at(4, 16)).startswith("Reminders: 0 sent, 0")  # not retried the same day


def test_staff_see_reminders_on_the_link_page(app, staff, send_link):
    link = send_link()
    run(app, at(4, 15))
    page = staff.get(f"/links/{link.id}").text
    assert "Email (reminder) to jane@example.com" in page
    assert "Reminder sent" in page and "1 sent, last" in page


def test_run_jobs_sends_due_reminders(app, runner, send_link):
    send_link()
    with time_machine.travel(at(4, 15), tick=False), app.app_context():
        result = runner.invoke(args=["run-jobs"])
    assert result.exit_code == 0, result.output
    assert "Reminders: 1 sent, 0 could not be delivered." in result.output
    assert len(outbox(app)) == 1


# --- concurrency ------------------------------------------------------------------------------


def test_two_overlapping_runs_send_exactly_one_reminder_per_due_link(app, send_link, monkeypatch):
    """Both runs see the same due links before either claims one (the barrier), each in its own
    session on the file SQLite database; the conditional UPDATE lets exactly one send each."""
    made = [send_link(patient_name=f"Pat {i} Doe", phone="(212) 555-0123") for i in range(5)]
    barrier = threading.Barrier(2)
    original = reminders.due_links

    def due_then_wait(*args, **kwargs):
        found = original(*args, **kwargs)
        barrier.wait(timeout=30)
        return found

    monkeypatch.setattr(reminders, "due_links", due_then_wait)
    outputs, errors = [], []

    def one_run():
        try:
            outputs.append(run(app, at(4, 15)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for link in made:
        assert sorted(c for c, *_ in reminders_of(app, link.id)) == ["email", "sms"]
        assert stored(app, link.id).reminders_sent == 1
    assert len(outbox(app)) == 10
    assert sum(int(o.split()[1]) for o in outputs) == 5, outputs


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_REMINDER_OPT_OUT": "2 per minute"}]
)
def test_patient_opt_out_is_rate_limited(app, client, send_link):
    link = send_link()
    page = open_pay_page(client, link.path)
    codes = [
        client.post(f"{link.path}/reminders/stop", data={"csrf_token": page.csrf}).status_code
        for _ in range(3)
    ]
    assert codes == [303, 303, 429]
    assert audit_actions(app).count("reminders.opted_out") == 1  # recorded once


# --- the signed "stop reminders" link inside reminder emails -----------------------------------


def opt_out_link(app) -> str:
    """The "stop reminders" address in the newest reminder email, as a path on the site."""
    [eml] = [p for p in outbox(app) if p.suffix == ".eml"][-1:]
    body = message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = body.get_body(("plain",)).get_content()
    url = re.search(r"Stop them here: (\S+)", text)[1]
    assert url.startswith(app.config["PUBLIC_BASE_URL"] + "/reminders/stop/"), url
    assert url in body.get_body(("html",)).get_content()
    return url.removeprefix(app.config["PUBLIC_BASE_URL"])


def test_a_reminder_email_carries_a_link_whose_button_stops_reminders(
    app, client, staff, send_link
):
    link = send_link(phone="(212) 555-0123")
    run(app, at(4, 15))
    path = opt_out_link(app)
    assert link.token not in path  # a token of its own, not the pay page's

    with time_machine.travel(at(4, 16), tick=False):
        page = client.get(path)
        assert page.status_code == 200
        assert "Stop reminders for this bill?" in page.text and "$125.00" in page.text
        assert stored(app, link.id).reminders_stopped_at is None, (
            "a GET (a mail scanner) stops nothing"
        )
        assert client.get(path).status_code == 200  # and may come again

        response = client.post(path, data={"csrf_token": csrf_from(page.text)})
        assert response.status_code == 303 and response.headers["Location"] == path
        done = client.get(path).text
        assert "Reminders stopped" in done
        assert done.count('href="tel:') == 1, "the clinic's number once (the footer), not twice"
        again = client.post(path, data={"csrf_token": csrf_from(page.text)})
        assert again.status_code == 303  # pressing twice is harmless
    assert stored(app, link.id).reminders_stopped_at is not None
    # Reminder 2 would be due on Monday 15 March from 08:00 EDT.
    assert run(app, at(15, 13)) == "Reminders: 0 sent, 0 could not be delivered."
    assert len(reminders_of(app, link.id)) == 2  # reminder 1 by email and text, nothing after
    with app.app_context():
        from payapp import audit

        [event] = [
            e
            for e in audit.link_timeline(get_session(), link.id)
            if e.action == "reminders.opted_out"
        ]
        assert (event.actor, event.detail) == ("patient", "from the link in a reminder")
    timeline = staff.get(f"/links/{link.id}").text
    assert "Patient asked for no more reminders: from the link in a reminder" in timeline


def test_the_reminder_text_has_no_room_for_the_link_and_keeps_to_its_length(app, send_link):
    send_link(phone="(212) 555-0123")
    run(app, at(4, 15))
    [txt] = [p for p in outbox(app) if p.suffix == ".txt"]
    assert "/reminders/stop/" not in txt.read_text()


def test_the_stop_button_needs_the_csrf_token(app, client, send_link):
    link = send_link()
    run(app, at(4, 15))
    path = opt_out_link(app)
    assert client.post(path).status_code == 400
    assert stored(app, link.id).reminders_stopped_at is None


def test_a_tampered_or_borrowed_token_gets_a_clear_page_and_changes_nothing(app, client, send_link):
    link = send_link()
    run(app, at(4, 15))
    path = opt_out_link(app)
    csrf = csrf_from(client.get(path).text)
    token = path.rsplit("/", 1)[1]
    forged = [
        path[:-2] + ("AA" if not path.endswith("AA") else "BB"),
        "/reminders/stop/" + token.split(".")[0] + ".x",
        "/reminders/stop/" + link.token,  # the pay page's token: another salt, refused
        "/reminders/stop/" + "a" * 300,
    ]
    for bad in forged:
        page = client.get(bad)
        assert page.status_code == 404 and "not valid" in page.text, bad
        assert client.post(bad, data={"csrf_token": csrf}).status_code == 404
    assert client.get(f"/pay/{token}").status_code == 404  # nor is the opt-out token a pay link
    assert stored(app, link.id).reminders_stopped_at is None
    assert "reminders.opted_out" not in audit_actions(app)


def test_the_link_works_a_week_past_the_bills_expiry_then_expires(app, client, send_link):
    link = send_link()  # expires Monday 15 March 2027, 15:00 UTC
    run(app, at(4, 15))
    path = opt_out_link(app)
    with time_machine.travel(datetime(2027, 3, 22, 14, 59, tzinfo=UTC), tick=False):
        page = client.get(path)
        assert page.status_code == 200
        csrf = csrf_from(page.text)
    with time_machine.travel(datetime(2027, 3, 22, 15, 0, tzinfo=UTC), tick=False):
        page = client.get(path)
        assert page.status_code == 410 and "has expired" in page.text
        assert "(212) 555-0100" in page.text and "Nothing was changed" in page.text
        assert client.post(path, data={"csrf_token": csrf}).status_code == 410
    assert stored(app, link.id).reminders_stopped_at is None


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_the_stop_button_is_rate_limited_like_other_patient_posts(app, client, send_link):
    send_link()
    run(app, at(4, 15))
    path = opt_out_link(app)
    csrf = csrf_from(client.get(path).text)
    limit = int(app.config["RATELIMIT_REMINDER_OPT_OUT"].split()[0])
    codes = [client.post(path, data={"csrf_token": csrf}).status_code for _ in range(limit + 1)]
    assert codes[:limit] == [303] * limit and codes[-1] == 429
